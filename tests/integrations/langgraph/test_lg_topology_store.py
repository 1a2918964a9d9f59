"""Topology fingerprints of factory-built graphs, LangGraph Store writes, and LangMem prompt optimizers."""

from __future__ import annotations

import asyncio
import warnings
from types import SimpleNamespace
from typing import Any

import pytest
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore

import driftwatch
from driftwatch.integrations.langgraph import topology
from driftwatch.testing import Captured
from tests.helpers.lg_graphs import State, ToolModel, reflect_graph, replies

with warnings.catch_warnings():  # langmem 0.0.30 imports a name LangGraph 1.x deprecates (their bug, not ours)
    warnings.simplefilter("ignore", DeprecationWarning)
    from langmem.prompts.gradient import GradientPromptOptimizer

P0 = "You are a helpful support agent."


def test_factory_of_a_different_shape_is_one_topology_change(cap: Captured) -> None:
    """Two compiles of the same shape are one baseline; a compile with an extra node is one topology change."""

    @driftwatch.watch(agent="factory")
    def build(extra: bool = False) -> Any:
        return reflect_graph(extra_node=extra)

    first = build()
    build()
    third = build(extra=True)
    (change,) = cap.changes()
    assert (change.component, change.kind, change.source) == ("graph", "topology", "runtime")
    assert "$.nodes[3]" in change.paths and any(p.startswith("$.edges") for p in change.paths)
    assert cap.ledger.revision(change.after_id).state["nodes"] == ["agent", "critic", "prep", "reflect"]
    first.invoke({"system_prompt": P0, "question": "hi"})
    third.invoke({"system_prompt": P0, "question": "hi"})
    assert cap.value("driftwatch_calls_total", agent="factory", status="ok") == 2.0
    assert [s.attributes["gen_ai.operation.name"] for s in cap.spans("create_agent factory")] == ["create_agent"] * 3


def test_topology_includes_branches_and_subgraphs() -> None:
    """The fingerprinted shape names conditional branches with their targets, and nested subgraphs."""
    sub = StateGraph(State)
    sub.add_node("inner", lambda s: {})
    sub.add_edge(START, "inner")
    sub.add_edge("inner", END)
    builder = StateGraph(State)
    builder.add_node("route", lambda s: {})
    builder.add_node("fast", lambda s: {})
    builder.add_node("deep", sub.compile())
    builder.add_edge(START, "route")
    builder.add_conditional_edges("route", lambda s: "fast", {"fast": "fast", "deep": "deep"})
    builder.add_edge("fast", END)
    builder.add_edge("deep", END)
    shape = topology(builder.compile())
    assert shape["nodes"] == ["deep", "fast", "route"]
    assert list(shape["branches"]["route"].values()) == [["deep", "fast"]]
    assert shape["subgraphs"]["deep"]["nodes"] == ["inner"]


def test_prompt_written_into_a_store_namespace_is_detected(cap: Captured) -> None:
    """Writes under a watched namespace are store changes; other namespaces are ignored; delete counts."""
    store = InMemoryStore()
    store.put(("prompts",), "support", {"text": P0})
    assert driftwatch.watch(store, agent="mem", store_namespaces=[("prompts",)]) is store
    store.put(("prompts",), "support", {"text": P0})  # same value: no change
    store.put(("prompts",), "support", {"text": P0 + " Cite sources."})
    store.put(("memories", "user-1"), "likes", {"text": "tea"})
    asyncio.run(store.aput(("prompts",), "support", {"text": P0 + " Be brief."}))
    store.delete(("prompts",), "support")
    changes = cap.changes()
    assert [(c.component, c.kind, c.source) for c in changes] == [("store:prompts/support", "store", "store")] * 3
    assert [cap.ledger.revision(c.after_id).state for c in changes] == [
        {"text": P0 + " Cite sources."}, {"text": P0 + " Be brief."}, None]
    assert store.get(("memories", "user-1"), "likes").value == {"text": "tea"}  # the store still works


def test_graph_store_writes_are_watched_with_store_namespaces(cap: Captured) -> None:
    """A graph node that saves a new prompt to the graph's store is a store change of the watched agent."""

    def save(state: State) -> dict[str, Any]:
        get_store().put(("prompts", "bot"), "system", {"text": state["system_prompt"]})
        return {}

    builder = StateGraph(State)
    builder.add_node("save", save)
    builder.add_edge(START, "save")
    builder.add_edge("save", END)
    graph = driftwatch.watch(builder.compile(store=InMemoryStore()), agent="saver", store_namespaces="prompts")
    for prompt in [P0, P0, P0 + " v2"]:
        graph.invoke({"system_prompt": prompt})
    assert [(c.component, c.source) for c in cap.changes()] == [("store:prompts/bot/system", "store")]


class OfflineGradientOptimizer(GradientPromptOptimizer):
    """LangMem's real GradientPromptOptimizer with its two LLM steps (a hosted model) replaced."""

    def _react_agent(self, inputs: str) -> Any:
        return SimpleNamespace(warrants_adjustment=True, hypotheses="too long", full_recommendations="be brief")

    def _update_prompt(self, hypotheses: str, recommendations: str, current_prompt: str,
                       update_instructions: str) -> str:
        return current_prompt + " Be brief."

    async def _areact_agent(self, inputs: str) -> Any:
        return self._react_agent(inputs)

    async def _aupdate_prompt(self, hypotheses: str, recommendations: str, current_prompt: str,
                              update_instructions: str) -> str:
        return self._update_prompt(hypotheses, recommendations, current_prompt, update_instructions)


def test_langmem_optimizer_result_is_a_change_with_the_optimizer_as_source(cap: Captured) -> None:
    """Each optimizer invoke is a run; the prompt it returns is a change whose source is the optimizer class."""
    optimizer = driftwatch.watch(OfflineGradientOptimizer(model=ToolModel(messages=replies("unused"))), agent="lm",
                                 component="system_prompt")
    trajectories = [([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "long answer"}],
                     {"score": 0})]
    better = optimizer.invoke({"trajectories": trajectories, "prompt": P0})
    assert better == P0 + " Be brief."
    best = asyncio.run(optimizer.ainvoke({"trajectories": trajectories, "prompt": better}))
    changes = cap.changes()
    assert [(c.component, c.kind, c.source) for c in changes] == [
        ("system_prompt", "system_prompt", "GradientPromptOptimizer")] * 2
    assert cap.ledger.revision(changes[1].after_id).state == best
    runs = cap.ledger.runs(agent="lm")
    assert [r.optimizer for r in runs] == ["GradientPromptOptimizer"] * 2
    assert changes[0].run_id in {r.id for r in runs}
    assert cap.value("driftwatch_optimizer_runs_total", agent="lm", optimizer="GradientPromptOptimizer",
                     outcome="ok") == 2.0


def test_a_langmem_optimizer_run_is_a_compile_span_around_its_change(cap: Captured) -> None:
    """Each LangMem run (invoke and ainvoke) gets a driftwatch.optimizer.compile span with the run's attributes;
    the prompt change it makes is that span's child, and the run's trace id is the span's."""
    optimizer = driftwatch.watch(OfflineGradientOptimizer(model=ToolModel(messages=replies("unused"))), agent="lm",
                                 component="system_prompt")
    trajectories = [([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "long answer"}],
                     {"score": 0})]
    better = optimizer.invoke({"trajectories": trajectories, "prompt": P0})
    asyncio.run(optimizer.ainvoke({"trajectories": trajectories, "prompt": better}))
    runs = {r.id: r for r in cap.ledger.runs(agent="lm")}
    spans = cap.spans("driftwatch.optimizer.compile")
    assert len(spans) == len(runs) == 2
    for span in spans:
        run = runs[span.attributes["driftwatch.optimizer.run_id"]]
        assert dict(span.attributes) == {
            "driftwatch.agent": "lm", "driftwatch.optimizer.name": "GradientPromptOptimizer",
            "driftwatch.optimizer.run_id": run.id, "driftwatch.optimizer.outcome": "ok",
            "driftwatch.optimizer.candidates": 0}
        assert run.trace_id == format(span.context.trace_id, "032x")
        (change,) = [s for s in cap.spans("driftwatch.change")
                     if s.attributes.get("driftwatch.optimizer.run_id") == run.id]
        assert change.parent.span_id == span.context.span_id
        assert change.attributes["driftwatch.change.source"] == "GradientPromptOptimizer"


def test_a_failing_langmem_run_is_recorded_failed_and_its_error_passes(cap: Captured) -> None:
    """An optimizer that raises: the run and its span are failed (with error.type); the caller gets the same error."""
    boom = RuntimeError("model unavailable")

    class Failing(OfflineGradientOptimizer):
        def _update_prompt(self, *args: Any) -> str:
            raise boom

    optimizer = driftwatch.watch(Failing(model=ToolModel(messages=replies("unused"))), agent="lm")
    with pytest.raises(RuntimeError) as info:
        optimizer.invoke({"trajectories": [([{"role": "user", "content": "hi"}], {"score": 0})], "prompt": P0})
    assert info.value is boom
    (run,) = cap.ledger.runs(agent="lm")
    assert (run.outcome, run.error_type) == ("failed", "RuntimeError")
    (span,) = cap.spans("driftwatch.optimizer.compile")
    assert span.attributes["driftwatch.optimizer.outcome"] == "failed"
    assert span.attributes["error.type"] == "RuntimeError"
    assert cap.value("driftwatch_optimizer_runs_total", agent="lm", optimizer="GradientPromptOptimizer",
                     outcome="failed") == 1.0
