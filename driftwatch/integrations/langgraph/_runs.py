"""Recording each run of a watched graph: the watched subclass of the graph's class (``invoke``, ``ainvoke``,
``stream``, ``astream``), the run marked active for the handler, and the call's scope (span current while the
graph runs, the call recorded when it ends)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from types import MappingProxyType
from typing import Any

from langchain_core.callbacks import BaseCallbackManager

from driftwatch.integrations._common import PerRuntime, parse_version
from driftwatch.integrations.langgraph._attribution import spied_nodes
from driftwatch.integrations.langgraph._handler import ACTIVE, DriftwatchCallbackHandler, Invocation
from driftwatch.integrations.langgraph._hooks import INSTALLED, ensure_hooks
from driftwatch.integrations.langgraph._sites import tool_registry
from driftwatch.observation import output_text
from driftwatch.runtime import CallScope, get_runtime
from driftwatch.tracing import GEN_AI_CONVERSATION_ID, GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL

__all__ = ["Started", "conversation_of", "handler_of", "run_ainvoke", "run_astream", "run_invoke", "run_stream",
           "start_recording", "with_handler", "with_run_handler"]


#: a run being recorded (its call scope and what the handler gathers), or ``None``: run the graph untouched
Started = tuple[CallScope, Invocation] | None


#: the last model each agent's own model calls used, (provider, model, the two as read-only span attributes), for the
#: runtime in use: put on the next call's span at its start (samplers see it); a call that finds another sets its
#: own at the end
_LAST_MODEL: PerRuntime[str, tuple[str | None, str | None, Mapping[str, str | None]]] = PerRuntime(str)


def conversation_of(graph: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The ``thread_id`` a run is given (its config, else the graph's own config): its conversation id."""
    config = kwargs.get("config") if "config" in kwargs else (args[1] if len(args) > 1 else None)
    own = getattr(graph, "config", None)
    if config is None and own is None:
        return None  # the common case: no config anywhere
    for cfg in (config, own):
        configurable = cfg.get("configurable") if isinstance(cfg, dict) else None
        thread = configurable.get("thread_id") if isinstance(configurable, dict) else None
        if thread is not None and isinstance(thread, str | int):
            return str(thread)
    return None


def _start(handler: DriftwatchCallbackHandler, agent: str | None, graph: Any, args: tuple[Any, ...],
           kwargs: dict[str, Any], hooked: bool = False) -> Started:
    """The scope of a new recorded run of ``agent`` (``args``/``kwargs``: the run's own), or ``None`` to run the
    graph untouched: part of a run already recorded (a subgraph, or invoke → stream), driftwatch disabled, or an
    error (counted, never raised).

    ``hooked``: an ``invoke``/``ainvoke`` of a graph watched without a handler in its config (see ``_hooks``): the
    run is marked ``hooked`` and its span is current from here to its end (made last, so that nothing can fail
    between it and the run that ends it); else the span is current while the graph runs (each step of a stream).
    """
    if agent is None:
        return None
    outer = ACTIVE.get()
    if outer is not None and (outer.agent == agent or handler.agent is None):
        return None  # part of a run already recorded (a subgraph, or invoke → stream)
    try:
        rt = get_runtime()
        if not rt.enabled:
            return None
        if hooked and not INSTALLED[0]:
            ensure_hooks()  # before the span is made current: nothing may fail between that and the run
        attributes = None
        tracing = rt.tracing
        if tracing is not None and (tracing.bound or tracing.live()):  # would_trace: only a span reads them
            last = _LAST_MODEL.values(rt).get(agent)
            conversation = conversation_of(graph, args, kwargs)
            if last is not None:  # read-only and kept: start_call reuses its merge with the start attributes
                attributes = last[2] if conversation is None else {**last[2], GEN_AI_CONVERSATION_ID: conversation}
            elif conversation is not None:
                attributes = {GEN_AI_CONVERSATION_ID: conversation}
        nodes = getattr(graph, "nodes", None)
        memo = handler.registry_memo  # (node table, its tool registry): the graph's copies share one table
        if memo is None or memo[0] is not nodes:
            memo = handler.registry_memo = (nodes, tool_registry(graph))
        inv = Invocation(handler, agent, memo[1])
        if hooked:
            inv.hooked = True
        scope = rt.begin_call(agent, attach=hooked, attributes=attributes)
        if scope is None:
            return None
        inv.traced = scope.span is not None  # its model names the next call's span at its start, sampled or not
        return scope, inv
    except Exception as exc:  # noqa: BLE001  # never break the host
        get_runtime().error("call", exc)
        return None


def _end(scope: CallScope, inv: Invocation, error: BaseException | None = None) -> None:
    try:
        span_attributes = None
        if inv.traced and (inv.model is not None or inv.provider is not None):  # only spans read it (next: at start)
            last = _LAST_MODEL.values(scope.runtime)
            kept = last.get(inv.agent)
            if kept is None or kept[0] != inv.provider or kept[1] != inv.model:
                # a model without a name (fake and local models) still has its provider; None values: left out
                span_attributes = {GEN_AI_PROVIDER_NAME: inv.provider, GEN_AI_REQUEST_MODEL: inv.model}
                last[inv.agent] = (inv.provider, inv.model, MappingProxyType(dict(span_attributes)))
        if error is not None:
            scope.finish(error=error, span_attributes=span_attributes)
            return
        text = output_text(inv.output, key=scope.runtime.agent_options(inv.agent).output_key)
        scope.finish(output_chars=len(text) if text is not None else None, output_text=text,
                     tools=inv.tools, input_tokens=inv.input_tokens or None,
                     output_tokens=inv.output_tokens or None, span_attributes=span_attributes)
    except Exception as exc:  # noqa: BLE001  # never break the host
        scope.runtime.error("call", exc)


def _run_sync(stream: Iterator[Any], scope: CallScope, inv: Invocation) -> Iterator[Any]:
    """Drive ``stream`` with the run marked active and its span current during each step."""
    try:
        while True:
            token = ACTIVE.set(inv)
            span_token = scope.enter()
            try:
                item = next(stream)
            except StopIteration:
                break
            finally:
                scope.exit(span_token)
                ACTIVE.reset(token)
            yield item
    except GeneratorExit:  # the consumer stopped early: the run ends here, without an error
        _close(stream)
        _end(scope, inv)
        raise
    except BaseException as exc:  # the graph's own error (or one thrown in by the consumer): passed on
        _close(stream)
        _end(scope, inv, exc)
        raise
    _end(scope, inv)


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


async def _run_async(stream: AsyncIterator[Any], scope: CallScope, inv: Invocation) -> AsyncIterator[Any]:
    try:
        while True:
            token = ACTIVE.set(inv)
            span_token = scope.enter()
            try:
                item = await stream.__anext__()
            except StopAsyncIteration:
                break
            finally:
                scope.exit(span_token)
                ACTIVE.reset(token)
            yield item
    except GeneratorExit:
        await _aclose(stream)
        _end(scope, inv)
        raise
    except BaseException as exc:
        await _aclose(stream)
        _end(scope, inv, exc)
        raise
    _end(scope, inv)


async def _aclose(stream: Any) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def handler_of(graph: Any) -> DriftwatchCallbackHandler | None:
    """The handler of a graph watched with ``driftwatch.watch`` (its class's, else in its config), or ``None``."""
    handler = getattr(type(graph), "__driftwatch_handler__", None)
    if handler is not None:
        return handler  # type: ignore[no-any-return]
    callbacks = (graph.config or {}).get("callbacks")
    if callbacks is None:
        return None
    handlers = callbacks.handlers if isinstance(callbacks, BaseCallbackManager) else callbacks
    for h in handlers:
        if type(h) is DriftwatchCallbackHandler and h.agent is not None:
            return h
    return None


def start_recording(graph: Any, handler: DriftwatchCallbackHandler | None, agent: str | None,
                    args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Started:
    """The scope of a new recorded run (``args``/``kwargs``: the run's own), or ``None`` to run the graph
    untouched."""
    if handler is None:
        return None
    return _start(handler, agent, graph, args, kwargs or {})


def run_invoke(started: Started, sup: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``invoke`` as one recorded run: the run is active and its span current for the whole call."""
    if started is None:
        return sup(*args, **kwargs)
    scope, inv = started
    token = ACTIVE.set(inv)
    # None: attached already, or no span (enter() would return None)
    span_token = scope.enter() if scope.token is None and scope.span is not None else None
    try:
        result = sup(*args, **kwargs)
    except BaseException as exc:
        scope.exit(span_token)
        ACTIVE.reset(token)
        _end(scope, inv, exc)
        raise
    if span_token is not None:
        scope.exit(span_token)
    ACTIVE.reset(token)
    if inv.output is None:
        inv.output = result
    _end(scope, inv)
    return result


async def run_ainvoke(started: Started, sup: Callable[..., Any], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
    if started is None:
        return await sup(*args, **kwargs)
    scope, inv = started
    token = ACTIVE.set(inv)
    span_token = scope.enter() if scope.token is None and scope.span is not None else None
    try:
        result = await sup(*args, **kwargs)
    except BaseException as exc:
        scope.exit(span_token)
        ACTIVE.reset(token)
        _end(scope, inv, exc)
        raise
    scope.exit(span_token)
    ACTIVE.reset(token)
    if inv.output is None:
        inv.output = result
    _end(scope, inv)
    return result


def run_stream(started: Started, sup: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``stream`` as one recorded run (the run is active and its span current during each step)."""
    if started is None:
        return sup(*args, **kwargs)
    scope, inv = started
    inv.stream = True
    try:
        stream = sup(*args, **kwargs)
    except BaseException as exc:
        _end(scope, inv, exc)
        raise
    return _run_sync(stream, scope, inv)


def run_astream(started: Started, sup: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if started is None:
        return sup(*args, **kwargs)
    scope, inv = started
    inv.stream = True
    try:
        stream = sup(*args, **kwargs)
    except BaseException as exc:
        _end(scope, inv, exc)
        raise
    return _run_async(stream, scope, inv)


def _watched_start(graph: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Started:
    handler = handler_of(graph)
    return start_recording(graph, handler, handler.agent if handler is not None else None, args, kwargs)


def _replaces_bound_callbacks() -> bool:
    """Whether callbacks passed to a call replace those bound to the graph (LangGraph < 1.2.4; later ones merge)."""
    try:
        return parse_version(version("langgraph")) < (1, 2, 4)
    except PackageNotFoundError:  # pragma: no cover - imported by the package, so installed
        return False


_CALL_CALLBACKS_REPLACE = _replaces_bound_callbacks()


def _keep_handler(graph: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments with the watched graph's handler added to callbacks the caller passed.

    Before LangGraph 1.2.4 a call's ``config={"callbacks": ...}`` (and ``astream_events``, which passes
    its own) replaces the callbacks bound with ``with_config``, driftwatch's handler among them, so the
    run would go unseen; from 1.2.4 LangGraph merges the two itself and this changes nothing.
    """
    if not _CALL_CALLBACKS_REPLACE:
        return args, kwargs
    try:
        config = args[1] if len(args) > 1 else kwargs.get("config")
        callbacks = config.get("callbacks") if isinstance(config, dict) else None
        handler = handler_of(graph)
        if callbacks is None or handler is None:
            return args, kwargs
        present = callbacks.handlers if isinstance(callbacks, BaseCallbackManager) else callbacks
        if handler in present:
            return args, kwargs
        from langchain_core.runnables.config import merge_configs

        config = merge_configs(config, {"callbacks": [handler]})
        if len(args) > 1:
            return (args[0], config, *args[2:]), kwargs
        return args, {**kwargs, "config": config}
    except Exception as exc:  # noqa: BLE001  # never break the host: run with the caller's arguments
        get_runtime().error("langgraph", exc)
        return args, kwargs


def with_run_handler(graph: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                     handler: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The run's arguments with ``handler`` added to its config's callbacks (the caller's kept; before LangGraph
    1.2.4, where a call's callbacks replace the graph's bound ones, those bound to the graph too)."""
    from langchain_core.runnables.config import merge_configs

    config = kwargs.get("config") if "config" in kwargs else (args[1] if len(args) > 1 else None)
    extra: dict[str, Any] = {"callbacks": [handler]}
    bound = (getattr(graph, "config", None) or {}).get("callbacks") if _CALL_CALLBACKS_REPLACE else None
    if bound and not (isinstance(config, dict) and config.get("callbacks") is not None):
        config = merge_configs(config, {"callbacks": bound})
    config = merge_configs(config, extra)
    if "config" not in kwargs and len(args) > 1:
        return (args[0], config, *args[2:]), kwargs
    return args, {**kwargs, "config": config}


_SUBCLASSES: dict[type, type] = {}
_SUBCLASS_LOCK = threading.Lock()


def _watched_class(cls: type, handler: DriftwatchCallbackHandler | None = None) -> type:
    """A subclass of the graph's class whose ``invoke``/``ainvoke``/``stream``/``astream`` record each run.

    ``handler=None``: the handler is in the copy's config (its callbacks), which gives each run's agent; one
    subclass per graph class. With ``handler``: a subclass of its own that holds the handler, the graph's config
    left without it; ``invoke``/``ainvoke`` then run without any callback handler (chat-model calls reach the
    handler through ``_hooks``), and ``stream``/``astream`` add it to the run's callbacks (the output of a
    streamed run is the root run's ``on_chain_end``). ``copy()``/``with_config()`` keep the subclass (they build
    ``self.__class__``), so copies stay watched.
    """
    cls = getattr(cls, "__driftwatch_base__", cls)
    if handler is None:
        sub = _SUBCLASSES.get(cls)
        if sub is not None:
            return sub
        with _SUBCLASS_LOCK:
            sub = _SUBCLASSES.get(cls)
            if sub is None:
                sub = _SUBCLASSES[cls] = _make_class(cls, _config_methods, None)
            return sub
    return _make_class(cls, _hooked_methods, handler)


def _make_class(cls: type, methods_of: Callable[[list[type]], dict[str, Any]],
                handler: DriftwatchCallbackHandler | None) -> type:
    box: list[type] = []  # the class made below, for the methods' ``super`` (an item read: no call per run)
    methods = methods_of(box)
    for name, fn in methods.items():
        fn.__doc__ = getattr(cls, name).__doc__
    sub = type(cls.__name__, (cls,), {
        **methods, "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__,
        "__driftwatch_watched__": True, "__driftwatch_base__": cls, "__driftwatch_handler__": handler,
    })
    box.append(sub)
    return sub


def _config_methods(box: list[type]) -> dict[str, Any]:
    """The run methods of a watched class whose handler is in the graph's config."""

    def invoke(self: Any, *args: Any, **kwargs: Any) -> Any:
        args, kwargs = _keep_handler(self, args, kwargs)
        return run_invoke(_watched_start(self, args, kwargs), super(box[0], self).invoke, args, kwargs)

    async def ainvoke(self: Any, *args: Any, **kwargs: Any) -> Any:
        args, kwargs = _keep_handler(self, args, kwargs)
        return await run_ainvoke(_watched_start(self, args, kwargs), super(box[0], self).ainvoke, args, kwargs)

    def stream(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        args, kwargs = _keep_handler(self, args, kwargs)
        return run_stream(_watched_start(self, args, kwargs), super(box[0], self).stream, args, kwargs)

    def astream(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        args, kwargs = _keep_handler(self, args, kwargs)
        return run_astream(_watched_start(self, args, kwargs), super(box[0], self).astream, args, kwargs)

    return {"invoke": invoke, "ainvoke": ainvoke, "stream": stream, "astream": astream}


def _hooked_methods(box: list[type]) -> dict[str, Any]:
    """The run methods of a watched class that holds its handler (``invoke``/``ainvoke`` without callbacks)."""

    def invoke(self: Any, *args: Any, **kwargs: Any) -> Any:
        cls = box[0]
        handler = cls.__driftwatch_handler__  # type: ignore[attr-defined]
        return run_invoke(_start(handler, handler.agent, self, args, kwargs, hooked=True), super(cls, self).invoke,
                          args, kwargs)

    async def ainvoke(self: Any, *args: Any, **kwargs: Any) -> Any:
        cls = box[0]
        handler = cls.__driftwatch_handler__  # type: ignore[attr-defined]
        return await run_ainvoke(_start(handler, handler.agent, self, args, kwargs, hooked=True),
                                 super(cls, self).ainvoke, args, kwargs)

    return {"invoke": invoke, "ainvoke": ainvoke, "stream": _hooked_streamer(box, "stream", run_stream),
            "astream": _hooked_streamer(box, "astream", run_astream)}


def _hooked_streamer(box: list[type], name: str, run: Callable[..., Any]) -> Callable[..., Any]:
    """``stream`` / ``astream`` (``name``, driven by ``run``) of a watched class that holds its handler."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        cls = box[0]
        handler = cls.__driftwatch_handler__  # type: ignore[attr-defined]
        outer = ACTIVE.get()
        if outer is not None and outer.agent == handler.agent:  # invoke → stream, or a subgraph: recorded already
            return getattr(super(cls, self), name)(*args, **kwargs)
        args, kwargs, started = _streamed_start(self, handler, args, kwargs)
        return run(started, getattr(super(cls, self), name), args, kwargs)

    method.__name__ = method.__qualname__ = name
    return method


def _streamed_start(graph: Any, handler: DriftwatchCallbackHandler, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any], Started]:
    """A streamed run of a graph whose config holds no handler: the handler joins the run's callbacks."""
    started = start_recording(graph, handler, handler.agent, args, kwargs)
    if started is not None:
        try:
            args, kwargs = with_run_handler(graph, args, kwargs, handler)
        except Exception as exc:  # noqa: BLE001  # never break the host: recorded without model events
            get_runtime().error("langgraph", exc)
    return args, kwargs, started


def with_handler(graph: Any, handler: DriftwatchCallbackHandler, *, hooks: bool = True) -> Any:
    """A watched copy of ``graph``: of a subclass holding ``handler`` when its nodes note prompt writes themselves
    (no handler in its config, see ``_hooks``), else (or with ``hooks=False``) of the watched subclass with
    ``handler`` added to its config's callbacks."""
    from langchain_core.runnables.config import merge_configs

    config = dict(graph.config or {})
    callbacks = config.get("callbacks")
    if isinstance(callbacks, list):  # re-watched: replace driftwatch's handler, keep the user's
        config["callbacks"] = [h for h in callbacks if type(h) is not DriftwatchCallbackHandler]
    elif isinstance(callbacks, BaseCallbackManager):
        callbacks = callbacks.copy()
        for h in list(callbacks.handlers):
            if type(h) is DriftwatchCallbackHandler:
                callbacks.remove_handler(h)
        config["callbacks"] = callbacks
    attrs = {k: v for k, v in graph.__dict__.items() if k != "__orig_class__"}
    if handler.agent is not None:
        try:
            nodes = spied_nodes(graph, handler.agent, handler.prompt_keys)
        except Exception as exc:  # noqa: BLE001  # an unexpected graph shape: attribute through chain events
            get_runtime().error("langgraph", exc)
            nodes = None
        if nodes is not None:
            attrs["nodes"] = nodes
            handler.chain_attribution = False
    if handler.chain_attribution or not hooks:
        attrs["config"] = merge_configs(config, {"callbacks": [handler]})
        return _watched_class(type(graph))(**attrs)
    if config.get("callbacks") == []:
        del config["callbacks"]
    attrs["config"] = config if config or graph.config is not None else None
    return _watched_class(type(graph), handler)(**attrs)
