"""Real DSPy programs and optimizers run on the scripted LM, and its prompt → behaviour effects hold there."""

from __future__ import annotations

import copy
import json
import math
import random
from statistics import mean

import dspy
import pytest

from driftwatch.demo.scripted_dspy import ScriptedLM


def _arith(n: int, seed: int) -> list[dspy.Example]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rnd.randint(1, 60), rnd.randint(1, 60)
        out.append(dspy.Example(question=f"What is {a} + {b}?", answer=str(a + b)).with_inputs("question"))
    return out


def _metric(example: dspy.Example, pred: dspy.Prediction, trace: object = None) -> bool:
    return example.answer in str(pred.answer)


def _mean_len(program: dspy.Module, examples: list[dspy.Example]) -> float:
    return mean(len(str(program(question=e.question).answer)) for e in examples)


def test_chain_of_thought_runs_with_typed_outputs_and_reports_token_usage() -> None:
    """ChainOfThought with an int output parses, and DSPy's usage tracker sees the LM's token counts."""
    lm = ScriptedLM(seed=0)
    with dspy.context(lm=lm, track_usage=True):
        pred = dspy.ChainOfThought("question -> answer: int")(question="What is 12 + 7?")
    assert isinstance(pred.answer, int)
    assert isinstance(pred.reasoning, str) and pred.reasoning
    usage = pred.get_lm_usage()["scripted/driftwatch"]
    assert usage["prompt_tokens"] > 50 and usage["completion_tokens"] > 0
    assert lm.history[-1]["usage"]["total_tokens"] == usage["total_tokens"]


def test_json_adapter_output_parses() -> None:
    """Under DSPy's JSONAdapter the scripted LM answers with a JSON object the adapter parses."""
    lm = ScriptedLM(seed=0)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        pred = dspy.Predict("question -> answer, confident: bool")(question="What is 2 + 2?")
    assert pred.confident is True
    assert isinstance(pred.answer, str) and pred.answer
    assert set(json.loads(lm.history[-1]["outputs"][0])) == {"answer", "confident"}


def test_detailed_instructions_lengthen_a_programs_answers() -> None:
    """The same Predict answers several times longer once its instructions ask for detail."""
    examples = _arith(60, seed=1)
    plain = dspy.Predict("question -> answer")
    detailed = dspy.Predict(dspy.Signature("question -> answer", "Explain your reasoning step by step in detail."))
    with dspy.context(lm=ScriptedLM(seed=2)):
        assert _mean_len(detailed, examples) > 3 * _mean_len(plain, examples)


def test_copro_picks_a_better_instruction_and_behaviour_drifts() -> None:
    """A real COPRO run, proposing instructions with the scripted LM, raises accuracy and moves answer length."""
    train, val = _arith(20, seed=3), _arith(60, seed=4)
    student = dspy.Predict("question -> answer")
    evaluate = dspy.Evaluate(devset=val, metric=_metric, num_threads=1, display_progress=False)
    with dspy.context(lm=ScriptedLM(seed=1)):
        before_score, before_len = evaluate(student).score, _mean_len(student, val)
        compiled = dspy.COPRO(metric=_metric, breadth=4, depth=2, init_temperature=1.0).compile(
            student, trainset=train, eval_kwargs={"num_threads": 1, "display_progress": False})
        after_score, after_len = evaluate(compiled).score, _mean_len(compiled, val)
    assert compiled.signature.instructions != student.signature.instructions
    assert after_score > before_score + 10  # percent
    assert abs(math.log(after_len / before_len)) > math.log(1.5)


def test_labeled_demos_steer_a_programs_output_format() -> None:
    """JSON-formatted demos attached by a real LabeledFewShot make most answers JSON."""
    train = [dspy.Example(question=e.question, answer=json.dumps({"answer": e.answer})).with_inputs("question")
             for e in _arith(4, seed=5)]
    student = dspy.Predict("question -> answer")
    compiled = dspy.LabeledFewShot(k=4).compile(student, trainset=train)
    examples = _arith(40, seed=6)

    def json_share(program: dspy.Module) -> float:
        return mean(str(program(question=e.question).answer).startswith("{") for e in examples)

    with dspy.context(lm=ScriptedLM(seed=7)):
        assert json_share(student) == 0.0
        assert json_share(compiled) > 0.8


@pytest.mark.parametrize(("question", "tool"), [("Which city is the capital of France?", "search"),
                                                ("Evaluate the expression 6 * 7", "calculator")])
def test_react_chooses_the_tool_its_description_fits(question: str, tool: str) -> None:
    """dspy.ReAct on the scripted LM mostly calls the tool whose description matches, then finishes."""
    def search(query: str) -> str:
        """Search the web for facts about cities and countries."""
        return "Paris"

    def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression."""
        return "42"

    agent = dspy.ReAct("question -> answer", tools=[search, calculator], max_iters=3)
    with dspy.context(lm=ScriptedLM(seed=8)):
        runs = [agent(question=question).trajectory for _ in range(20)]
    assert mean(t.get("tool_name_0") == tool for t in runs) >= 0.7
    assert all(t.get("tool_name_1") == "finish" or t.get("tool_name_0") == "finish" for t in runs)


def test_copies_share_the_behaviour_model() -> None:
    """lm.copy() and deepcopy (what optimizers do) keep answering from the same seeded model."""
    lm = ScriptedLM(seed=9)
    assert lm.copy(temperature=1.0).behaviour is lm.behaviour
    assert copy.deepcopy(lm).behaviour is lm.behaviour
    with dspy.context(lm=lm.copy()):
        assert dspy.Predict("question -> answer")(question="What is 1 + 1?").answer
    assert lm.behaviour.calls == 1


def test_a_saved_program_reloads_with_the_same_scripted_lm(tmp_path) -> None:
    """dump_state/load_state (what program.save/load use) keep the class, seed and knowledge."""
    lm = ScriptedLM(seed=12, knowledge={"capital of france": "Paris"})
    restored = dspy.BaseLM.load_state(lm.dump_state(), allow_custom_lm_class=True)
    assert isinstance(restored, ScriptedLM)
    assert (restored.behaviour.seed, restored.behaviour.knowledge) == (12, {"capital of france": "Paris"})
    program = dspy.Predict("question -> answer")
    program.lm = lm
    program.save(str(tmp_path / "p.json"))
    loaded = dspy.Predict("question -> answer")
    loaded.load(str(tmp_path / "p.json"), allow_unsafe_lm_state=True)
    assert isinstance(loaded.lm, ScriptedLM) and loaded.lm.behaviour.seed == 12
    assert loaded(question="What is the capital of France?").answer
    assert loaded.lm.behaviour.calls == 1  # the reloaded LM answered
