"""``instrument()``: every LangGraph graph in the process, through two patches — driftwatch's handler in
every LangChain callback manager, and each top-level ``Pregel`` run recorded.

The run patches (``Pregel.invoke``/``ainvoke``/``stream``/``astream``) are also what records the runs of a
``create_agent`` graph that carries a :class:`DriftwatchMiddleware` (see ``_marker``): the first middleware
made puts them in place (:func:`ensure_run_patches`) without the callback-manager patch, so graphs without a
marker pay one attribute scan per run and are not recorded unless :func:`instrument` is on."""

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
from driftwatch.integrations.langgraph._hooks import unhook
from driftwatch.integrations.langgraph._marker import marker_of
from driftwatch.integrations.langgraph._runs import (
    Started,
    handler_of,
    run_ainvoke,
    run_astream,
    run_invoke,
    run_stream,
    start_recording,
    with_run_handler,
)
from driftwatch.integrations.langgraph._stores import namespace_prefixes, note_store_writes, unwatch_stores, watch_store
from driftwatch.integrations.langgraph._topology import observe_topology
from driftwatch.runtime import get_runtime

__all__ = ["check_versions", "ensure_run_patches", "instrument", "is_instrumented", "run_patches_installed",
           "uninstrument"]

#: the patches of :func:`instrument`: the callback managers' ``__init__``
_PATCHES = Patches()
#: the run patches (``Pregel`` methods), for :func:`instrument` and for graphs marked by a DriftwatchMiddleware
_RUN_PATCHES = Patches()
_GLOBAL: DriftwatchCallbackHandler | None = None
_SEEN: weakref.WeakSet[Any] = weakref.WeakSet()
_GLOBAL_OPTIONS: dict[str, Any] = {}


def check_versions() -> None:
    """``DidNotEnable`` (with the pip command) when LangGraph or LangChain is older than supported."""
    check_installed("LangGraph", "langgraph", ("langgraph", "langchain-core"))


def is_instrumented() -> bool:
    """Whether :func:`instrument` is on."""
    return _GLOBAL is not None


def run_patches_installed() -> bool:
    return bool(_RUN_PATCHES)


def _first_sight(graph: Any, agent: str, namespaces: Any = None) -> None:
    """Topology (and store) of a graph seen for the first time by the run patches."""
    try:
        if graph in _SEEN:
            return
        _SEEN.add(graph)
    except TypeError:  # not weak-referenceable or unhashable: skip topology
        return
    observe_topology(agent, graph)
    store = getattr(graph, "store", None)
    if isinstance(store, BaseStore):
        try:
            note_store_writes(store, agent=agent)
            if namespaces is not None:
                watch_store(store, agent=agent, namespaces=namespaces)
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("store", exc)


def _start(graph: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Started, tuple[Any, ...],
                                                                              dict[str, Any]]:
    """Whether and how to record this top-level run: a graph carrying a DriftwatchMiddleware's marker (its
    agent; the middleware's handler joins the run's callbacks), else every graph while :func:`instrument` is on
    (agent: the graph's name). A graph watched with ``driftwatch.watch`` records itself."""
    try:
        marker = marker_of(graph)
        if marker is not None:
            if handler_of(graph) is not None:
                return None, args, kwargs
            _first_sight(graph, marker.agent)
            started = start_recording(graph, marker.handler, marker.agent, args, kwargs)
            if started is not None:
                args, kwargs = with_run_handler(graph, args, kwargs, marker.handler)
            return started, args, kwargs
        handler = _GLOBAL
        if handler is None or ACTIVE.get() is not None or handler_of(graph) is not None:
            return None, args, kwargs
        agent = getattr(graph, "name", None) or "LangGraph"
        _first_sight(graph, agent, _GLOBAL_OPTIONS.get("store_namespaces"))
        return start_recording(graph, handler, agent, args, kwargs), args, kwargs
    except Exception as exc:  # noqa: BLE001  # never break the host
        get_runtime().error("langgraph", exc)
        return None, args, kwargs


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
        gen = _RUN_PATCHES.generation

        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _RUN_PATCHES.generation != gen:
                return original(self, *args, **kwargs)
            started, args, kwargs = _start(self, args, kwargs)
            return run(started, original.__get__(self), args, kwargs)

        method.__name__, method.__qualname__, method.__doc__ = \
            original.__name__, original.__qualname__, original.__doc__
        return method

    return make


def _make_ainvoke(original: Any) -> Any:
    gen = _RUN_PATCHES.generation

    async def ainvoke(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _RUN_PATCHES.generation != gen:
            return await original(self, *args, **kwargs)
        started, args, kwargs = _start(self, args, kwargs)
        return await run_ainvoke(started, original.__get__(self), args, kwargs)

    ainvoke.__doc__ = original.__doc__
    return ainvoke


def ensure_run_patches() -> None:
    """Put the run patches in place (once; :func:`uninstrument` takes them back)."""
    with _RUN_PATCHES.lock:
        if _RUN_PATCHES:
            return
        for name, make in (("invoke", _make_run(run_invoke)), ("ainvoke", _make_ainvoke),
                           ("stream", _make_run(run_stream)), ("astream", _make_run(run_astream))):
            _RUN_PATCHES.patch(Pregel, name, make)


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
        handler = DriftwatchCallbackHandler(None, prompt_keys=keys, normalize_prompt=normalize)
        _PATCHES.patch(BaseCallbackManager, "__init__", _make_manager_init(handler))
        ensure_run_patches()
        _GLOBAL = handler


def uninstrument() -> None:
    """Undo :func:`instrument`, the run patches (a DriftwatchMiddleware puts them back on its next model call),
    the chat-model hooks of watched graphs (``_hooks``: a watched graph's next ``invoke`` puts them back) and the
    store patches, in reverse order; idempotent.

    A patch that another instrumentor (OpenInference, OpenLLMetry) has wrapped since is left in place,
    inert, so that their wrapper keeps working; stores watched with :func:`driftwatch.watch` stop being
    watched too.
    """
    global _GLOBAL
    with _PATCHES.lock:
        _GLOBAL = None  # first: every patch of ours passes straight through from here on
        _PATCHES.undo()
        _RUN_PATCHES.undo()
        unhook()
        _GLOBAL_OPTIONS.clear()
        unwatch_stores()
