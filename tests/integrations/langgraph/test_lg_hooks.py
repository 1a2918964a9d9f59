"""The callback-free way in (``_hooks``): a watched graph's ``invoke``/``ainvoke`` run without a callback handler
and record what the callback handler records."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.runnables.config import ensure_config

import driftwatch
from driftwatch.integrations import langgraph as lg
from driftwatch.integrations.langgraph import DriftwatchCallbackHandler
from driftwatch.integrations.langgraph._hooks import hooks_installed
from driftwatch.integrations.langgraph._runs import handler_of, with_handler
from driftwatch.testing import capture
from tests.helpers.lg_graphs import ToolModel, chain_graph, reflect_graph, replies, search, usage_reply

P0 = "You are a helpful support agent."
HOOKED = ((CallbackManager, "on_chat_model_start"), (AsyncCallbackManager, "on_chat_model_start"),
          (CallbackManagerForLLMRun, "on_llm_end"), (AsyncCallbackManagerForLLMRun, "on_llm_end"))


def _tool_graph() -> Any:
    model = ToolModel(messages=replies(usage_reply("let me look", tool_calls=[
        {"name": "search", "args": {"query": "reset"}, "id": "c1"}], tokens=(30, 7))))

    from tests.helpers.lg_graphs import State

    def agent(state: State) -> dict[str, Any]:
        from langchain_core.messages import HumanMessage, SystemMessage

        reply = model.bind_tools([search], temperature=0.2).invoke(
            [SystemMessage(state["system_prompt"]), HumanMessage(state["question"])])
        return {"answer": reply.content}

    def reflect(state: State) -> dict[str, Any]:
        return {"system_prompt": state["system_prompt"] + " Be brief."} if "rewrite" in state["question"] else {}

    return chain_graph(State, ("reflect", reflect), ("agent", agent))


def _turns(graph: Any) -> None:
    graph.invoke({"system_prompt": P0, "question": "hi"})
    graph.invoke({"system_prompt": P0, "question": "rewrite"})

    async def main() -> None:
        await graph.ainvoke({"system_prompt": P0 + " Be brief.", "question": "rewrite please"})

    asyncio.run(main())


def _records(hooks: bool) -> dict[str, Any]:
    with capture() as cap:
        graph = with_handler(_tool_graph(), DriftwatchCallbackHandler("same", prompt_keys=("system_prompt",)),
                             hooks=hooks)
        _turns(graph)
        spans = cap.spans("invoke_agent same")
        return {
            "hooked": type(graph).__driftwatch_handler__ is not None,
            "changes": [(c.component, c.kind, c.source, c.node, c.after_id) for c in cap.changes()],
            "calls": cap.value("driftwatch_calls_total", agent="same", status="ok"),
            "tools": cap.value("driftwatch_tool_calls_total", agent="same", tool="search"),
            "tokens": (cap.value("driftwatch_tokens_total", agent="same", type="input"),
                       cap.value("driftwatch_tokens_total", agent="same", type="output")),
            "chars": cap.value("driftwatch_output_chars_sum", agent="same"),
            "spans": [{k: v for k, v in s.attributes.items() if k != "gen_ai.agent.version"} for s in spans],
            "errors": dict(cap.runtime.error_counts),
        }


def test_hooked_runs_record_what_the_callback_handler_records() -> None:
    """The same graph and turns, watched through the hooks and through a handler in its config: same changes,
    calls, tool calls, tokens, output sizes and span attributes."""
    hooked, handler = _records(True), _records(False)
    assert hooked.pop("hooked") is True and handler.pop("hooked") is False
    assert hooked == handler
    assert [c[:4] for c in hooked["changes"] if c[1] == "system_prompt"] == [
        ("agent.system_prompt", "system_prompt", "agent", "reflect")] * 2
    assert hooked["calls"] == 3.0 and hooked["tools"] == 3.0 and hooked["tokens"] == (90.0, 21.0)
    assert hooked["errors"] == {}


def test_invoke_runs_without_a_callback_handler(cap: Any) -> None:
    """A watched graph's config holds no handler and its nodes run with none (stream keeps one for its output)."""
    seen: list[Any] = []

    def look(state: Any) -> dict[str, Any]:
        callbacks = ensure_config().get("callbacks")
        seen.append(list(callbacks.handlers if hasattr(callbacks, "handlers") else callbacks or []))
        return {}

    from tests.helpers.lg_graphs import State

    graph = driftwatch.watch(chain_graph(State, ("look", look)), agent="lean")
    assert handler_of(graph) is not None and not (graph.config or {}).get("callbacks")
    graph.invoke({"question": "hi"})
    assert seen == [[]]
    list(graph.stream({"question": "hi"}))
    assert any(isinstance(h, DriftwatchCallbackHandler) for h in seen[1])  # positive control: streamed runs
    assert cap.value("driftwatch_calls_total", agent="lean", status="ok") == 2.0


def test_uninstrument_takes_the_hooks_out_and_the_next_run_puts_them_back(cap: Any) -> None:
    """uninstrument() restores LangChain's methods; a watched graph's next invoke hooks again and still records."""
    graph = driftwatch.watch(reflect_graph(), agent="back")
    graph.invoke({"system_prompt": P0, "question": "hi"})
    assert hooks_installed()
    assert all(getattr(owner, name).__module__ == "driftwatch.integrations.langgraph._hooks" for owner, name in HOOKED)
    lg.uninstrument()
    assert not hooks_installed()
    assert all(getattr(owner, name).__module__.startswith("langchain_core.") for owner, name in HOOKED)
    graph.invoke({"system_prompt": P0, "question": "rewrite"})
    assert hooks_installed()
    assert [(c.source, c.node) for c in cap.changes() if c.kind == "system_prompt"] == [
        ("agent", "reflect")]
    assert cap.value("driftwatch_calls_total", agent="back", status="ok") == 2.0


def test_hooks_pass_through_outside_watched_runs(cap: Any) -> None:
    """A graph that is not watched, run while the hooks are in place, records nothing."""
    driftwatch.watch(reflect_graph(), agent="w").invoke({"system_prompt": P0, "question": "hi"})
    assert hooks_installed()
    before = len(cap.changes())
    reflect_graph().invoke({"system_prompt": P0 + " other", "question": "hi"})
    assert len(cap.changes()) == before
    assert cap.runtime.error_counts == {}
