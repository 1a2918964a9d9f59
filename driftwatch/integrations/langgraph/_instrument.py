"""``instrument()``: every LangGraph graph in the process, through two patches — driftwatch's handler in
every LangChain callback manager, and each top-level ``Pregel`` run recorded."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackManager
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore

from driftwatch.integrations._common import Patches, check_installed
from driftwatch.integrations.langgraph._handler import (
    ACTIVE,
    DEFAULT_PROMPT_KEYS,
    DriftwatchCallbackHandler,
    check_normalizer,
    check_prompt_keys,
)
from driftwatch.integrations.langgraph._runs import (
    Started,
    handler_of,
    run_ainvoke,
    run_astream,
    run_invoke,
    run_stream,
    start_recording,
)
from driftwatch.integrations.langgraph._stores import namespace_prefixes, unwatch_stores, watch_store
from driftwatch.integrations.langgraph._topology import observe_topology
from driftwatch.runtime import get_runtime

__all__ = ["check_versions", "instrument", "is_instrumented", "uninstrument"]

#: the patches of :func:`instrument`
_PATCHES = Patches()
_GLOBAL: DriftwatchCallbackHandler | None = None
_SEEN: weakref.WeakSet[Any] = weakref.WeakSet()
_GLOBAL_OPTIONS: dict[str, Any] = {}


def check_versions() -> None:
    """``DidNotEnable`` (with the pip command) when LangGraph or LangChain is older than supported."""
    check_installed("LangGraph", "langgraph", ("langgraph", "langchain-core"))


def is_instrumented() -> bool:
    return bool(_PATCHES)


def _first_sight(graph: Any, agent: str) -> None:
    """Topology (and store) of a graph seen for the first time by :func:`instrument`."""
    try:
        if graph in _SEEN:
            return
        _SEEN.add(graph)
    except TypeError:  # not weak-referenceable or unhashable: skip topology
        return
    observe_topology(agent, graph)
    namespaces = _GLOBAL_OPTIONS.get("store_namespaces")
    store = getattr(graph, "store", None)
    if namespaces is not None and isinstance(store, BaseStore):
        try:
            watch_store(store, agent=agent, namespaces=namespaces)
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("store", exc)


def _instrumented_start(graph: Any, gen: int) -> Started:
    handler = _GLOBAL
    if _PATCHES.generation != gen or handler is None or ACTIVE.get() is not None or handler_of(graph) is not None:
        return None
    agent = getattr(graph, "name", None) or "LangGraph"
    _first_sight(graph, agent)
    return start_recording(graph, handler, agent)


def _make_manager_init(handler: DriftwatchCallbackHandler) -> Callable[[Any], Any]:
    def make(orig_init: Any) -> Any:
        gen = _PATCHES.generation

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807  # it replaces __init__
            orig_init(self, *args, **kwargs)
            try:
                if _PATCHES.generation != gen or type(self).__module__.startswith("langgraph."):
                    return  # uninstrumented (left in place under a later wrapper), or a graph-lifecycle manager
                if handler not in self.inheritable_handlers:
                    self.add_handler(handler, True)
            except Exception as exc:  # noqa: BLE001  # never break the host
                get_runtime().error("langgraph", exc)

        return __init__

    return make


def _make_run(run: Callable[..., Any]) -> Callable[[Any], Any]:
    """``make`` for ``Pregel.invoke``/``stream``/``astream``: each top-level run recorded through ``run``."""
    def make(original: Any) -> Any:
        gen = _PATCHES.generation

        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return run(_instrumented_start(self, gen), original.__get__(self), args, kwargs)

        method.__name__, method.__qualname__, method.__doc__ = \
            original.__name__, original.__qualname__, original.__doc__
        return method

    return make


def _make_ainvoke(original: Any) -> Any:
    gen = _PATCHES.generation

    async def ainvoke(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await run_ainvoke(_instrumented_start(self, gen), original.__get__(self), args, kwargs)

    ainvoke.__doc__ = original.__doc__
    return ainvoke


def instrument(*, prompt_keys: Sequence[str] = DEFAULT_PROMPT_KEYS, store_namespaces: Any = None,
               normalize_prompt: Callable[[str], str] | None = None) -> None:
    """Watch every LangGraph graph in the process (agent name = the graph's ``name``); idempotent.

    Adds driftwatch's handler to every LangChain callback manager (as OpenInference does), records
    each top-level ``Pregel`` run (``invoke``/``ainvoke``/``stream``/``astream``), fingerprints each
    graph's topology on its first run and, with ``store_namespaces``, watches each graph's store. Graphs watched with
    :func:`driftwatch.watch` keep their own agent name. :func:`uninstrument` undoes every patch.
    Every LangChain run in the process then carries one more callback handler (on a 3-node graph,
    LangChain's own cost of any handler is ~1.06x; see ``benchmarks/bench_langgraph.py``).
    """
    global _GLOBAL
    check_versions()
    keys = check_prompt_keys(prompt_keys)
    normalize = check_normalizer(normalize_prompt)
    if store_namespaces is not None:
        namespace_prefixes(store_namespaces, "store_namespaces")
    with _PATCHES.lock:
        _GLOBAL_OPTIONS["store_namespaces"] = store_namespaces
        if _PATCHES:
            if _GLOBAL is not None:
                _GLOBAL.prompt_keys = keys
                _GLOBAL.normalize_prompt = normalize
            return
        handler = _GLOBAL = DriftwatchCallbackHandler(None, prompt_keys=keys, normalize_prompt=normalize)
        _PATCHES.patch(BaseCallbackManager, "__init__", _make_manager_init(handler))
        for name, make in (("invoke", _make_run(run_invoke)), ("ainvoke", _make_ainvoke),
                           ("stream", _make_run(run_stream)), ("astream", _make_run(run_astream))):
            _PATCHES.patch(Pregel, name, make)


def uninstrument() -> None:
    """Undo :func:`instrument` and the store patches, in reverse order; idempotent.

    A patch that another instrumentor (OpenInference, OpenLLMetry) has wrapped since is left in place,
    inert, so that their wrapper keeps working; stores watched with :func:`driftwatch.watch` stop being
    watched too.
    """
    global _GLOBAL
    with _PATCHES.lock:
        _GLOBAL = None  # first: every patch of ours passes straight through from here on
        _PATCHES.undo()
        _GLOBAL_OPTIONS.clear()
        unwatch_stores()
