"""Store writes name the node that made them, and the prompt changes they cause are that node's (issue 12
item 4), with or without ``store_namespaces=``; what is noted for attribution is bounded."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

import driftwatch
from driftwatch.integrations.langgraph._attribution import Writes
from driftwatch.testing import Captured
from tests.helpers.lg_graphs import State, chain_graph

NS = ("prompts",)
START_PROMPT = "You are a helpful assistant for travellers."


def _graph(store: InMemoryStore) -> Any:
    model = FakeListChatModel(responses=["Sure."])

    def answer(state: State, store: BaseStore) -> dict[str, Any]:
        prompt = store.get(NS, "agent").value["text"]
        return {"answer": model.invoke([SystemMessage(prompt), HumanMessage(state["question"])]).content}

    def learn(state: State, store: BaseStore) -> dict[str, Any]:
        if "feedback" in state["question"]:
            current = store.get(NS, "agent").value["text"]
            store.put(NS, "agent", {"text": current + " Answer in one sentence.", "by": "learn"})
            store.put(NS, "counter", {"n": 1})
        return {}

    return chain_graph(State, ("answer", answer), ("learn", learn))


@pytest.mark.parametrize("namespaces", [None, [NS]], ids=["no-store-namespaces", "store-namespaces"])
def test_a_node_rewriting_a_prompt_in_the_store_is_named(cap: Captured, namespaces: Any) -> None:
    store = InMemoryStore()
    store.put(NS, "agent", {"text": START_PROMPT})
    graph = _graph(store).copy({"store": store})
    options = {"store_namespaces": namespaces} if namespaces else {}
    graph = driftwatch.watch(graph, agent="learner", **options)
    for q in ["hi", "feedback: shorter", "thanks", "where to?"]:
        graph.invoke({"question": q})
    summary = [(c.component, c.kind, c.source, c.node) for c in cap.changes(agent="learner")]
    prompt = [("answer.system_prompt", "system_prompt", "agent", "learn")]
    store_changes = [("store:prompts/agent", "store", "store", "learn")] if namespaces else []
    assert sorted(summary) == sorted(prompt + store_changes)


def test_a_store_write_outside_a_graph_run_names_no_node(cap: Captured) -> None:
    """An operator's write from plain code: the store change has no node, and the prompt change it causes is the
    runtime's (the positive control for the attribution above)."""
    store = InMemoryStore()
    store.put(NS, "agent", {"text": START_PROMPT})
    graph = driftwatch.watch(_graph(store).copy({"store": store}), agent="operated", store_namespaces=[NS])
    graph.invoke({"question": "hi"})
    store.put(NS, "agent", {"text": START_PROMPT + " Be formal."})
    graph.invoke({"question": "hi"})
    summary = sorted((c.component, c.source, c.node) for c in cap.changes(agent="operated"))
    assert summary == [("answer.system_prompt", "runtime", None), ("store:prompts/agent", "store", None)]


def test_short_store_texts_are_not_noted_and_the_notes_are_bounded() -> None:
    writes = Writes()
    writes.add({"flag": "ok", "text": "A long enough instruction text."}, "learn", min_chars=16)
    assert writes.writer("ok") is None  # "ok" would otherwise match inside almost any prompt
    assert writes.writer("Prefix. A long enough instruction text.") == "learn"
    for i in range(200):
        writes.add(f"instruction number {i:04d} for the agent", "bulk", min_chars=16)
    assert len(writes.values) == 64
