"""Watched LangGraph graphs: prompt, tool and setting changes, attribution, and per-invoke behaviour."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

import driftwatch
from driftwatch.testing import Captured
from tests.helpers.lg_graphs import (
    State,
    ToolModel,
    chain_graph,
    fan_graph,
    reflect_graph,
    replies,
    tools_graph,
    usage_reply,
)

P0 = "You are a helpful support agent."
BRIEF = P0 + " Be brief."


def prompt_changes(cap: Captured) -> list[Any]:
    return [c for c in cap.changes() if c.kind == "system_prompt"]


def after(cap: Captured, change: Any) -> Any:
    """The state a change led to, read back from the ledger."""
    return cap.ledger.revision(change.after_id).state


def test_reflect_rewrite_is_one_change_attributed_to_the_node(cap: Captured) -> None:
    """Each rewrite by `reflect` is one system_prompt change, source agent, node reflect; none when unchanged."""
    graph = driftwatch.watch(reflect_graph(), agent="bot")
    state = {"system_prompt": P0, "question": "hi"}
    for question in ["hi", "hello", "rewrite please", "thanks", "rewrite again", "bye"]:
        state = graph.invoke({**state, "question": question})
    changes = prompt_changes(cap)
    assert [(c.component, c.source, c.node) for c in changes] == [("agent.system_prompt", "agent", "reflect")] * 2
    assert after(cap, changes[0]) == BRIEF and after(cap, changes[1]) == BRIEF + " Be brief."
    assert cap.value("driftwatch_changes_total", agent="bot", component="agent.system_prompt",
                     kind="system_prompt", source="agent") == 2.0
    assert cap.value("driftwatch_calls_total", agent="bot", status="ok") == 6.0


def test_async_runs_detect_the_rewrite(cap: Captured) -> None:
    """ainvoke (async node, model.ainvoke) sees the same single, attributed change."""
    graph = driftwatch.watch(reflect_graph(), agent="abot")

    async def main() -> None:
        await graph.ainvoke({"system_prompt": P0, "question": "hi"})
        await graph.ainvoke({"system_prompt": P0, "question": "hi"})
        await graph.ainvoke({"system_prompt": P0, "question": "rewrite"})
        await graph.ainvoke({"system_prompt": BRIEF, "question": "hi"})

    asyncio.run(main())
    assert [(c.source, c.node) for c in prompt_changes(cap)] == [("agent", "reflect")]
    assert cap.value("driftwatch_calls_total", agent="abot", status="ok") == 4.0


def test_streaming_runs_detect_the_rewrite(cap: Captured) -> None:
    """stream, astream and astream_events each count as one call and the rewrite as one change."""
    graph = driftwatch.watch(reflect_graph(), agent="sbot")
    chunks = list(graph.stream({"system_prompt": P0, "question": "hi"}, stream_mode="updates"))
    assert [next(iter(c)) for c in chunks] == ["prep", "reflect", "agent"]
    list(graph.stream({"system_prompt": P0, "question": "rewrite"}, stream_mode="messages"))

    async def main() -> list[str]:
        async for _ in graph.astream({"system_prompt": BRIEF, "question": "hi"}):
            pass
        return [e["event"] async for e in graph.astream_events({"system_prompt": BRIEF, "question": "rewrite"},
                                                               version="v2")]

    events = asyncio.run(main())
    assert "on_chat_model_start" in events
    assert [(c.source, c.node, after(cap, c)) for c in prompt_changes(cap)] == [
        ("agent", "reflect", BRIEF), ("agent", "reflect", BRIEF + " Be brief.")]
    assert cap.value("driftwatch_calls_total", agent="sbot", status="ok") == 4.0


def test_prompt_changed_by_the_caller_is_a_runtime_change(cap: Captured) -> None:
    """A new prompt no node wrote is attributed to source runtime, with no node."""
    graph = driftwatch.watch(reflect_graph(), agent="rbot")
    graph.invoke({"system_prompt": P0, "question": "hi"})
    graph.invoke({"system_prompt": "You are a pirate.", "question": "hi"})
    assert [(c.source, c.node, c.magnitude > 0) for c in prompt_changes(cap)] == [("runtime", None, True)]


def test_tool_set_and_model_settings_changes(cap: Captured) -> None:
    """Binding other tools is a `tools` change; another temperature is a `model_params` change."""
    model = ToolModel(messages=replies("ok"))
    graph = driftwatch.watch(tools_graph(model), agent="tbot")
    for question in ["tools:search", "tools:search", "tools:search,calc", "tools:search,calc hot", "tools:search"]:
        graph.invoke({"system_prompt": P0, "question": question})
    kinds = [(c.kind, c.component) for c in cap.changes()]
    assert kinds == [("tools", "agent.tools"), ("model_params", "agent.model_params"),
                     ("tools", "agent.tools"), ("model_params", "agent.model_params")]
    tools = next(c for c in cap.changes() if c.kind == "tools")
    assert [t["name"] for t in after(cap, tools)] == ["calc", "search"]
    params = next(c for c in cap.changes() if c.kind == "model_params")
    assert after(cap, params)["temperature"] == 0.9 and params.source == "runtime"


def test_parallel_branches_each_have_their_own_components(cap: Captured) -> None:
    """Branches running on threads are tracked per node; no internal errors, one call per invoke."""
    seen_threads: set[str] = set()

    class ThreadSpy(BaseCallbackHandler):
        def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
            seen_threads.add(threading.current_thread().name)

    graph = driftwatch.watch(fan_graph(FakeListChatModel(responses=["a"]), FakeListChatModel(responses=["b"])),
                             agent="fan")
    for prompt in [P0, P0, "Other prompt."]:
        graph.invoke({"system_prompt": prompt, "answers": []}, config={"callbacks": [ThreadSpy()]})
    changes = prompt_changes(cap)
    assert sorted(c.component for c in changes) == ["left.system_prompt", "right.system_prompt"]
    assert all(c.source == "runtime" for c in changes)
    assert cap.value("driftwatch_calls_total", agent="fan", status="ok") == 3.0
    assert cap.runtime.error_counts == {}
    assert seen_threads and "MainThread" not in seen_threads  # the branches really ran on pool threads


def test_subgraph_nodes_are_named_by_their_path(cap: Captured) -> None:
    """A model call inside a subgraph node is tracked as `outer/inner.system_prompt`; the run counts once."""
    model = FakeListChatModel(responses=["sub answer"])

    def inner(state: State) -> dict[str, Any]:
        return {"answer": model.invoke([SystemMessage(state["system_prompt"]), HumanMessage("q")]).content}

    outer = reflect_graph(agent=chain_graph(State, ("inner", inner)), agent_name="research", with_prep=False)
    graph = driftwatch.watch(outer, agent="nested")
    graph.invoke({"system_prompt": P0, "question": "hi"})
    graph.invoke({"system_prompt": P0, "question": "rewrite"})
    assert [(c.component, c.source, c.node) for c in prompt_changes(cap)] == [
        ("research/inner.system_prompt", "agent", "reflect")]
    assert cap.value("driftwatch_calls_total", agent="nested", status="ok") == 2.0
    assert [c for c in cap.changes() if c.kind == "topology"] == []  # baseline only


def test_checkpointer_threads_keep_the_rewritten_prompt(cap: Captured) -> None:
    """With a checkpointer the rewrite persists across turns of a thread: one change, not one per turn."""
    graph = driftwatch.watch(reflect_graph(checkpointer=InMemorySaver()), agent="cbot")
    config = {"configurable": {"thread_id": "t1"}}
    graph.invoke({"system_prompt": P0, "question": "hi"}, config)
    graph.invoke({"question": "rewrite"}, config)
    graph.invoke({"question": "and now?"}, config)
    graph.invoke({"question": "still there?"}, config)
    assert graph.get_state(config).values["system_prompt"] == BRIEF
    assert [(c.source, c.node) for c in prompt_changes(cap)] == [("agent", "reflect")]
    assert cap.value("driftwatch_calls_total", agent="cbot", status="ok") == 4.0


def test_user_callbacks_keep_firing(cap: Captured) -> None:
    """Callbacks the user set with with_config and at invoke time see the model calls they see unwatched,
    and driftwatch still sees the run (the rewrite is recorded).

    Both user callbacks fire since LangGraph 1.2.4; before it the invoke-time ones replace the bound ones
    (LangGraph's own behaviour, watched or not), and driftwatch keeps its own handler either way.
    """
    def fired(watched: bool) -> list[str]:
        seen: list[str] = []

        class Spy(BaseCallbackHandler):
            def __init__(self, tag: str) -> None:
                self.tag = tag

            def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
                seen.append(self.tag)

        graph = reflect_graph().with_config(callbacks=[Spy("config")])
        if watched:
            graph = driftwatch.watch(graph, agent="cb")
        for question in ["hi", "rewrite"]:
            graph.invoke({"system_prompt": P0, "question": question}, config={"callbacks": [Spy(question)]})
        return sorted(seen)

    unwatched = fired(False)
    assert {"hi", "rewrite"} <= set(unwatched)
    assert fired(True) == unwatched
    assert [(c.source, c.node) for c in prompt_changes(cap)] == [("agent", "reflect")]
    assert cap.value("driftwatch_calls_total", agent="cb", status="ok") == 2.0


def test_invoke_records_tools_tokens_output_and_span(cap: Captured) -> None:
    """Tool calls by name, token usage and output size reach the call metrics and the invoke_agent span."""
    call = {"name": "search", "args": {"query": "x"}, "id": "c1", "type": "tool_call"}
    model = ToolModel(messages=replies(usage_reply("Done.", tool_calls=[call, {**call, "id": "c2"}])))
    graph = driftwatch.watch(tools_graph(model), agent="usage")
    for _ in range(2):
        out = graph.invoke({"system_prompt": P0, "question": "tools:search"})
    assert out["answer"] == "Done."
    assert cap.value("driftwatch_tool_calls_total", agent="usage", tool="search") == 4.0
    assert cap.value("driftwatch_tokens_total", agent="usage", type="input") == 24.0
    assert cap.value("driftwatch_tokens_total", agent="usage", type="output") == 10.0
    assert cap.value("driftwatch_output_chars_sum", agent="usage") == 2 * len("Done.")
    span = cap.spans("invoke_agent usage")[-1]  # the second run: every component had its baseline
    attrs = dict(span.attributes)
    assert attrs.pop("gen_ai.operation.name") == "invoke_agent"
    assert attrs.pop("gen_ai.agent.name") == "usage"
    assert attrs.pop("gen_ai.agent.version") == cap.runtime.agent_version("usage")
    assert attrs.pop("gen_ai.usage.input_tokens") == 12
    assert attrs.pop("gen_ai.usage.output_tokens") == 5
    assert attrs.pop("driftwatch.output.chars") == len("Done.")
    assert attrs.pop("gen_ai.provider.name") == "toolmodel"  # LangChain's ls_provider for a class of its own
    assert attrs.pop("gen_ai.request.model") == "fake-tool-model"
    assert attrs == {}


def test_a_model_without_a_name_still_gives_its_provider(cap: Captured) -> None:
    """A chat model with a provider but no model name (fake and local models): the provider reaches the span."""
    graph = driftwatch.watch(reflect_graph(), agent="nameless")  # FakeListChatModel: ls_provider, no ls_model_name
    for _ in range(2):
        graph.invoke({"system_prompt": P0, "question": "hi"})
    first, second = (dict(s.attributes) for s in cap.spans("invoke_agent nameless"))
    assert first["gen_ai.provider.name"] == second["gen_ai.provider.name"] == "fakelistchatmodel"
    assert "gen_ai.request.model" not in first and "gen_ai.request.model" not in second


def test_change_span_is_a_child_of_the_invoke_span(cap: Captured) -> None:
    """The driftwatch.change span of a rewrite sits inside the run's invoke_agent span."""
    graph = driftwatch.watch(reflect_graph(), agent="tree")
    graph.invoke({"system_prompt": P0, "question": "hi"})
    graph.invoke({"system_prompt": P0, "question": "rewrite"})
    (change,) = cap.spans("driftwatch.change")
    invoke = cap.spans("invoke_agent tree")[-1]
    assert change.parent is not None and change.parent.span_id == invoke.context.span_id
    assert change.attributes["driftwatch.change.node"] == "reflect"
    assert prompt_changes(cap)[0].trace_id == format(invoke.context.trace_id, "032x")


def test_user_errors_pass_through_and_count_as_error(cap: Captured) -> None:
    """An exception raised by a node reaches the caller unchanged and is recorded with status error."""

    class BoomError(RuntimeError):
        pass

    def explode(state: State) -> dict[str, Any]:
        raise BoomError("node failed")

    builder = StateGraph(State)
    builder.add_node("explode", explode)
    builder.add_edge(START, "explode")
    builder.add_edge("explode", END)
    graph = driftwatch.watch(builder.compile(), agent="err")
    with pytest.raises(BoomError, match="node failed"):
        graph.invoke({"question": "x"})

    async def main() -> None:
        async for _ in graph.astream({"question": "x"}):
            pass

    with pytest.raises(BoomError):
        asyncio.run(main())
    assert cap.value("driftwatch_calls_total", agent="err", status="error") == 2.0
    (span, _) = cap.spans("invoke_agent err")
    assert span.attributes["error.type"].endswith("BoomError")


def test_internal_errors_never_reach_the_agent(cap: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure inside driftwatch's handler is counted (stage langgraph); the run returns its normal result."""
    from driftwatch.integrations.langgraph import _handler

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("driftwatch bug")

    monkeypatch.setattr(_handler, "observe_request", broken)
    graph = driftwatch.watch(reflect_graph(), agent="safe")
    out = graph.invoke({"system_prompt": P0, "question": "hi"})
    assert out["answer"] == "Hello there, happy to help."
    assert cap.runtime.error_counts.get("langgraph") == 1
    assert cap.value("driftwatch_internal_errors_total", stage="langgraph") == 1.0
    assert cap.value("driftwatch_calls_total", agent="safe", status="ok") == 1.0


def test_stopping_a_stream_early_records_the_call(cap: Captured) -> None:
    """A consumer that breaks out of stream() ends the run: one ok call, no error, no leaked run state."""
    from driftwatch.integrations.langgraph._handler import ACTIVE

    graph = driftwatch.watch(reflect_graph(), agent="early")
    stream = graph.stream({"system_prompt": P0, "question": "hi"}, stream_mode="updates")
    first = next(stream)
    stream.close()
    assert "prep" in first
    assert ACTIVE.get() is None
    assert cap.value("driftwatch_calls_total", agent="early", status="ok") == 1.0


def test_watched_graph_is_the_same_kind_of_object() -> None:
    """watch() returns a CompiledStateGraph with the same name and nodes, and with_config copies stay watched."""
    from langgraph.graph.state import CompiledStateGraph

    graph = reflect_graph()
    watched = driftwatch.watch(graph, agent="same")
    assert isinstance(watched, CompiledStateGraph) and type(watched).__name__ == type(graph).__name__
    assert watched.name == graph.name and list(watched.nodes) == list(graph.nodes)
    again = watched.with_config(recursion_limit=5)
    assert type(again) is type(watched)
    assert not (graph.config or {}).get("callbacks")  # the original is untouched


def _templated_graph() -> Any:
    """`reflect` may rewrite the prompt; `agent` appends the user's name to it on every call."""
    model = FakeListChatModel(responses=["Hi."])

    class UserState(State, total=False):
        user: str

    def agent(state: UserState) -> dict[str, Any]:
        system = f"{state['system_prompt']} You are talking to {state['user']}."
        return {"answer": model.invoke([SystemMessage(system), HumanMessage(state["question"])]).content}

    return reflect_graph(state=UserState, agent=agent, with_prep=False)


def test_normalize_prompt_ignores_per_request_parts(cap: Captured) -> None:
    """normalize_prompt= strips a templated user name: other users are no change, a real rewrite still is."""
    import re

    plain = driftwatch.watch(_templated_graph(), agent="templ-plain")
    normalized = driftwatch.watch(_templated_graph(), agent="templ",
                                  normalize_prompt=lambda s: re.sub(r"talking to \w+", "talking to <user>", s))
    for graph in (plain, normalized):
        prompt = P0
        for user, question in [("ann", "hi"), ("bob", "hi"), ("cy", "hi"), ("cy", "rewrite"), ("dee", "hi")]:
            prompt = graph.invoke({"system_prompt": prompt, "user": user, "question": question})["system_prompt"]
    assert len(cap.changes(agent="templ-plain")) == 4  # without it, every new user looks like an edit
    (change,) = cap.changes(agent="templ")
    assert (change.source, change.node) == ("agent", "reflect")
    assert after(cap, change) == BRIEF + " You are talking to <user>."


def test_normalize_prompt_must_be_callable() -> None:
    """A normalize_prompt that is not a function is a one-line TypeError naming it."""
    with pytest.raises(TypeError, match="normalize_prompt='x'"):
        driftwatch.watch(reflect_graph(), agent="n", normalize_prompt="x")
