"""The cheap hot path of a watched graph: attribution without chain callbacks, and when they stay on."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.types import Command

import driftwatch
from driftwatch.integrations.langgraph import DriftwatchCallbackHandler
from driftwatch.integrations.langgraph._runs import handler_of
from driftwatch.testing import Captured
from tests.helpers.lg_graphs import State, chain_graph, reflect_graph

P0 = "You are a helpful support agent."


def prompt_changes(cap: Captured) -> list[Any]:
    return [c for c in cap.changes() if c.kind == "system_prompt"]


def count_chain_events(monkeypatch: Any) -> list[str]:
    """Records each chain event LangChain hands to driftwatch's handler."""
    seen: list[str] = []
    for name in ("on_chain_start", "on_chain_end"):
        orig = getattr(DriftwatchCallbackHandler, name)

        def spy(self: Any, *args: Any, _orig: Any = orig, _name: str = name, **kwargs: Any) -> Any:
            seen.append(_name)
            return _orig(self, *args, **kwargs)

        monkeypatch.setattr(DriftwatchCallbackHandler, name, spy)
    return seen


def test_invoke_attributes_the_rewrite_without_chain_events(cap: Captured, monkeypatch: Any) -> None:
    """invoke/ainvoke: the node's state writer notes the prompt write; no chain event reaches the handler."""
    seen = count_chain_events(monkeypatch)
    original = reflect_graph()
    graph = driftwatch.watch(original, agent="quiet")
    handler = handler_of(graph)
    assert handler is not None and handler.chain_attribution is False
    graph.invoke({"system_prompt": P0, "question": "hi"})
    graph.invoke({"system_prompt": P0, "question": "rewrite"})

    async def main() -> None:
        await graph.ainvoke({"system_prompt": P0 + " Be brief.", "question": "rewrite"})

    asyncio.run(main())
    assert seen == []
    assert [(c.source, c.node) for c in prompt_changes(cap)] == [("agent", "reflect")] * 2
    assert cap.value("driftwatch_calls_total", agent="quiet", status="ok") == 3.0
    assert cap.value("driftwatch_output_chars_count", agent="quiet") == 3.0
    # the original graph's nodes are untouched: running it records nothing
    mapper = original.nodes["reflect"].writers[0].writes[0].mapper
    assert not getattr(mapper, "_driftwatch_spy", False)
    assert cap.runtime.error_counts == {}


def test_streamed_runs_still_get_their_output(cap: Captured, monkeypatch: Any) -> None:
    """stream: chain events stay on for the run (the root run's output is the call's output)."""
    seen = count_chain_events(monkeypatch)
    graph = driftwatch.watch(reflect_graph(), agent="streamer")
    list(graph.stream({"system_prompt": P0, "question": "hi"}, stream_mode="updates"))
    assert "on_chain_end" in seen
    assert cap.value("driftwatch_output_chars_sum", agent="streamer") == len("Hello there, happy to help.")


def test_command_updates_are_attributed(cap: Captured) -> None:
    """A node returning Command(update=...) with a new prompt is named as its writer."""
    model = FakeListChatModel(responses=["ok"])

    def reflect(state: State) -> Command:
        return Command(update={"system_prompt": state["system_prompt"] + " Be brief."}
                       if "rewrite" in state["question"] else {})

    graph = driftwatch.watch(reflect_graph(model, rewrite=reflect, with_prep=False), agent="cmd")
    graph.invoke({"system_prompt": P0, "question": "hi"})
    graph.invoke({"system_prompt": P0, "question": "rewrite"})
    assert [(c.source, c.node) for c in prompt_changes(cap)] == [("agent", "reflect")]


def test_rewatching_moves_attribution_to_the_new_agent(cap: Captured) -> None:
    """Watching a watched graph again replaces its spies (no double wrapping, the new agent's writes)."""
    first = driftwatch.watch(reflect_graph(), agent="one")
    graph = driftwatch.watch(first, agent="two")
    mapper = graph.nodes["reflect"].writers[0].writes[0].mapper
    assert mapper._driftwatch_spy and not getattr(mapper.__wrapped__, "_driftwatch_spy", False)
    graph.invoke({"system_prompt": P0, "question": "hi"})
    graph.invoke({"system_prompt": P0, "question": "rewrite"})
    assert [(c.agent, c.source, c.node) for c in prompt_changes(cap)] == [("two", "agent", "reflect")]


def test_graph_without_prompt_channels_needs_no_chain_events(cap: Captured, monkeypatch: Any) -> None:
    """No prompt key is a state channel: nothing to attribute, so no spies and no chain events."""
    seen = count_chain_events(monkeypatch)
    model = FakeListChatModel(responses=["ok"])

    from typing import TypedDict

    class QA(TypedDict, total=False):
        question: str
        answer: str

    def agent(state: QA) -> dict[str, Any]:
        return {"answer": model.invoke([SystemMessage(P0), HumanMessage(state["question"])]).content}

    graph = driftwatch.watch(chain_graph(QA, ("agent", agent)), agent="plain")
    assert handler_of(graph).chain_attribution is False
    assert not getattr(graph.nodes["agent"].writers[0].writes[0].mapper, "_driftwatch_spy", False)
    graph.invoke({"question": "hi"})
    assert seen == []
    assert cap.value("driftwatch_calls_total", agent="plain", status="ok") == 1.0


def test_subgraphs_keep_chain_event_attribution(cap: Captured) -> None:
    """A node that runs a subgraph: attribution stays on chain events (inner nodes can write prompts too)."""
    sub = reflect_graph()
    graph = driftwatch.watch(chain_graph(State, ("research", sub)), agent="deep")
    assert handler_of(graph).chain_attribution is True
    graph.invoke({"system_prompt": P0, "question": "hi"})
    graph.invoke({"system_prompt": P0, "question": "rewrite"})
    assert [(c.source, c.node) for c in prompt_changes(cap)] == [("agent", "reflect")]
