"""Class-level hooks on LangChain's callback managers: the chat-model calls of a watched graph's ``invoke`` /
``ainvoke`` seen without a callback handler in the run.

Any callback handler in a run makes LangChain dispatch every chain event of every node to it (and LangGraph and
langchain-core run Protocol ``isinstance`` checks on each handler): ~7% of a 3-node graph's run before the handler
does anything (``benchmarks/bench_langgraph.py``, mode ``noop-callback``). A watched graph whose nodes note prompt
writes themselves (``_attribution.spied_nodes``) needs no chain event in ``invoke``/``ainvoke``, so it runs them
with no handler and marks the run ``hooked``; these hooks then hand the chat-model events to the run's handler:

- ``CallbackManager.on_chat_model_start`` (and ``AsyncCallbackManager``'s): every chat-model call (``invoke``,
  ``stream``, ``generate``, ``batch``) announces its messages, settings and metadata here before the model runs,
  with or without handlers; the hook passes the run's handler what a handler would get (one message list each,
  with its run id) straight to the handler's ``model_call``, so both ways in share one implementation;
- ``CallbackManagerForLLMRun.on_llm_end`` (and the async one): the model's answer (tool calls, token usage), to
  the handler's ``model_end``.

Outside a hooked run a hook costs one context-variable read. Streamed runs (``stream``/``astream``: the output is
the root run's ``on_chain_end``), graphs whose attribution needs chain events (subgraph nodes),
:func:`~driftwatch.integrations.langgraph.instrument` and ``DriftwatchMiddleware`` keep the callback handler.
:func:`uninstrument` takes the hooks out; the next hooked run puts them back (:func:`ensure_hooks`).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)

from driftwatch.integrations._common import Patches
from driftwatch.integrations.langgraph._handler import ACTIVE
from driftwatch.runtime import get_runtime

__all__ = ["ensure_hooks", "hooks_installed", "unhook"]

_HOOKS = Patches()
#: ``INSTALLED[0]``: whether the hooks are in place (``bool(_HOOKS)``, kept by :func:`ensure_hooks` and
#: :func:`unhook`): an item read for each hooked run, not a method call
INSTALLED = [False]


def hooks_installed() -> bool:
    return bool(_HOOKS)


def _started(manager: Any, messages: Any, managers: Any, kwargs: dict[str, Any], gen: int) -> None:
    """Hand the chat-model requests that ``manager`` started to the hooked run they belong to, if any (what a
    handler would get, without the dispatch)."""
    inv = ACTIVE.get()
    if inv is None or not inv.hooked or _HOOKS.generation != gen:
        return
    try:
        if len(messages) == 1:  # one request (invoke, stream)
            inv.handler.model_call(inv.agent, inv, messages, managers[0].run_id, manager.metadata, kwargs)
            return
        for message_list, run in zip(messages, managers, strict=False):
            inv.handler.model_call(inv.agent, inv, [message_list], run.run_id, manager.metadata, kwargs)
    except Exception as exc:  # noqa: BLE001  # never break the host (the handler guards itself too)
        get_runtime().error("langgraph", exc)


def _make_start(original: Any) -> Any:
    gen = _HOOKS.generation

    def on_chat_model_start(self: Any, serialized: Any, messages: Any, run_id: Any = None, **kwargs: Any) -> Any:
        managers = original(self, serialized, messages, run_id, **kwargs)
        _started(self, messages, managers, kwargs, gen)
        return managers

    on_chat_model_start.__doc__ = original.__doc__
    return on_chat_model_start


def _make_astart(original: Any) -> Any:
    gen = _HOOKS.generation

    async def on_chat_model_start(self: Any, serialized: Any, messages: Any, run_id: Any = None,
                                  **kwargs: Any) -> Any:
        managers = await original(self, serialized, messages, run_id, **kwargs)
        _started(self, messages, managers, kwargs, gen)
        return managers

    on_chat_model_start.__doc__ = original.__doc__
    return on_chat_model_start


def _answered(run: Any, response: Any, gen: int) -> None:
    """Hand a model's answer (``run``: its LangChain run manager) to the watched run it belongs to, if any."""
    inv = ACTIVE.get()
    if inv is not None and inv.hooked and _HOOKS.generation == gen:
        try:
            inv.handler.model_end(inv, response, run.run_id)
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("langgraph", exc)


def _make_end(original: Any) -> Any:
    gen = _HOOKS.generation

    def on_llm_end(self: Any, response: Any, **kwargs: Any) -> None:
        original(self, response, **kwargs)
        _answered(self, response, gen)

    on_llm_end.__doc__ = original.__doc__
    return on_llm_end


def _make_aend(original: Any) -> Any:
    gen = _HOOKS.generation

    async def on_llm_end(self: Any, response: Any, **kwargs: Any) -> None:
        await original(self, response, **kwargs)
        _answered(self, response, gen)

    on_llm_end.__doc__ = original.__doc__
    return on_llm_end


def ensure_hooks() -> None:
    """Put the hooks in place (once; :func:`unhook` takes them back)."""
    if _HOOKS:
        return
    with _HOOKS.lock:
        if _HOOKS:
            return
        _HOOKS.patch(CallbackManager, "on_chat_model_start", _make_start)
        _HOOKS.patch(AsyncCallbackManager, "on_chat_model_start", _make_astart)
        _HOOKS.patch(CallbackManagerForLLMRun, "on_llm_end", _make_end)
        _HOOKS.patch(AsyncCallbackManagerForLLMRun, "on_llm_end", _make_aend)
        INSTALLED[0] = True


def unhook() -> None:
    """Take the hooks back (a watched graph's next ``invoke`` puts them back); idempotent."""
    with _HOOKS.lock:
        _HOOKS.undo()
        INSTALLED[0] = bool(_HOOKS)
