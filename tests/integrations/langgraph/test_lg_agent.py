"""create_agent with DriftwatchMiddleware: dynamic prompts, tool swaps and model swaps made by middleware."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.messages import HumanMessage, SystemMessage

import driftwatch
from driftwatch.integrations.langgraph import DriftwatchMiddleware
from driftwatch.testing import Captured
from tests.helpers.lg_graphs import ToolModel, calc, replies, search

P0 = "You are a support agent."


@dataclass
class Tier:
    tier: str = "free"
    model: str = "small"


def with_prompt(request: ModelRequest, text: str) -> ModelRequest:
    """``request`` with another system prompt: a SystemMessage since langchain 1.1, a string in 1.0."""
    if "system_message" in {f.name for f in fields(ModelRequest)}:
        return request.override(system_message=SystemMessage(text))
    return request.override(system_prompt=text)


class Swapper(AgentMiddleware):
    """Middleware that picks prompt, tools (and optionally the model) from the run's context."""

    def __init__(self, models: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.models = models

    def _pick(self, request: ModelRequest) -> ModelRequest:
        ctx = request.runtime.context
        if ctx.tier == "pro":
            request = with_prompt(request, P0 + " The user is a pro: be thorough.")
            request = request.override(tools=[t for t in request.tools if t.name == "calc"])
        if self.models is not None:
            request = request.override(model=self.models[ctx.model])
        return request

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], Any]) -> Any:
        return handler(self._pick(request))

    async def awrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], Any]) -> Any:
        return await handler(self._pick(request))


def make_agent(agent: str, *, models: dict[str, Any] | None = None) -> Any:
    model = ToolModel(messages=replies("Sure."))
    return create_agent(model, tools=[search, calc], system_prompt=P0, context_schema=Tier,
                        middleware=[Swapper(models), DriftwatchMiddleware(agent=agent)])


def ask(graph: Any, tier: str, model: str = "small") -> Any:
    return graph.invoke({"messages": [HumanMessage("hello")]}, context=Tier(tier, model))


def summary(cap: Captured) -> list[tuple[str, str, str]]:
    return [(c.component, c.kind, c.source) for c in cap.changes()]


def test_each_prompt_and_tool_swap_is_detected(cap: Captured) -> None:
    """Switching the context tier swaps prompt and tools: each swap is one system_prompt and one tools change."""
    graph = make_agent("mw")
    for tier in ["free", "free", "pro", "pro", "free"]:
        assert ask(graph, tier)["messages"][-1].content == "Sure."
    assert summary(cap) == [("model.system_prompt", "system_prompt", "runtime"), ("model.tools", "tools", "runtime"),
                            ("model.system_prompt", "system_prompt", "runtime"), ("model.tools", "tools", "runtime")]
    tools = [c for c in cap.changes() if c.kind == "tools"]
    assert [t["name"] for t in cap.ledger.revision(tools[0].after_id).state] == ["calc"]
    assert [t["name"] for t in cap.ledger.revision(tools[1].after_id).state] == ["calc", "search"]


def test_model_swap_is_a_model_params_change(cap: Captured) -> None:
    """A middleware that routes to another model produces a model_params change naming the new model."""
    models = {"small": ToolModel(messages=replies("Sure.")),
              "large": ToolModel(messages=replies("Sure."), model_name="fake-large")}
    graph = make_agent("router", models=models)
    for model in ["small", "small", "large", "large"]:
        ask(graph, "free", model)
    (change,) = cap.changes()
    assert (change.kind, change.component) == ("model_params", "model.model_params")
    assert cap.ledger.revision(change.after_id).state["model"] == "fake-large"


def test_async_agent_swaps_are_detected(cap: Captured) -> None:
    """ainvoke goes through awrap_model_call: the same swaps are detected."""
    graph = make_agent("amw")

    async def main() -> None:
        for tier in ["free", "pro"]:
            await graph.ainvoke({"messages": [HumanMessage("hello")]}, context=Tier(tier))

    asyncio.run(main())
    assert [c.kind for c in cap.changes()] == ["system_prompt", "tools"]


def test_middleware_and_watch_together_count_each_model_call_once(cap: Captured) -> None:
    """A watched create_agent that also has the middleware: same changes, no flip-flop, calls recorded once."""
    graph = driftwatch.watch(make_agent("both"), agent="both")
    for tier in ["free", "free", "pro", "pro", "free"]:
        ask(graph, tier)
    assert [c.kind for c in cap.changes() if c.kind != "topology"] == ["system_prompt", "tools"] * 2
    assert cap.value("driftwatch_calls_total", agent="both", status="ok") == 5.0


def test_middleware_adds_no_graph_node() -> None:
    """DriftwatchMiddleware uses wrap_model_call only, so the agent's graph has the same nodes as without it."""
    plain = create_agent(ToolModel(messages=replies("x")), tools=[search], system_prompt=P0)
    watched = create_agent(ToolModel(messages=replies("x")), tools=[search], system_prompt=P0,
                           middleware=[DriftwatchMiddleware(agent="n")])
    assert list(plain.nodes) == list(watched.nodes)


def test_middleware_rejects_a_bad_agent_name() -> None:
    """DriftwatchMiddleware(agent='') is a one-line error naming the argument."""
    with pytest.raises(ValueError, match=r"DriftwatchMiddleware\(agent=''\)"):
        DriftwatchMiddleware(agent="")
