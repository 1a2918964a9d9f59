"""DSPy agents with tools and their answers (issue 12 items 5, 6, 8): the tools ReAct and custom tool loops run
are counted, ReAct's outputs stay what they are bare (its error observations include tracebacks), list-valued and
custom answer fields are sized, and the call span names the LM."""

from __future__ import annotations

import asyncio
from typing import Any

import dspy
from dspy.utils import DummyLM

import driftwatch
from driftwatch.integrations import dspy as dw_dspy
from driftwatch.integrations.dspy._calls import lm_model
from driftwatch.testing import Captured, capture


def lookup(city: str) -> str:
    """Look up the weather in a city."""
    return f"It is sunny in {city}."


def broken(code: str) -> str:
    """A tool whose service is down."""
    raise ValueError("the service is down")


_STEPS = [
    {"next_thought": "Look it up.", "next_tool_name": "lookup", "next_tool_args": {"city": "Oslo"}},
    {"next_thought": "Check the other service.", "next_tool_name": "broken", "next_tool_args": {"code": "x1"}},
    {"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}},
    {"reasoning": "The lookup says sunny.", "answer": "Sunny in Oslo."},
]


def _react_run(watched: bool) -> list[Any]:
    """Two sync and two async calls of a ReAct agent with a working and a failing tool; its trajectories."""
    out = []
    with dspy.context(lm=DummyLM(_STEPS * 4)):
        agent = dspy.ReAct("question -> answer", tools=[lookup, broken])
        if watched:
            agent = driftwatch.watch(agent, agent="react-bot")
        for _ in range(2):
            out.append(agent(question="Weather in Oslo?"))

        async def twice() -> list[Any]:
            return [await agent.acall(question="Weather in Oslo?") for _ in range(2)]

        out.extend(asyncio.run(twice()))
    return [dict(p.trajectory) | {"answer": p.answer} for p in out]


def test_react_tool_calls_are_counted_and_its_outputs_unchanged() -> None:
    """Each step's tool is counted (the failing one too; ReAct's finish is not), sync and async; the trajectories,
    with the failing tool's traceback, are the same as bare."""
    dw_dspy.uninstrument()
    bare = _react_run(watched=False)
    with capture() as cap:
        watched = _react_run(watched=True)
        tools = {t: cap.value("driftwatch_tool_calls_total", agent="react-bot", tool=t)
                 for t in ("lookup", "broken", "finish")}
        calls = cap.value("driftwatch_calls_total", agent="react-bot", status="ok")
    dw_dspy.uninstrument()
    assert "Execution error in broken" in bare[0]["observation_1"]  # a traceback is in the output
    assert watched == bare
    assert calls == 4
    assert tools == {"lookup": 4, "broken": 4, "finish": 0}


def weather(city: str) -> str:
    """Weather by city (found by ToolCall.execute in its caller's frame)."""
    return f"Sunny in {city}."


class ToolLoop(dspy.Module):
    """DSPy's manual tool handling: the prediction's ToolCalls, each run with execute()."""

    def __init__(self) -> None:
        super().__init__()
        self.predictor = dspy.Predict("question -> calls: dspy.ToolCalls")

    def forward(self, question: str) -> dspy.Prediction:
        calls = self.predictor(question=question).calls.tool_calls
        return dspy.Prediction(answers=[call.execute() for call in calls])  # functions=None: this frame's names


def test_tool_calls_executed_by_a_custom_loop_are_counted(cap: Captured) -> None:
    """execute() without functions still finds the caller's function; each executed call is counted, and the
    list-valued answer is sized."""
    reply = {"calls": {"tool_calls": [{"name": "weather", "args": {"city": "Lima"}},
                                      {"name": "weather", "args": {"city": "Oslo"}}]}}
    with dspy.context(lm=DummyLM([reply] * 3)):
        program = driftwatch.watch(ToolLoop(), agent="loop")
        outs = [program(question="Weather?") for _ in range(3)]
    assert outs[0].answers == ["Sunny in Lima.", "Sunny in Oslo."]
    assert cap.value("driftwatch_tool_calls_total", agent="loop", tool="weather") == 6
    assert cap.value("driftwatch_output_chars_sum", agent="loop") == 3 * len("Sunny in Lima.\nSunny in Oslo.")


class Notes(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.take = dspy.Predict("claim -> notes: list[str], verdict: str")

    def forward(self, claim: str) -> dspy.Prediction:
        return self.take(claim=claim)


def test_output_key_picks_the_prediction_field(cap: Captured) -> None:
    """configure_agent(output_key=...) names the answer field; without it the last text field counts."""
    reply = {"notes": ["a long note about the claim", "another"], "verdict": "supported"}
    driftwatch.configure_agent("notes-keyed", output_key="notes")
    with dspy.context(lm=DummyLM([reply] * 2)):
        driftwatch.watch(Notes(), agent="notes-keyed")(claim="c")
        driftwatch.watch(Notes(), agent="notes-plain")(claim="c")
    assert cap.value("driftwatch_output_chars_sum", agent="notes-keyed") == len("a long note about the claim\nanother")
    assert cap.value("driftwatch_output_chars_sum", agent="notes-plain") == len("supported")


def test_the_call_span_names_the_lm(cap: Captured) -> None:
    with dspy.context(lm=DummyLM([{"notes": ["n"], "verdict": "v"}])):
        driftwatch.watch(Notes(), agent="named-lm")(claim="c")
    [span] = cap.spans("invoke_agent named-lm")
    assert (span.attributes["gen_ai.provider.name"], span.attributes["gen_ai.request.model"]) == ("dummy", "dummy")
    assert span.attributes["gen_ai.agent.version"] == dw_dspy.program_revision(Notes())


def test_litellm_model_names_split_into_provider_and_model() -> None:
    assert lm_model(dspy.LM("openai/gpt-4o-mini")) == ("openai", "gpt-4o-mini")
    assert lm_model(dspy.LM("anthropic/claude-3-5-haiku-latest")) == ("anthropic", "claude-3-5-haiku-latest")
    assert lm_model(dspy.LM("gemini/gemini-2.0-flash")) == ("gcp.gemini", "gemini-2.0-flash")
    assert lm_model(None) == (None, None)
