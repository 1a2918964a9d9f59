"""A real LangChain agent and a real LangGraph graph run on the scripted chat model, and its prompt steers them."""

from __future__ import annotations

import asyncio
import json
from statistics import mean
from typing import TypedDict

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from driftwatch.demo.scripted_langchain import ScriptedChatModel
from tests.helpers.lg_graphs import reflect_graph


@tool
def search(query: str) -> str:
    """Search the web for facts about cities and countries."""
    return "Paris"


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    return "42"


def test_create_agent_calls_the_fitting_tool_and_answers_from_its_result() -> None:
    """create_agent: the model calls search for a city question, reads the tool result, and answers with it."""
    agent = create_agent(ScriptedChatModel(seed=1), tools=[search, calculator], system_prompt="You are helpful.")
    firsts, answers = [], []
    for i in range(20):
        out = agent.invoke({"messages": [HumanMessage(f"Which city is the capital of France? ({i})")]})
        msgs = out["messages"]
        calls = [m for m in msgs if isinstance(m, AIMessage) and m.tool_calls]
        firsts.append(calls[0].tool_calls[0]["name"] if calls else "")
        if calls:
            assert isinstance(msgs[2], ToolMessage)
        answers.append(msgs[-1])
    assert firsts.count("search") >= 16
    assert all(a.usage_metadata["input_tokens"] > 0 and a.usage_metadata["output_tokens"] > 0
               for a in answers if a.content)
    assert mean("Paris" in a.content for a, f in zip(answers, firsts, strict=True) if f == "search") > 0.9


def test_forced_tool_choice_always_calls_a_tool() -> None:
    """bind_tools(tool_choice="any") forces a tool call even when no description fits the request."""
    model = ScriptedChatModel(seed=2)
    free = model.bind_tools([calculator])
    forced = model.bind_tools([calculator], tool_choice="any")
    request = [HumanMessage("Tell me a story about dragons.")]
    assert sum(bool(free.invoke(request).tool_calls) for _ in range(50)) < 35
    assert all(forced.invoke(request).tool_calls for _ in range(50))


class _State(TypedDict):
    system_prompt: str
    question: str
    answer: str
    turn: int


def _self_editing_graph(model: ScriptedChatModel, rewrite_at: int, new_prompt: str):  # returns a compiled graph
    def reflect(state: _State) -> dict:
        return {"system_prompt": new_prompt} if state["turn"] == rewrite_at else {}

    return reflect_graph(model, state=_State, rewrite=reflect, with_prep=False)


def test_a_graph_that_rewrites_its_system_prompt_changes_behaviour() -> None:
    """A LangGraph agent whose node rewrites its own prompt into a cautious, detailed one refuses more and says more."""
    model = ScriptedChatModel(seed=3)
    graph = _self_editing_graph(model, rewrite_at=200, new_prompt=(
        "Be careful: refuse anything unsafe or that you are not sure about. Explain in detail."))
    prompt = "You are a helpful assistant."
    before, after = [], []
    for turn in range(400):
        out = graph.invoke({"system_prompt": prompt, "question": f"What is {turn % 37} + 5?", "answer": "",
                            "turn": turn})
        prompt = out["system_prompt"]
        (before if turn < 200 else after).append(out["answer"])
    refusal = ("sorry", "cannot assist")
    rate_before = mean(any(r in a for r in refusal) for a in before)
    rate_after = mean(any(r in a for r in refusal) for a in after)
    assert rate_before < 0.06 and rate_after > 0.2
    kept_before = [len(a) for a in before if not any(r in a for r in refusal)]
    kept_after = [len(a) for a in after if not any(r in a for r in refusal)]
    assert mean(kept_after) > 2 * mean(kept_before)


def test_demos_in_the_conversation_steer_the_format() -> None:
    """Few-shot turns answered in JSON make the model answer in JSON."""
    model = ScriptedChatModel(seed=4)
    shots = [HumanMessage("What is 1 + 1?"), AIMessage('{"answer": "2"}'),
             HumanMessage("What is 3 + 3?"), AIMessage('{"answer": "6"}')]

    def is_json(text: str) -> bool:
        try:
            return isinstance(json.loads(text), dict)
        except ValueError:
            return False

    plain = [model.invoke([HumanMessage(f"What is {i} + 2?")]).content for i in range(40)]
    shot = [model.invoke([*shots, HumanMessage(f"What is {i} + 2?")]).content for i in range(40)]
    assert not any(is_json(t) for t in plain)
    assert mean(is_json(t) for t in shot) > 0.8


def test_async_invoke_and_determinism() -> None:
    """ainvoke works, and two models with one seed answer the same sequence identically."""
    a, b = ScriptedChatModel(seed=5), ScriptedChatModel(seed=5)
    questions = [[HumanMessage(f"What is {i} * 3?")] for i in range(10)]
    sync = [a.invoke(q).content for q in questions]

    async def run() -> list[str]:
        return [(await b.ainvoke(q)).content for q in questions]

    assert asyncio.run(run()) == sync
