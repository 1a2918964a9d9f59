"""The deferred ``invoke_agent`` span: its ids and sampling decided when a watched call starts, the SDK span itself
made when the call's batch is processed (:mod:`driftwatch.call_batch`), off the agent's call path.

Measured in place (``benchmarks/bench_langgraph.py``), an OpenTelemetry SDK span costs a 3-node LangGraph graph's
invoke about 50 µs, though the same span costs about 20 µs in a loop: the SDK's span, its attribute table, its
processors' calls and the objects it keeps, made once between the agent's own steps, run with cold caches. So where
nothing can tell the difference, a watched call's span is made in two halves:

- **at the start**, on the agent's thread, what the SDK's ``Tracer.start_span`` decides there: the parent (the
  current span), the trace and span ids (the tracer's own id generator), the sampler's decision and the trace flags
  and state. A recorded call gets a :class:`DeferredSpan` (the current span while the agent runs: the spans made
  inside it are its children, and what the agent's code sets on it is kept); a dropped one the SDK's
  ``NonRecordingSpan``, as the SDK would make;
- **after the call**, when the runtime processes the call's batch (``call_batch`` calls or ``call_batch_s`` old; at
  once with ``call_batch=1``; and before anything reads driftwatch's state: ``Runtime.flush_calls()``, ``close()``,
  exit), the span processors get the span the SDK would have handed them at its end, with those ids and the call's
  start and end times: for the usual span (only plain attributes set on it) the SDK's ``ReadableSpan`` made
  directly; otherwise the SDK's span, made and started then, what was set on the stand-in replayed on it in order,
  and ended.

Deferred only where nothing can tell (:func:`deferrable`): the SDK's own tracer (enabled, its internal metrics off),
sampler and ``BatchSpanProcessor``/``SimpleSpanProcessor`` (whose ``on_start`` reads nothing; a
``SimpleSpanProcessor`` then exports off the call path too). Any other processor or sampler gets its span the SDK's
way, at the start.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

__all__ = ["DeferredSpan", "deferrable", "end_deferred", "start_deferred"]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_DEFAULT = TraceFlags(TraceFlags.DEFAULT)
#: the SDK's flag for a trace id drawn at random (``None`` in an API without it)
_RANDOM = getattr(TraceFlags, "RANDOM_TRACE_ID", None)
#: the SDK's span classes (``_Span``, what its tracer makes; ``Span``, whose ``record_exception`` is run;
#: ``ReadableSpan``, what its processors get at a span's end), set by :func:`deferrable` before any span is deferred
#: (the SDK is imported only where it is used)
_SDK: list[Any] = [None, None, None]


def deferrable(tracer: Any) -> bool:
    """Whether ``tracer`` (an SDK tracer whose sampler and span processors are the SDK's own: see
    ``tracing._direct_allowed``) may have its call spans deferred: it is enabled and its internal span metrics
    (which count live spans from their start) are off."""
    try:
        from opentelemetry.sdk.trace import ReadableSpan, Span, _Span
        from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
    except ImportError:  # pragma: no cover - an SDK without them: its span class differs too
        return False
    _SDK[0], _SDK[1], _SDK[2] = _Span, Span, ReadableSpan
    enabled = getattr(tracer, "_is_enabled", None)
    return (type(getattr(tracer, "_tracer_metrics", None)) is NoOpTracerMetrics and enabled is not None
            and bool(enabled()))


def start_deferred(tracer: Any, name: str, attributes: Mapping[str, Any], ended: deque[DeferredSpan]) -> Any:
    """What ``tracer.start_span(name, None, SpanKind.INTERNAL)`` decides now, for a span made later: a
    :class:`DeferredSpan` (recorded; ``attributes``: its start attributes, plain values, read when it is made) that
    ``ended`` receives when it ends, or the SDK's ``NonRecordingSpan`` (dropped by the sampler)."""
    parent = trace.get_current_span().get_span_context()
    if not tracer._is_enabled():  # turned off by the provider's tracer configurator since: the SDK's answer
        return NonRecordingSpan(parent)
    if not parent.is_valid:
        parent = None
        trace_id = tracer.id_generator.generate_trace_id()
    else:
        trace_id = parent.trace_id
    result = tracer.sampler.should_sample(None, trace_id, name, SpanKind.INTERNAL, None, ())
    flags = _SAMPLED if result.decision.is_sampled() else _DEFAULT
    if _RANDOM is not None and (tracer.id_generator.is_trace_id_random() if parent is None
                                else parent.trace_flags.random_trace_id):
        flags = TraceFlags(flags | _RANDOM)
    context = SpanContext(trace_id, tracer.id_generator.generate_span_id(), False, flags, result.trace_state)
    if not result.decision.is_recording():
        return NonRecordingSpan(context)
    extra = result.attributes  # what the sampler adds (the SDK's own add none)
    return DeferredSpan(tracer, name, context, parent, {**attributes, **extra} if extra else attributes, ended)


class DeferredSpan(trace.Span):
    """A recorded ``invoke_agent`` span whose SDK span is made after the call (:func:`end_deferred`).

    Until it ends it answers as the SDK span would (its context, ``is_recording()``), and keeps what is set on it
    (attributes, events, links, status, a new name, exceptions; their timestamps taken when set) as calls replayed in
    order on the SDK span: what the SDK checks (values, limits, the attributes dropped) it checks then, the same way;
    mappings and lists are copied when set, as the SDK copies them. After it ends, what is set on it is dropped (the
    SDK drops it with a warning).
    """

    __slots__ = ("_calls", "_context", "_end", "_ended", "_name", "_parent", "_start", "_table", "_tracer")

    def __init__(self, tracer: Any, name: str, context: SpanContext, parent: SpanContext | None,
                 attributes: Mapping[str, Any], ended: deque[DeferredSpan]) -> None:
        self._tracer = tracer
        self._name = name
        self._context = context
        self._parent = parent
        self._table = attributes
        self._calls: list[tuple[str, tuple[Any, ...]]] | None = None
        self._ended = ended
        self._end: int | None = None
        self._start = time.time_ns()

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def set_attribute(self, key: str, value: Any) -> None:
        self._keep("set_attribute", key, tuple(value) if type(value) is list else value)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self._keep("set_attributes", _copy(attributes))

    def _keep(self, method: str, *args: Any) -> None:
        if self._end is None:
            if self._calls is None:
                self._calls = []
            self._calls.append((method, args))

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        self._keep("add_event", name, _copy(attributes), timestamp if timestamp is not None else time.time_ns())

    def add_link(self, context: SpanContext, attributes: Any = None) -> None:
        self._keep("add_link", context, _copy(attributes))

    def update_name(self, name: str) -> None:
        self._keep("update_name", name)

    def set_status(self, status: Any, description: str | None = None) -> None:
        self._keep("set_status", status, description)

    def record_exception(self, exception: BaseException, attributes: Any = None, timestamp: int | None = None,
                         escaped: bool = False) -> None:
        """The SDK's own ``record_exception``, run now (the stack trace and message as they are now: an exception that
        goes on up the stack grows its traceback), its ``exception`` event kept through :meth:`add_event`."""
        if self._end is None:
            _SDK[1].record_exception(self, exception, attributes, timestamp, escaped)

    def end(self, end_time: int | None = None) -> None:
        """Note the end (the first one counts); the SDK span is made when the call's batch is processed."""
        if self._end is None:
            self._end = end_time if end_time is not None else time.time_ns()
            self._ended.append(self)

    def _plain_table(self) -> dict[str, Any] | None:
        """The span's attributes when it is a usual one, or ``None``: only attributes were set on it, each a plain value
        under a string key (as the SDK stores them: a key set again moves last), none dropped by the span's attribute
        limit. Its processors then get the ``ReadableSpan`` the SDK's span would hand them at its end, made directly:
        its attributes in a plain dict, no events and links (as their read-only views, ``attributes`` / ``events`` /
        ``links``, and the dropped counts show them), without the SDK span's lock, attribute table and lists, which
        the span processor kept alive until its export (~10 µs a span, and most of the garbage collector's work a span
        causes). The SDK's own processors do nothing else with a span (``on_start``, ``_on_ending``)."""
        table = dict(self._table)
        for method, args in self._calls or ():
            if method == "set_attribute":
                items: Any = (args,)
            elif method == "set_attributes":
                items = args[0].items()
            else:
                return None
            for key, value in items:
                if type(key) is not str or not key:  # the SDK drops it (a warning, and counted by set_attributes)
                    return None
                table.pop(key, None)
                table[key] = value
        for value in table.values():
            if type(value) not in _PLAIN:
                return None
        limits = self._tracer._span_limits
        if limits.max_span_attribute_length is not None or (
                limits.max_span_attributes is not None and len(table) > limits.max_span_attributes):
            return None
        return table

    def __repr__(self) -> str:
        return f'DeferredSpan(name="{self._name}", context={self._context})'

    def make(self) -> None:
        """Make the SDK span, replay what was set on this one and end it (its processors get it now)."""
        tracer = self._tracer
        table = self._plain_table()
        if table is not None:  # the usual span: what its processors get, made directly
            tracer.span_processor.on_end(_SDK[2](
                name=self._name, context=self._context, parent=self._parent, resource=tracer.resource,
                attributes=table, events=(), links=(), kind=SpanKind.INTERNAL, start_time=self._start,
                end_time=self._end, instrumentation_info=tracer.instrumentation_info,
                instrumentation_scope=tracer._instrumentation_scope))
            return
        span = _SDK[0](name=self._name, context=self._context, parent=self._parent, sampler=tracer.sampler,
                     resource=tracer.resource, attributes=self._table, span_processor=tracer.span_processor,
                     kind=SpanKind.INTERNAL, links=(), instrumentation_info=tracer.instrumentation_info,
                     limits=tracer._span_limits, instrumentation_scope=tracer._instrumentation_scope)
        span.start(start_time=self._start)
        for method, args in self._calls or ():
            getattr(span, method)(*args)
        span.end(end_time=self._end)


#: attribute value types the SDK stores as they are (strings too: no length limit where spans are deferred)
_PLAIN = frozenset({str, int, float, bool})


def _copy(attributes: Any) -> Any:
    """Attributes as they are when set (the SDK copies them then; a list value becomes a tuple there too): a caller
    changing its mapping or list afterwards changes nothing."""
    if not attributes or not isinstance(attributes, Mapping):
        return attributes  # None, empty, or not a mapping: the SDK's checks see it as it is
    return {k: tuple(v) if type(v) is list else v for k, v in attributes.items()}


def end_deferred(ended: deque[DeferredSpan], on_error: Callable[[BaseException], None]) -> None:
    """Make the SDK spans of the deferred spans that ended, in the order they ended (any thread may add more)."""
    pop = ended.popleft
    while ended:
        try:
            span = pop()
        except IndexError:  # another thread took the last one
            return
        try:
            span.make()
        except Exception as exc:  # noqa: BLE001  # one span's failure (an IndexError too) is counted; the others are made
            on_error(exc)
