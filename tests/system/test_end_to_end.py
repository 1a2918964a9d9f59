"""Self-tuning on the scripted model drifts for real: the drift engine raises an alarm and the report shows it."""

from __future__ import annotations

import driftwatch
from driftwatch.demo.scripted import Prompt, ScriptedModel
from driftwatch.report import build_report
from driftwatch.testing import capture


def test_a_prompt_rewrite_raises_an_alarm_anchored_at_it_and_the_report_links_them() -> None:
    """A rewrite asking for detail and caution: an output_chars alarm (among others) anchored at the change."""
    with capture(drift_reference_calls=300) as cap:
        model = ScriptedModel(seed=5)
        state = {"prompt": "You are a helpful assistant."}

        @driftwatch.watch(agent="bot")
        def answer(question: str) -> str:
            driftwatch.track("bot", "system_prompt", state["prompt"], kind="system_prompt", source="agent")
            return model.respond(Prompt(state["prompt"], question)).text

        for i in range(1600):
            if i == 1000:
                state["prompt"] = "Be careful: refuse anything unsafe. Explain in detail."
            answer(f"What is {i % 40} + 3?")
        (change,) = cap.changes()
        alarms = cap.ledger.alarms(agent="bot")
        cap.runtime.windows.flush()
        page = build_report(cap.ledger)
    assert alarms, "no drift alarm after the rewrite"
    assert all(a.anchor_change_id == change.id for a in alarms)
    by_signal = {a.signal: a for a in alarms}
    assert "output_chars" in by_signal and by_signal["output_chars"].calls_since_anchor < 200
    assert f"anchored at change <a href='#c-{change.id[:12]}'>" in page


def test_a_watched_create_agent_on_the_scripted_model_reports_tools_and_tokens() -> None:
    """create_agent on ScriptedChatModel, watched: the prompt change, its tool mix and tokens reach the report."""
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from driftwatch.demo.scripted_langchain import ScriptedChatModel

    @tool
    def search(query: str) -> str:
        """Search the web for facts about cities and countries."""
        return "Paris"

    @tool
    def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression."""
        return "42"

    with capture() as cap:
        model = ScriptedChatModel(seed=1)
        for prompt in ("You are helpful.", "You are helpful. Use the calculator for everything."):
            agent = driftwatch.watch(create_agent(model, tools=[search, calculator], system_prompt=prompt),
                                     agent="sb")
            for i in range(30):
                agent.invoke({"messages": [{"role": "user", "content": f"Which city is the capital of France? {i}"}]})
        (change,) = cap.changes()
        cap.runtime.windows.flush()
        before, after = cap.ledger.windows(agent="sb")
        page = build_report(cap.ledger)
    assert change.kind == "system_prompt"
    assert before.tools.get("search", 0) >= 24 and after.tools.get("calculator", 0) >= 20  # the prompt steers tools
    assert before.input_tokens > 0 and before.output_tokens > 0
    assert 'aria-label="tool mix (share of calls)"' in page and 'aria-label="tokens per call (tokens)"' in page


def test_copro_on_a_watched_program_records_the_run_the_change_and_the_drift_it_causes() -> None:
    """A watched DSPy program tuned by a real COPRO on the scripted LM: run, change and an output_chars alarm."""
    import random

    import dspy

    from driftwatch.demo.scripted_dspy import ScriptedLM

    rnd = random.Random(0)

    def example() -> dspy.Example:
        a, b = rnd.randint(1, 50), rnd.randint(1, 50)
        return dspy.Example(question=f"What is {a} + {b}?", answer=str(a + b)).with_inputs("question")

    def metric(e: dspy.Example, p: dspy.Prediction, trace: object = None) -> bool:
        return e.answer in p.answer

    train = [example() for _ in range(20)]
    with capture(drift_reference_calls=200) as cap, dspy.context(lm=ScriptedLM(seed=1)):
        program = driftwatch.watch(dspy.Predict("question -> answer"), agent="qa")
        for e in [example() for _ in range(300)]:
            program(question=e.question)
        compiled = dspy.COPRO(metric=metric, breadth=4, depth=2, init_temperature=1.0).compile(
            program, trainset=train, eval_kwargs={"num_threads": 1, "display_progress": False})
        for e in [example() for _ in range(300)]:
            compiled(question=e.question)
        (run,) = cap.ledger.runs()
        (change,) = cap.changes()
        alarms = cap.ledger.alarms(agent="qa")
    assert (run.optimizer, run.outcome) == ("COPRO", "ok") and run.candidates > 0
    assert (change.kind, change.source, change.run_id) == ("instructions", "COPRO", run.id)
    assert compiled.signature.instructions != program.signature.instructions
    assert any(a.signal == "output_chars" and a.anchor_change_id == change.id for a in alarms)
