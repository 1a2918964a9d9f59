"""DriftwatchMiddleware alone gives the full per-call record (issue 12 item 2): one call record and one
invoke_agent span per run, sync, async and streamed, with its output, tools and conversation; with
driftwatch.watch as well, still one per run. (From langchain 1.4, whose create_agent keeps the middleware's
stream transformers, the marker, on the graph: skipped below it, in the minimum-versions run.)"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage

import driftwatch
from driftwatch.integrations import langgraph as dw_langgraph
from driftwatch.integrations._common import parse_version
from driftwatch.integrations.langgraph import DriftwatchMiddleware
from driftwatch.testing import Captured
from tests.helpers.lg_graphs import ToolModel, replies, search

pytestmark = pytest.mark.skipif(parse_version(version("langchain")) < (1, 4),
                                reason="the middleware records runs alone from langchain 1.4 (found "
                                       f"{version('langchain')})")

P0 = "You are a support agent."
ANSWER = "Your order shipped yesterday."


def _agent(name: str) -> Any:
    call = AIMessage(content="", tool_calls=[{"name": "search", "args": {"query": "order"}, "id": "s",
                                              "type": "tool_call"}])
    model = ToolModel(messages=replies(call, ANSWER))
    return create_agent(model, tools=[search], system_prompt=P0, middleware=[DriftwatchMiddleware(agent=name)])


def _ask(text: str = "Where is my order?") -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


def _calls(cap: Captured, agent: str) -> float:
    return cap.value("driftwatch_calls_total", agent=agent, status="ok")


def test_invoke_records_one_call_with_output_tools_and_span(cap: Captured) -> None:
    agent = _agent("mw-alone")
    for i in range(3):
        out = agent.invoke(_ask(), {"configurable": {"thread_id": f"t{i}"}})
        assert out["messages"][-1].content == ANSWER
    assert _calls(cap, "mw-alone") == 3
    assert cap.value("driftwatch_output_chars_sum", agent="mw-alone") == 3 * len(ANSWER)
    assert cap.value("driftwatch_tool_calls_total", agent="mw-alone", tool="search") == 3
    spans = cap.spans("invoke_agent mw-alone")
    assert [dict(s.attributes)["gen_ai.conversation.id"] for s in spans] == ["t0", "t1", "t2"]
    assert {dict(s.attributes)["gen_ai.request.model"] for s in spans} == {"fake-tool-model"}
    assert {c.component for c in cap.changes(agent="mw-alone", baselines=True)} >= {"graph", "model.system_prompt"}


def test_ainvoke_and_astream_record_one_call_each(cap: Captured) -> None:
    agent = _agent("mw-async")

    async def main() -> list[Any]:
        first = await agent.ainvoke(_ask())
        chunks = [c async for c in agent.astream(_ask(), stream_mode="values")]
        return [first, chunks[-1]]

    outs = asyncio.run(main())
    assert [o["messages"][-1].content for o in outs] == [ANSWER, ANSWER]
    assert _calls(cap, "mw-async") == 2
    assert cap.value("driftwatch_output_chars_count", agent="mw-async") == 2
    assert len(cap.spans("invoke_agent mw-async")) == 2


def test_middleware_and_watch_record_each_stream_once(cap: Captured) -> None:
    """The graph watched with driftwatch.watch too: each run (invoke or stream) is one call, one span."""
    agent = driftwatch.watch(_agent("mw-both"), agent="mw-both")
    agent.invoke(_ask())
    list(agent.stream(_ask()))
    assert _calls(cap, "mw-both") == 2
    assert len(cap.spans("invoke_agent mw-both")) == 2
    assert cap.value("driftwatch_tool_calls_total", agent="mw-both", tool="search") == 2


def test_the_middleware_rearms_after_uninstrument(cap: Captured) -> None:
    """uninstrument() takes the run patches back; the middleware's next model call puts them back, so only the
    run during which that happened goes unrecorded."""
    agent = _agent("mw-rearm")
    agent.invoke(_ask())
    dw_langgraph.uninstrument()
    agent.invoke(_ask())  # not recorded: the patches were gone when it started
    agent.invoke(_ask())
    assert _calls(cap, "mw-rearm") == 2
    assert cap.value("driftwatch_tool_calls_total", agent="mw-rearm", tool="search") == 2


def test_a_graph_without_the_marker_says_once_that_its_runs_are_not_recorded(cap: Captured,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    """A create_agent that keeps no middleware marker (LangChain < 1.4) records changes but no calls, and the
    middleware says so once on the driftwatch logger, naming the fix."""
    agent = _agent("mw-old")
    agent = agent.copy({"stream_transformers": ()})  # what an older create_agent builds
    with caplog.at_level(logging.WARNING, logger="driftwatch"):
        for _ in range(3):
            agent.invoke(_ask())
    assert _calls(cap, "mw-old") == 0
    assert "model.system_prompt" in {c.component for c in cap.changes(agent="mw-old", baselines=True)}
    warnings = [r.getMessage() for r in caplog.records if "runs are not recorded" in r.getMessage()]
    assert len(warnings) == 1 and "driftwatch.watch(agent_graph, agent='mw-old')" in warnings[0]
