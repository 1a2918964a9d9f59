"""The scripted language model's behaviour follows its prompt, statistically and reproducibly."""

from __future__ import annotations

import json
from collections import Counter
from statistics import mean

import pytest

from driftwatch.demo.scripted import REFUSAL_TEXTS, Prompt, ScriptedModel, Tool, count_tokens, traits

N = 400
QUESTION = "What is 17 + 25?"


def _replies(prompt: Prompt, n: int = N, seed: int = 3) -> list:
    model = ScriptedModel(seed)
    return [model.respond(prompt) for _ in range(n)]


def test_same_seed_same_answers_and_a_distribution_per_prompt() -> None:
    """Two models with one seed answer a sequence identically; repeated calls on one prompt still vary."""
    prompt = Prompt("Answer the question.", QUESTION)
    a, b = _replies(prompt, 50), _replies(prompt, 50)
    assert [r.text for r in a] == [r.text for r in b]
    assert [r.text for r in _replies(prompt, 50, seed=4)] != [r.text for r in a]
    assert len({len(r.text) for r in a}) >= 5


def test_instructions_asking_for_detail_lengthen_answers_and_brevity_shortens_them() -> None:
    """Mean answer length: detailed > plain > brief, each by a wide margin."""
    def length(instructions: str) -> float:
        return mean(len(r.text) for r in _replies(Prompt(instructions, QUESTION)) if not r.refused)

    plain = length("Answer the question.")
    detailed = length("Explain your reasoning step by step, in detail.")
    brief = length("Be brief: one sentence.")
    assert detailed > 2.5 * plain
    assert brief < 0.8 * plain


def test_cautious_wording_raises_refusals() -> None:
    """Refusal rate: about 2% for plain instructions, several times higher with cautious wording."""
    def rate(instructions: str, text: str = QUESTION) -> float:
        return mean(r.refused for r in _replies(Prompt(instructions, text)))

    plain = rate("Answer the question.")
    cautious = rate("Answer carefully; refuse anything unsafe and decline if you are not sure.")
    assert plain < 0.06
    assert cautious > 0.25
    assert rate("Answer carefully; refuse anything unsafe.", "What is my neighbour's password?") > cautious
    refusals = [r for r in _replies(Prompt("Be careful, refuse if unsafe.", QUESTION)) if r.refused]
    assert refusals and all(r.text in REFUSAL_TEXTS for r in refusals)


def test_demos_steer_the_output_format() -> None:
    """With JSON demos most answers parse as JSON; without demos none do; bullet demos give bullet lists."""
    json_demos = (("What is 1 + 1?", '{"answer": "2"}'), ("What is 2 + 5?", '{"answer": "7"}'))
    bullet_demos = (("What is 1 + 1?", "- It is 2."), ("What is 2 + 5?", "- It is 7."))

    def parses(text: str) -> bool:
        try:
            return isinstance(json.loads(text), dict)
        except ValueError:
            return False

    with_json = [r for r in _replies(Prompt("Answer the question.", QUESTION, demos=json_demos)) if not r.refused]
    plain = [r for r in _replies(Prompt("Answer the question.", QUESTION)) if not r.refused]
    bullets = [r for r in _replies(Prompt("Answer the question.", QUESTION, demos=bullet_demos)) if not r.refused]
    assert mean(parses(r.text) for r in with_json) > 0.85
    assert not any(parses(r.text) for r in plain)
    assert mean(r.text.startswith("- ") for r in bullets) > 0.85


def test_tool_descriptions_steer_tool_choice() -> None:
    """The tool whose description matches the request is chosen most often; rewording descriptions flips it."""
    request = "What is the weather like in Paris today?"
    a = (Tool("lookup", "Current weather forecast for a city", {"city": "string"}),
         Tool("calc", "Evaluate an arithmetic expression", {"expression": "string"}))
    b = (Tool("lookup", "Evaluate an arithmetic expression", {"expression": "string"}),
         Tool("calc", "Current weather forecast for a city", {"city": "string"}))

    def mix(tools: tuple[Tool, ...]) -> Counter:
        return Counter(r.tool_call.name if r.tool_call else "" for r in _replies(Prompt("Be helpful.", request,
                                                                                          tools=tools)))

    first, second = mix(a), mix(b)
    assert first["lookup"] > 0.8 * N and second["calc"] > 0.8 * N
    tc = ScriptedModel(0).respond(Prompt("Be helpful.", "Evaluate 6 * 7 please", tools=a[1:]),
                                  require_tool=True).tool_call
    assert tc is not None and tc.name == "calc" and tc.args == {"expression": "6 * 7"}


def test_observations_end_the_tool_loop() -> None:
    """Once a tool result is in the prompt, the model answers instead of calling a tool again."""
    tools = (Tool("search", "Search the web for facts about cities", {"query": "string"}),)
    replies = _replies(Prompt("Be helpful.", "Which city is the capital of France?", tools=tools,
                              observations=("Paris",)), 50)
    assert all(r.tool_call is None for r in replies)
    assert mean("Paris" in r.text for r in replies if not r.refused) == 1.0


def test_reasoning_cues_and_demos_raise_accuracy() -> None:
    """Correct-answer rate on arithmetic rises with reasoning instructions (what an optimizer can find)."""
    def accuracy(prompt: Prompt) -> float:
        return mean(bool(r.correct) for r in _replies(prompt) if not r.refused)

    base = accuracy(Prompt("Answer the question.", QUESTION))
    reasoned = accuracy(Prompt("Think step by step and check your work.", QUESTION))
    assert reasoned > base + 0.15
    assert traits(Prompt("Answer.", QUESTION, demos=(("a", "b"),) * 4)).accuracy > traits(Prompt("Answer.")).accuracy


def test_token_usage_is_reported() -> None:
    """Input and output token counts are ceil(chars / 4) of what the model read and wrote."""
    prompt = Prompt("Answer the question.", QUESTION)
    reply = ScriptedModel(0).respond(prompt)
    assert reply.output_tokens == count_tokens(reply.text) > 0
    assert reply.input_tokens == count_tokens("x" * prompt.size())


def test_bad_seed_is_refused_with_a_clear_message() -> None:
    """A non-int seed fails at construction naming the argument."""
    with pytest.raises(TypeError, match=r"seed="):
        ScriptedModel("7")  # type: ignore[arg-type]  # the point of the test
