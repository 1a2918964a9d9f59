"""Call sites (issue 12 item 1): helper model calls inside a node are components of their own, their tool calls
and structured-output schemas are not agent tools, and a per-request tool selection is not a change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import LLMToolSelectorMiddleware, ModelRequest, wrap_model_call
from langchain.agents.structured_output import ToolStrategy
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from pydantic import BaseModel

import driftwatch
from driftwatch.testing import Captured
from tests.helpers.lg_graphs import State, ToolModel, calc, chain_graph, replies, search

GUARD = "You are a guard. Answer SAFE or UNSAFE."
AGENT = "You are a helpful agent."


def _components(cap: Captured, agent: str) -> set[str]:
    return {c.component for c in cap.changes(agent=agent, baselines=True) if c.is_baseline}


def _guarded(named: bool) -> Any:
    """A node that asks a guard (a helper call) before answering, both on one model."""
    model = FakeListChatModel(responses=["SAFE", "Sure, here you go."])
    guard = model.with_config(run_name="guard") if named else model

    def answer(state: State) -> dict[str, Any]:
        guard.invoke([SystemMessage(GUARD), HumanMessage(state["question"])])
        reply = model.invoke([SystemMessage(AGENT), HumanMessage(state["question"])])
        return {"answer": reply.content}

    return chain_graph(State, ("answer", answer))


def test_a_named_helper_call_is_a_call_site_of_its_own(cap: Captured) -> None:
    """A guard call named with run_name= beside the node's own call: two components, no change in 10 runs."""
    graph = driftwatch.watch(_guarded(named=True), agent="guarded")
    for i in range(10):
        assert graph.invoke({"question": f"q{i}"})["answer"] == "Sure, here you go."
    assert cap.changes(agent="guarded") == []
    assert {"answer.system_prompt", "answer[guard].system_prompt"} <= _components(cap, "guarded")


def test_an_unnamed_helper_call_alternates_with_the_node_call(cap: Captured) -> None:
    """The positive control: the same guard without a name shares the node's component, whose prompt then
    flips on every model call (why call sites are named)."""
    graph = driftwatch.watch(_guarded(named=False), agent="unnamed")
    for i in range(3):
        graph.invoke({"question": f"q{i}"})
    assert [c.component for c in cap.changes(agent="unnamed")] == ["answer.system_prompt"] * 5


class Verdict(BaseModel):
    """Whether the request is allowed."""

    allowed: bool


def test_a_structured_output_helper_is_a_site_and_its_schema_is_not_a_tool(cap: Captured) -> None:
    """with_structured_output(Verdict) inside the node: component answer[Verdict]; only the agent's own
    tool call (search) is counted."""
    verdict = AIMessage(content="", tool_calls=[{"name": "Verdict", "args": {"allowed": True}, "id": "v",
                                                 "type": "tool_call"}])
    own = AIMessage(content="Searching.", tool_calls=[{"name": "search", "args": {"query": "x"}, "id": "s",
                                                       "type": "tool_call"}])
    model = ToolModel(messages=replies(verdict, own))

    def answer(state: State) -> dict[str, Any]:
        model.with_structured_output(Verdict).invoke([SystemMessage(GUARD), HumanMessage(state["question"])])
        reply = model.bind_tools([search]).invoke([SystemMessage(AGENT), HumanMessage(state["question"])])
        return {"answer": reply.content}

    graph = driftwatch.watch(chain_graph(State, ("answer", answer)), agent="judged")
    for i in range(4):
        graph.invoke({"question": f"q{i}"})
    assert cap.changes(agent="judged") == []
    assert {"answer.system_prompt", "answer[Verdict].system_prompt", "answer[Verdict].tools"} \
        <= _components(cap, "judged")
    assert cap.value("driftwatch_tool_calls_total", agent="judged", tool="search") == 4
    assert cap.value("driftwatch_tool_calls_total", agent="judged", tool="Verdict") == 0


class Answer(BaseModel):
    """The reply."""

    text: str


def test_a_tool_strategy_schema_is_not_counted_without_the_middleware(cap: Captured) -> None:
    """driftwatch.watch alone on create_agent(response_format=ToolStrategy(Answer)): the agent's ToolNode is its
    tool registry, so search counts and Answer (bound as a tool for structured output) does not."""
    call = AIMessage(content="", tool_calls=[{"name": "search", "args": {"query": "x"}, "id": "s",
                                              "type": "tool_call"}])
    final = AIMessage(content="", tool_calls=[{"name": "Answer", "args": {"text": "done"}, "id": "a",
                                               "type": "tool_call"}])
    agent = create_agent(ToolModel(messages=replies(call, final)), tools=[search], system_prompt=AGENT,
                         response_format=ToolStrategy(Answer))
    graph = driftwatch.watch(agent, agent="strategy")
    for i in range(3):
        assert graph.invoke({"messages": [HumanMessage(f"q{i}")]})["structured_response"] == Answer(text="done")
    assert cap.value("driftwatch_tool_calls_total", agent="strategy", tool="search") == 3
    assert cap.value("driftwatch_tool_calls_total", agent="strategy", tool="Answer") == 0


@tool
def web(url: str) -> str:
    """Fetch a web page."""
    return "<html></html>"


def _selection(*names: str) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": "ToolSelectionResponse", "args": {"tools": list(names)},
                                              "id": "sel", "type": "tool_call"}])


class Selector(ToolModel):
    """A tool selector that picks, request after request, each of the tools it is offered in turn."""

    picks: int = 0

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        items = kwargs["tools"][0]["function"]["parameters"]["properties"]["tools"]["items"]
        offered = [c["const"] for c in items.get("anyOf", [items])]
        self.picks += 1
        self.messages = iter([_selection(offered[self.picks % len(offered)])])
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def _selector_agent(policy: dict[str, bool], middleware: list[Any]) -> Any:
    """create_agent with a policy that can switch calc off, then LLMToolSelectorMiddleware choosing per request
    (from calc and web, search always included)."""
    selector = Selector(messages=iter(()), model_name="fake-selector")

    @wrap_model_call
    def no_calc(request: ModelRequest, handler: Callable[[ModelRequest], Any]) -> Any:
        if not policy["calc"]:
            request = request.override(tools=[t for t in request.tools if t.name != "calc"])
        return handler(request)

    return create_agent(ToolModel(messages=replies("Done.")), tools=[search, calc, web], system_prompt=AGENT,
                        middleware=[no_calc, LLMToolSelectorMiddleware(model=selector, max_tools=1,
                                                                       always_include=["search"]), *middleware])


def _run_selector(cap: Captured, agent: str, with_middleware: bool) -> list[tuple[str, str]]:
    from driftwatch.integrations.langgraph import DriftwatchMiddleware

    policy = {"calc": True}
    graph = _selector_agent(policy, [DriftwatchMiddleware(agent=agent)] if with_middleware else [])
    graph = driftwatch.watch(graph, agent=agent)
    for i in range(9):
        if i == 5:
            policy["calc"] = False  # the agent stops offering calc: what the selector may choose from changes
        graph.invoke({"messages": [HumanMessage(f"question {i}")]})
    return [(c.component, c.kind) for c in cap.changes(agent=agent)]


def test_a_per_request_tool_selection_is_not_a_change(cap: Captured) -> None:
    """The selector picks calc or web per request: no model.tools change; switching calc off changes what it
    may choose from, once, on its own call site (watch alone, and with the middleware)."""
    for agent, middleware in (("selected", False), ("selected-mw", True)):
        assert _run_selector(cap, agent, middleware) == [("model[tool_selection].tools", "tools")], agent
        assert "model[tool_selection].system_prompt" in _components(cap, agent)
