"""``driftwatch.watch``: one decorator for agents, agent factories, programs and graphs.

- On a DSPy module or LangGraph graph (instance or class), the framework's integration instruments it.
- On a function that *returns* such an object (a factory), the returned object is instrumented and
  the factory call is traced as ``create_agent {agent}``, not counted as an agent call.
- On any other sync or async function, generator or async generator, each call is recorded: status,
  duration, output size, and an ``invoke_agent {agent}`` span around it.

The wrapper never changes what the function returns or raises; everything driftwatch does around the
call is guarded and counted in ``driftwatch_internal_errors_total``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from driftwatch.integrations import DidNotEnable, adapter_for, unavailable_reason
from driftwatch.observation import output_size, output_text
from driftwatch.runtime import CallScope, get_runtime

__all__ = ["watch"]

F = TypeVar("F")


@overload
def watch(obj: F, /, *, agent: str | None = ..., **options: Any) -> F: ...
@overload
def watch(obj: None = ..., /, *, agent: str | None = ..., **options: Any) -> Callable[[F], F]: ...


def watch(obj: Any = None, /, *, agent: str | None = None, **options: Any) -> Any:
    """Watch an agent: ``@watch``, ``@watch(agent="support-bot")`` or ``watch(graph, agent=...)``.

    Without ``agent=`` the name is the function's or class's name. ``options`` go to the framework
    integration (for example ``prompt_keys=`` for LangGraph), also when a watched function turns out
    to be a factory; a plain function ignores them.
    """
    if agent is not None and (not isinstance(agent, str) or not agent.strip()):
        raise ValueError(f"driftwatch.watch(agent={agent!r}): expected a non-empty string")
    if obj is None:
        return functools.partial(watch, agent=agent, **options)
    name = agent or _derive_name(obj)
    adapter = adapter_for(obj)
    if adapter is not None:
        return adapter.watch_object(obj, agent=name, **options)
    reason = unavailable_reason(obj)
    if reason is not None:  # a DSPy / LangGraph object whose integration cannot load: say why, not "not callable"
        raise DidNotEnable(f"driftwatch.watch({type(obj).__name__}): {reason}")
    if isinstance(obj, type):
        raise TypeError(f"driftwatch.watch cannot watch class {obj.__name__}: only DSPy modules, LangGraph "
                        "graphs, and functions that run or build an agent can be watched")
    if not callable(obj):
        raise TypeError(f"driftwatch.watch expected a function, a DSPy module or a LangGraph graph, "
                        f"got {type(obj).__name__}")
    return _wrap(obj, name, options)


def _derive_name(obj: Any) -> str:
    for attr in ("name", "__name__"):
        value = getattr(obj, attr, None)
        if isinstance(value, str) and value and not value.startswith("<"):
            return value
    return type(obj).__name__


def _wrap(fn: Callable[..., Any], agent: str, options: dict[str, Any]) -> Callable[..., Any]:
    """Record each call of ``fn``; ``options`` go to the integration if ``fn`` turns out to be a factory."""
    if inspect.isasyncgenfunction(fn):
        wrapper: Callable[..., Any] = _wrap_asyncgen(fn, agent)
    elif inspect.isgeneratorfunction(fn):
        wrapper = _wrap_gen(fn, agent)
    elif inspect.iscoroutinefunction(fn):
        wrapper = _wrap_async(fn, agent, options)
    else:
        wrapper = _wrap_sync(fn, agent, options)
    wrapper.__driftwatch_agent__ = agent  # type: ignore[attr-defined]  # marker read by tests and the CLI
    return wrapper


def _finish(scope: CallScope, result: Any, agent: str, options: dict[str, Any]) -> Any:
    """Record a returned call; instrument a returned DSPy program / LangGraph graph instead."""
    try:
        if type(result) is str:  # the common answer: no framework object, its own text (whatever output_key says)
            scope.finish(output_chars=len(result), output_text=result)
            return result
        adapter = adapter_for(result)
        if adapter is not None:
            scope.finish(record=False, factory=agent)
            return adapter.watch_object(result, agent=agent, **options)
        text = output_text(result, scope.runtime.agent_options(agent).output_key)
        scope.finish(output_chars=len(text) if text is not None else output_size(result), output_text=text)
    except Exception as exc:  # noqa: BLE001  # never break the host: the result is returned untouched
        scope.runtime.error("call", exc)
    return result


def _fail(scope: CallScope, exc: BaseException) -> None:
    try:
        scope.finish(error=exc)
    except Exception as inner:  # noqa: BLE001  # never break the host
        scope.runtime.error("call", inner)


def _wrap_sync(fn: Callable[..., Any], agent: str, options: dict[str, Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = get_runtime().begin_call(agent)
        if scope is None:
            return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _fail(scope, exc)
            raise
        return _finish(scope, result, agent, options)

    return wrapper


def _wrap_async(fn: Callable[..., Any], agent: str, options: dict[str, Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = get_runtime().begin_call(agent)
        if scope is None:
            return await fn(*args, **kwargs)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            _fail(scope, exc)
            raise
        return _finish(scope, result, agent, options)

    return wrapper


def _chunk_chars(item: Any) -> int:
    text = output_text(item)
    if text is not None:
        return len(text)
    size = output_size(item)
    return size or 0


def _wrap_gen(fn: Callable[..., Any], agent: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = get_runtime().begin_call(agent)
        gen = fn(*args, **kwargs)
        if scope is None:
            return (yield from gen)
        chars = 0
        op, arg = gen.send, None
        while True:
            token = scope.enter()
            try:
                item = op(arg)
            except StopIteration as stop:
                scope.exit(token)
                scope.finish(output_chars=chars)
                return stop.value
            except BaseException as exc:
                scope.exit(token)
                _fail(scope, exc)
                raise
            scope.exit(token)
            try:
                chars += _chunk_chars(item)
            except Exception as exc:  # noqa: BLE001  # never break the host
                scope.runtime.error("call", exc)
            try:
                arg = yield item
                op = gen.send
            except GeneratorExit:
                gen.close()
                scope.finish(output_chars=chars)
                raise
            except BaseException as exc:  # noqa: BLE001  # thrown in by the consumer: handed to the generator
                op, arg = gen.throw, exc

    return wrapper


def _wrap_asyncgen(fn: Callable[..., Any], agent: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = get_runtime().begin_call(agent)
        agen = fn(*args, **kwargs)
        chars = 0
        op, arg = agen.asend, None
        while True:
            token = scope.enter() if scope is not None else None
            try:
                item = await op(arg)
            except StopAsyncIteration:
                if scope is not None:
                    scope.exit(token)
                    scope.finish(output_chars=chars)
                return
            except BaseException as exc:
                if scope is not None:
                    scope.exit(token)
                    _fail(scope, exc)
                raise
            if scope is not None:
                scope.exit(token)
                try:
                    chars += _chunk_chars(item)
                except Exception as exc:  # noqa: BLE001  # never break the host
                    scope.runtime.error("call", exc)
            try:
                arg = yield item
                op = agen.asend
            except GeneratorExit:
                await agen.aclose()
                if scope is not None:
                    scope.finish(output_chars=chars)
                raise
            except BaseException as exc:  # noqa: BLE001  # thrown in by the consumer: handed to the generator
                op, arg = agen.athrow, exc

    return wrapper
