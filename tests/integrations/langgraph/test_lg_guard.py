"""Guardrails on LangGraph agents: a graph that keeps rewriting its own system prompt is frozen (its model calls
keep receiving the frozen prompt, each attempt is recorded as blocked); create_agent's model requests are rewritten
to the pinned prompt and tools; a rollback serves the rolled-back prompt to a node that keeps writing the drifting
one. Real graphs, real create_agent; only the LLM is a LangChain fake chat model that records what it receives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import Field

import driftwatch
from driftwatch.alarm import Alarm
from driftwatch.cli import main as cli
from driftwatch.integrations.langgraph import DriftwatchMiddleware
from driftwatch.revision import fingerprint
from driftwatch.testing import Captured, capture
from tests.helpers.lg_graphs import ToolModel, calc, reflect_graph, replies, search

AGENT = "support-bot"
P0 = "You are a support agent."


class RecordingListModel(FakeListChatModel):
    """FakeListChatModel that keeps the system prompt of every request it receives."""

    received: list[str] = Field(default_factory=list)

    def _call(self, messages: list[Any], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> str:
        self.received.append("\n".join(str(m.content) for m in messages if m.type == "system"))
        return super()._call(messages, stop, run_manager, **kwargs)


class RecordingToolModel(ToolModel):
    """ToolModel that keeps (system prompt, bound tool names) of every request it receives."""

    received: list[tuple[str, list[str]]] = Field(default_factory=list)

    def _generate(self, messages: list[Any], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        system = "\n".join(str(m.content) for m in messages if m.type == "system")
        self.received.append((system, sorted(t["function"]["name"] for t in kwargs.get("tools") or ())))
        return super()._generate(messages, stop, run_manager, **kwargs)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Captured]:
    with capture(ledger=str(tmp_path / "ledger.db"), drift=False, drift_poll_s=3600) as cap:
        yield cap


def _cli(cap: Captured, *argv: str) -> None:
    assert cli([*argv, "--ledger", cap.runtime.ledger.location]) == 0
    cap.runtime.guard.poll()


def _rewritten_once() -> tuple[Any, RecordingListModel, dict[str, Any]]:
    """A watched reflect graph (checkpointed) that served P0, then rewrote its prompt once: graph, model, config."""
    model = RecordingListModel(responses=["ok"])
    graph = driftwatch.watch(reflect_graph(model, checkpointer=InMemorySaver()), agent=AGENT)
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"system_prompt": P0, "question": "hi"}, config)
    graph.invoke({"question": "please rewrite"}, config)
    return graph, model, config


def test_a_frozen_graph_keeps_receiving_its_frozen_prompt(guarded: Captured) -> None:
    """The reflect node rewrites the prompt in state on every turn: frozen, every model call still receives the frozen
    prompt and each rewrite is one blocked change; unfrozen, the prompt the node wrote takes effect."""
    cap = guarded
    graph, model, config = _rewritten_once()
    frozen = P0 + " Be brief."
    assert model.received == [P0, frozen]  # positive control: the rewrite reached the model
    _cli(cap, "freeze", AGENT)
    for _ in range(3):
        graph.invoke({"question": "please rewrite"}, config)
    graph.invoke({"question": "hi"}, config)

    assert model.received[2:] == [frozen] * 4
    blocked = [c for c in cap.changes() if c.status == "blocked"]
    assert len(blocked) == 3 and {c.component for c in blocked} == {"agent.system_prompt"}
    assert [c.node for c in blocked] == ["reflect"] * 3 and {c.before_id for c in blocked} == {fingerprint(frozen)}
    assert [a.action for a in cap.ledger.guard_actions(agent=AGENT)] == ["frozen"] + ["blocked"] * 3
    assert cap.ledger.head(AGENT, "agent.system_prompt") == fingerprint(frozen)

    _cli(cap, "unfreeze", AGENT)
    graph.invoke({"question": "hi"}, config)
    assert model.received[-1] == frozen + " Be brief." * 3
    assert cap.changes()[-1].status == "applied"


class SelfEditor(AgentMiddleware):
    """An agent that rewrites its own system prompt on every model call, and adds a tool after the second one."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _edit(self, request: ModelRequest) -> ModelRequest:
        self.calls += 1
        tools = request.tools if self.calls > 2 else [t for t in request.tools if t.name == "search"]
        prompt = f"{P0} Lesson {self.calls}."
        if hasattr(request, "system_message"):  # langchain >= 1.1
            return request.override(system_message=SystemMessage(prompt), tools=tools)
        return request.override(system_prompt=prompt, tools=tools)  # langchain 1.0

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], Any]) -> Any:
        return handler(self._edit(request))

    async def awrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], Any]) -> Any:
        return await handler(self._edit(request))


def test_create_agent_requests_are_rewritten_to_the_frozen_revision(guarded: Captured) -> None:
    """Frozen after one call: the model keeps receiving that call's prompt and tool set, while the agent keeps
    editing both (each edit one blocked change). The async path is rewritten the same way."""
    import asyncio

    cap = guarded
    model = RecordingToolModel(messages=replies("Sure."))
    agent = create_agent(model, tools=[search, calc], system_prompt=P0,
                         middleware=[SelfEditor(), DriftwatchMiddleware(agent=AGENT)])
    agent.invoke({"messages": [HumanMessage("hello")]})
    assert model.received == [(f"{P0} Lesson 1.", ["search"])]
    _cli(cap, "freeze", AGENT)
    for _ in range(3):
        agent.invoke({"messages": [HumanMessage("hello")]})
    asyncio.run(agent.ainvoke({"messages": [HumanMessage("hello")]}))

    assert model.received[1:] == [(f"{P0} Lesson 1.", ["search"])] * 4
    blocked = [(c.component, c.kind) for c in cap.changes() if c.status == "blocked"]
    prompt, tools = ("model.system_prompt", "system_prompt"), ("model.tools", "tools")
    assert blocked == [prompt, prompt, tools, prompt, prompt]  # lessons 2-5; the tool added at the third call
    assert cap.value("driftwatch_guard_actions_total", agent=AGENT, action="blocked") == len(blocked)
    assert cap.value("driftwatch_internal_errors_total", stage="guard") == 0


def test_a_rolled_back_prompt_is_served_to_a_node_that_keeps_writing_the_drifting_one(guarded: Captured) -> None:
    """After `driftwatch rollback` from an alarm anchored at the reflect node's rewrite, the model receives the
    prompt of before; the node writing the drifting prompt again is blocked (it was rolled back from)."""
    cap = guarded
    graph, model, config = _rewritten_once()
    (rewrite,) = cap.changes()
    cap.runtime.ledger.record_alarm(Alarm("a1", AGENT, "output_chars", 1.2, rewrite.timestamp + 1, rewrite.id))
    _cli(cap, "rollback", AGENT)
    graph.invoke({"question": "hi"}, config)
    graph.invoke({"question": "hi"}, config)
    assert model.received[-2:] == [P0, P0]
    assert [c.status for c in cap.changes() if c.source != "guard"] == ["applied", "blocked"]
    assert "was rolled back or rejected" in cap.changes()[-1].attributes["guard_reason"]
