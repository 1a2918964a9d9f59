"""instrument()/uninstrument(), bad input, and OpenInference / OpenLLMetry running alongside."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackManager, CallbackManager
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.memory import InMemoryStore

import driftwatch
from driftwatch.integrations import langgraph as lg
from driftwatch.testing import Captured
from tests.helpers.lg_graphs import State, reflect_graph

P0 = "You are a helpful support agent."


@pytest.fixture
def instrumented() -> Iterator[None]:
    lg.instrument()
    try:
        yield
    finally:
        lg.uninstrument()


def run_turns(graph: Any, questions: list[str]) -> None:
    state: dict[str, Any] = {"system_prompt": P0}
    for q in questions:
        state = graph.invoke({**state, "question": q})


def test_instrument_covers_every_graph(cap: Captured, instrumented: None) -> None:
    """An unwatched graph is recorded under its name: calls, topology baseline and attributed rewrites."""
    graph = reflect_graph()
    graph.name = "support"
    run_turns(graph, ["hi", "rewrite", "thanks"])
    assert cap.value("driftwatch_calls_total", agent="support", status="ok") == 3.0
    assert [(c.component, c.source, c.node) for c in cap.changes()] == [("agent.system_prompt", "agent", "reflect")]
    assert cap.ledger.head("support", "graph") is not None


def test_instrument_reaches_threads_started_before_it(cap: Captured) -> None:
    """Graphs invoked on pool threads that existed before instrument() are covered too."""
    with ThreadPoolExecutor(2) as pool:
        pool.submit(lambda: None).result()
        lg.instrument()
        try:
            pool.submit(run_turns, reflect_graph(), ["hi", "rewrite"]).result()
        finally:
            lg.uninstrument()
    assert cap.value("driftwatch_calls_total", agent="LangGraph", status="ok") == 2.0
    assert [c.node for c in cap.changes()] == ["reflect"]


def test_instrument_is_idempotent_and_uninstrument_undoes_it(cap: Captured) -> None:
    """Two instrument() calls patch once; uninstrument() restores the originals and stops recording."""
    names = ("invoke", "ainvoke", "stream", "astream")
    originals = (BaseCallbackManager.__dict__["__init__"], *(Pregel.__dict__[n] for n in names))
    lg.instrument()
    lg.instrument()
    try:
        assert lg.is_instrumented()
        handlers = CallbackManager(handlers=[]).handlers
        assert sum(isinstance(h, lg.DriftwatchCallbackHandler) for h in handlers) == 1
        run_turns(reflect_graph(), ["hi"])
    finally:
        lg.uninstrument()
        lg.uninstrument()
    assert (BaseCallbackManager.__dict__["__init__"], *(Pregel.__dict__[n] for n in names)) == originals
    assert not lg.is_instrumented()
    assert CallbackManager(handlers=[]).handlers == []
    run_turns(reflect_graph(), ["hi"])
    assert cap.value("driftwatch_calls_total", agent="LangGraph", status="ok") == 1.0


def test_watched_graphs_keep_their_agent_under_instrument(cap: Captured, instrumented: None) -> None:
    """With instrument() on, a watched graph is recorded once, under its own agent name, not the graph's."""
    graph = driftwatch.watch(reflect_graph(), agent="mine")
    run_turns(graph, ["hi", "rewrite"])
    assert cap.value("driftwatch_calls_total", agent="mine", status="ok") == 2.0
    assert cap.value("driftwatch_calls_total", agent="LangGraph", status="ok") == 0.0
    assert [(c.agent, c.node) for c in cap.changes()] == [("mine", "reflect")]


def test_instrument_watches_graph_stores_when_asked(cap: Captured) -> None:
    """instrument(store_namespaces=...) watches the store of each graph it runs."""
    from langgraph.config import get_store

    def save(state: State) -> dict[str, Any]:
        get_store().put(("prompts",), "sys", {"text": state["system_prompt"]})
        return {}

    builder = StateGraph(State)
    builder.add_node("save", save)
    builder.set_entry_point("save")
    graph = builder.compile(store=InMemoryStore())
    lg.instrument(store_namespaces=[("prompts",)])
    try:
        for prompt in ["a", "b"]:
            graph.invoke({"system_prompt": prompt})
    finally:
        lg.uninstrument()
    assert [(c.component, c.kind) for c in cap.changes()] == [("store:prompts/sys", "store")]


@pytest.mark.parametrize(("options", "message"), [
    ({"prompt_key": "x"}, "unknown option.*prompt_key"),
    ({"prompt_keys": 5}, "prompt_keys=5"),
    ({"store_namespaces": [3]}, "store_namespaces="),
])
def test_bad_options_are_one_line_errors_naming_them(options: dict[str, Any], message: str) -> None:
    """A wrong option to watch() raises TypeError naming the option."""
    graph = reflect_graph()
    graph.store = InMemoryStore()
    with pytest.raises(TypeError, match=message):
        driftwatch.watch(graph, agent="bad", **options)


def test_uncompiled_builders_and_classes_are_refused() -> None:
    """watch() on a StateGraph builder or a graph class says what to watch instead."""
    with pytest.raises(TypeError, match="watch the compiled graph"):
        driftwatch.watch(StateGraph(State), agent="b")
    with pytest.raises(TypeError, match="cannot watch the class"):
        driftwatch.watch(Pregel, agent="b")


def test_a_chat_model_can_be_watched_for_changes(cap: Captured) -> None:
    """A bare chat model watched with driftwatch.watch reports its prompt changes (component `model`)."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.messages import HumanMessage, SystemMessage

    model = driftwatch.watch(FakeListChatModel(responses=["ok"]), agent="bare")
    for prompt in [P0, P0, "New prompt."]:
        assert model.invoke([SystemMessage(prompt), HumanMessage("q")]).content == "ok"
    assert [c.component for c in cap.changes()] == ["model.system_prompt"]


PEER_RUN = """
import json, sys, warnings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import driftwatch
from driftwatch.testing import capture
from tests.helpers.lg_graphs import reflect_graph

with warnings.catch_warnings():  # the peers' own import-time deprecations are not under test
    warnings.simplefilter("ignore")
    if sys.argv[1] == "openinference":
        from openinference.instrumentation.langchain import LangChainInstrumentor as Instrumentor
    else:
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor as Instrumentor
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
Instrumentor().instrument(tracer_provider=provider)
with capture() as cap:
    graph = driftwatch.watch(reflect_graph(), agent="peer")
    state = {"system_prompt": "You are a helpful support agent.", "question": "hi"}
    for q in ["hi", "rewrite", "thanks"]:
        state = graph.invoke({**state, "question": q})
    print(json.dumps({
        "answer": state["answer"], "peer_spans": len(exporter.get_finished_spans()),
        "calls": cap.value("driftwatch_calls_total", agent="peer", status="ok"),
        "changes": [[c.source, c.node] for c in cap.changes()], "errors": cap.runtime.error_counts,
    }))
"""


@pytest.mark.parametrize("peer", ["openinference", "openllmetry"])
def test_peer_instrumentation_keeps_working_alongside(peer: str) -> None:
    """With OpenInference or OpenLLMetry instrumented, both they and driftwatch record the runs.

    Each peer runs in a child process: OpenLLMetry's uninstrument() leaves its handler behind.
    """
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", PEER_RUN, peer], capture_output=True, text=True, timeout=120,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["answer"] == "Hello there, happy to help."
    assert out["peer_spans"] >= 3 * 4  # the peer traced the graph, its nodes and the model
    assert out["calls"] == 3.0
    assert out["changes"] == [["agent", "reflect"]]
    assert out["errors"] == {}


def test_instrument_covers_async_runs(cap: Captured, instrumented: None) -> None:
    """ainvoke and astream of an unwatched graph are recorded once each, with the rewrite attributed."""
    import asyncio

    graph = reflect_graph()

    async def main() -> None:
        await graph.ainvoke({"system_prompt": P0, "question": "hi"})
        async for _ in graph.astream({"system_prompt": P0, "question": "rewrite"}, stream_mode="updates"):
            pass

    asyncio.run(main())
    assert cap.value("driftwatch_calls_total", agent="LangGraph", status="ok") == 2.0
    assert [(c.source, c.node) for c in cap.changes()] == [("agent", "reflect")]


def test_interrupt_and_resume_run_cleanly(cap: Captured, instrumented: None,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """A human-in-the-loop interrupt and its resume are two ok runs, with no callback errors logged."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command, interrupt

    def ask(state: State) -> dict[str, Any]:
        return {"answer": interrupt("approve?")}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.set_entry_point("ask")
    graph = driftwatch.watch(builder.compile(checkpointer=InMemorySaver()), agent="hitl")
    config = {"configurable": {"thread_id": "1"}}
    first = graph.invoke({"question": "x"}, config)
    assert "__interrupt__" in first
    assert graph.invoke(Command(resume="yes"), config)["answer"] == "yes"
    assert cap.value("driftwatch_calls_total", agent="hitl", status="ok") == 2.0
    assert not [r for r in caplog.records if "DriftwatchCallbackHandler" in r.getMessage()]


def test_too_old_frameworks_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """With LangGraph older than the supported minimum, watch() and instrument() raise DidNotEnable with the fix."""
    from driftwatch.integrations import MINIMUM_VERSIONS, DidNotEnable

    monkeypatch.setitem(MINIMUM_VERSIONS, "langgraph", "99.0.0")
    with pytest.raises(DidNotEnable, match=r"langgraph>=99\.0\.0 .*pip install 'driftwatch-agents\[langgraph\]'"):
        driftwatch.watch(reflect_graph(), agent="old")
    with pytest.raises(DidNotEnable):
        lg.instrument()
    assert not lg.is_instrumented()


def test_uninstrument_keeps_a_later_instrumentor_working(cap: Captured) -> None:
    """OpenInference instrumented after instrument(): our uninstrument() leaves its wrapper (and spans) intact."""
    import warnings

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    with warnings.catch_warnings():  # OpenInference's own import-time deprecations are not under test
        warnings.simplefilter("ignore")
        from openinference.instrumentation.langchain import LangChainInstrumentor
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    lg.instrument()
    peer = LangChainInstrumentor()
    peer.instrument(tracer_provider=provider)
    try:
        lg.uninstrument()
        run_turns(reflect_graph(), ["hi"])
    finally:
        peer.uninstrument()
    assert len(exporter.get_finished_spans()) >= 4
    assert cap.value("driftwatch_calls_total", agent="LangGraph", status="ok") == 0.0
    assert not any(isinstance(h, lg.DriftwatchCallbackHandler) for h in CallbackManager(handlers=[]).handlers)


def test_uninstrument_under_later_wrappers_keeps_them_and_restores_the_rest(cap: Captured) -> None:
    """Another tool wraps Pregel.invoke and a store's batch after driftwatch: uninstrument() keeps both wrappers
    (ours under them pass calls through) and puts every other patch back."""
    pristine = {name: Pregel.__dict__[name] for name in ("invoke", "ainvoke", "stream", "astream")}
    init = BaseCallbackManager.__dict__["__init__"]
    batch, abatch = InMemoryStore.__dict__["batch"], InMemoryStore.__dict__["abatch"]
    store = InMemoryStore()
    lg.instrument()
    lg.watch_store(store, agent="mem", namespaces="prompts")
    ours_invoke, ours_batch = Pregel.__dict__["invoke"], InMemoryStore.__dict__["batch"]
    seen: list[str] = []

    def other_invoke(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append("invoke")
        return ours_invoke(self, *args, **kwargs)

    def other_batch(self: Any, ops: Any) -> Any:
        seen.append("batch")
        return ours_batch(self, ops)

    Pregel.invoke = other_invoke  # type: ignore[method-assign]  # the later instrumentor
    InMemoryStore.batch = other_batch  # type: ignore[method-assign]
    try:
        run_turns(reflect_graph(), ["hi"])
        store.put(("prompts",), "p", {"text": P0})
        store.put(("prompts",), "p", {"text": P0 + " Be brief."})
        assert cap.value("driftwatch_calls_total", agent="LangGraph", status="ok") == 1.0  # ours live before
        assert len(cap.changes(agent="mem")) == 1
        lg.uninstrument()
        assert Pregel.__dict__["invoke"] is other_invoke and InMemoryStore.__dict__["batch"] is other_batch
        assert all(Pregel.__dict__[n] is pristine[n] for n in ("ainvoke", "stream", "astream"))
        assert BaseCallbackManager.__dict__["__init__"] is init and InMemoryStore.__dict__["abatch"] is abatch
        seen.clear()
        run_turns(reflect_graph(), ["hi"])
        store.put(("prompts",), "p", {"text": P0 + " Cite sources."})
        assert seen == ["invoke", "batch"]  # their wrappers still run
        assert cap.value("driftwatch_calls_total", agent="LangGraph", status="ok") == 1.0  # ours record nothing
        assert len(cap.changes(agent="mem")) == 1
        assert store.get(("prompts",), "p").value == {"text": P0 + " Cite sources."}
    finally:
        lg.uninstrument()
        Pregel.invoke = pristine["invoke"]  # type: ignore[method-assign]
        InMemoryStore.batch = batch  # type: ignore[method-assign]
