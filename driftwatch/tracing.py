"""The OpenTelemetry sink: ``driftwatch.change`` spans, ``invoke_agent`` spans, drift span events.

Spans go through the global tracer provider unless one is injected; driftwatch never sets a global
provider. Nothing here knows the runtime: errors go to the callback a caller passes (or to the process's
default error handler, which the runtime installs). The GenAI attribute names are defined here (the constants in
opentelemetry-semantic-conventions are deprecated). Prompt text, diffs and exception messages (they can hold
user input) are attached only when content capture is on, and then after redaction; with it off, an exception
is recorded by its type alone.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from driftwatch._version import __version__

if TYPE_CHECKING:
    from driftwatch.alarm import Alarm
    from driftwatch.change import Change
    from driftwatch.guardrails.records import GuardAction
    from driftwatch.observation import OptimizerRun
    from driftwatch.revision import Diff

__all__ = [
    "ATTR",
    "GEN_AI_AGENT_NAME",
    "GEN_AI_AGENT_VERSION",
    "GEN_AI_OPERATION_NAME",
    "CountingExporter",
    "ErrorHandler",
    "SpanExportError",
    "Tracing",
    "current_ids",
    "record_exception",
    "set_default_error_handler",
]

#: ``handler(stage, exc)``: counts and logs an error inside driftwatch
ErrorHandler = Callable[[str, BaseException], None]

GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_AGENT_VERSION = "gen_ai.agent.version"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"


class ATTR:
    """driftwatch's own span attribute names."""

    AGENT = "driftwatch.agent"
    COMPONENT = "driftwatch.component"
    CHANGE_ID = "driftwatch.change.id"
    KIND = "driftwatch.change.kind"
    SOURCE = "driftwatch.change.source"
    BEFORE = "driftwatch.revision.before"
    AFTER = "driftwatch.revision.after"
    MAGNITUDE = "driftwatch.change.magnitude"
    PATHS = "driftwatch.change.paths"
    NODE = "driftwatch.change.node"
    RUN_ID = "driftwatch.optimizer.run_id"
    DIFF = "driftwatch.change.diff"
    DIFF_CHARS = "driftwatch.change.diff_chars"
    DIFF_TRUNCATED = "driftwatch.change.diff_truncated"
    OUTPUT_CHARS = "driftwatch.output.chars"
    SIGNAL = "driftwatch.drift.signal"
    DRIFT_SCORE = "driftwatch.drift.score"
    ANCHOR = "driftwatch.drift.anchor_change_id"
    OPTIMIZER = "driftwatch.optimizer.name"
    OUTCOME = "driftwatch.optimizer.outcome"
    CANDIDATES = "driftwatch.optimizer.candidates"
    BEST_SCORE = "driftwatch.optimizer.best_score"
    STATUS = "driftwatch.change.status"
    GUARD_ACTION = "driftwatch.guard.action"
    GUARD_REASON = "driftwatch.guard.reason"
    SERVING = "driftwatch.revision.serving"


def record_exception(span: Any, error: BaseException, *, capture_content: bool = False,
                     redact: Callable[[str], str] | None = None) -> None:
    """Add the ``exception`` event to ``span``: with ``capture_content``, type, message and stack trace (through
    ``redact``); without, the type alone (a message can hold user input: a prompt, an answer, an address)."""
    kind = type(error)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    attributes: dict[str, Any] = {"exception.type": name}
    if capture_content:
        scrub = redact or str
        attributes["exception.message"] = scrub(str(error))
        attributes["exception.stacktrace"] = scrub("".join(traceback.format_exception(error)))
    span.add_event("exception", attributes)


def _hex_ids(ctx: SpanContext) -> tuple[str | None, str | None]:
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def current_ids() -> tuple[str | None, str | None]:
    """Trace and span id (hex) of the active span, or ``(None, None)``."""
    return _hex_ids(trace.get_current_span().get_span_context())


class Tracing:
    """Creates driftwatch's spans on one tracer."""

    stage = "tracing"

    def __init__(self, tracer_provider: Any = None, *, capture_content: bool = False,
                 redact: Callable[[str], str] | None = None) -> None:
        self.tracer = trace.get_tracer("driftwatch", __version__, tracer_provider=tracer_provider)
        self.capture_content = capture_content
        self.redact = redact

    # -- agent calls ------------------------------------------------------------------------------
    def start_call(self, agent: str, version: str | None, *, attach: bool = True) -> tuple[Any, Any]:
        """Start ``invoke_agent {agent}`` as the current span; returns ``(span, token)``.

        The token is ``None`` when the span does not record (no SDK configured), so nothing needs
        detaching and the call pays almost nothing, and with ``attach=False`` (the caller makes the
        span current with :meth:`enter` where the agent runs).
        """
        attributes = {GEN_AI_OPERATION_NAME: "invoke_agent", GEN_AI_AGENT_NAME: agent}
        if version:
            attributes[GEN_AI_AGENT_VERSION] = version
        span = self.tracer.start_span(f"invoke_agent {agent}", kind=SpanKind.INTERNAL, attributes=attributes)
        if not attach or not span.is_recording():
            return span, None
        return span, otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def enter(span: Any) -> Any:
        """Make ``span`` current again (generators resume in the caller's context); returns a token."""
        if span is None or not span.is_recording():
            return None
        return otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def exit(token: Any) -> None:
        if token is not None:
            otel_context.detach(token)

    @staticmethod
    @staticmethod
    def end_call(span: Any, *, error: BaseException | None = None, output_chars: int | None = None,
                 input_tokens: int | None = None, output_tokens: int | None = None,
                 factory: str | None = None, capture_content: bool = False,
                 redact: Callable[[str], str] | None = None) -> None:
        """End an ``invoke_agent`` span; an error is recorded by type (with its message and stack trace only when
        ``capture_content``, after ``redact``)."""
        if span is None:
            return
        if span.is_recording():
            attributes: dict[str, Any] = {}
            if factory is not None:  # the watched function built an agent rather than ran one
                span.update_name(f"create_agent {factory}")
                attributes[GEN_AI_OPERATION_NAME] = "create_agent"
            if output_chars is not None:
                attributes[ATTR.OUTPUT_CHARS] = output_chars
            if input_tokens:
                attributes[GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
            if output_tokens:
                attributes[GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
            if error is not None:
                record_exception(span, error, capture_content=capture_content, redact=redact)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                attributes["error.type"] = type(error).__qualname__
            if attributes:
                span.set_attributes(attributes)  # one lock and one pass for all of them
        span.end()

    # -- optimizer runs ---------------------------------------------------------------------------
    def start_run(self, run: OptimizerRun) -> Any:
        """Start ``driftwatch.optimizer.compile`` for ``run`` (not made current: see :meth:`enter`).

        The changes an optimizer run produces are recorded while it is current, so their spans are its
        children.
        """
        return self.tracer.start_span("driftwatch.optimizer.compile", kind=SpanKind.INTERNAL, attributes={
            ATTR.AGENT: run.agent, ATTR.OPTIMIZER: run.optimizer, ATTR.RUN_ID: run.id})

    @staticmethod
    def end_run(span: Any, run: OptimizerRun, error: BaseException | None = None, *, capture_content: bool = False,
                redact: Callable[[str], str] | None = None) -> None:
        """End the compile span with the run's outcome, candidate count and best score."""
        if span is None:
            return
        if span.is_recording():
            attributes: dict[str, Any] = {ATTR.OUTCOME: run.outcome, ATTR.CANDIDATES: run.candidates}
            if run.best_score is not None:
                attributes[ATTR.BEST_SCORE] = run.best_score
            if error is not None:
                record_exception(span, error, capture_content=capture_content, redact=redact)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                attributes["error.type"] = type(error).__qualname__
            span.set_attributes(attributes)
        span.end()

    # -- changes ----------------------------------------------------------------------------------
    def start_change(self, change: Change) -> Any:
        """Start the ``driftwatch.change`` span (a child of the active span, if any)."""
        attributes: dict[str, Any] = {
            ATTR.AGENT: change.agent,
            ATTR.COMPONENT: change.component,
            ATTR.CHANGE_ID: change.id,
            ATTR.KIND: change.kind,
            ATTR.SOURCE: change.source,
            ATTR.AFTER: change.after_id,
            ATTR.MAGNITUDE: change.magnitude,
            ATTR.PATHS: list(change.paths),
        }
        if change.before_id is not None:
            attributes[ATTR.BEFORE] = change.before_id
        if change.node:
            attributes[ATTR.NODE] = change.node
        if change.run_id:
            attributes[ATTR.RUN_ID] = change.run_id
        if change.status != "applied":
            attributes[ATTR.STATUS] = change.status
        return self.tracer.start_span("driftwatch.change", kind=SpanKind.INTERNAL, attributes=attributes,
                                      start_time=int(change.timestamp * 1e9) or None)

    @staticmethod
    def span_ids(span: Any) -> tuple[str | None, str | None]:
        ids = _hex_ids(span.get_span_context())
        return ids if ids[0] else current_ids()

    def end_change(self, span: Any, diff: Diff | None) -> None:
        """End the change span; with content capture on, its diff as an event (with its full size and whether
        it was cut)."""
        if diff is not None and self.capture_content and span.is_recording():
            span.add_event("driftwatch.change.diff", {ATTR.DIFF: diff.text, ATTR.DIFF_CHARS: diff.chars,
                                                      ATTR.DIFF_TRUNCATED: diff.truncated})
        span.end()

    # -- drift ------------------------------------------------------------------------------------
    def on_alarm(self, alarm: Alarm, anchor: Change | None) -> tuple[str | None, str | None]:
        """A ``driftwatch.drift`` event on a short span (a child of the active span, if any) linked to
        the change that anchored the reference; returns that span's trace and span id."""
        links = []
        if anchor is not None and anchor.trace_id and anchor.span_id:
            links.append(Link(SpanContext(int(anchor.trace_id, 16), int(anchor.span_id, 16), is_remote=True,
                                          trace_flags=TraceFlags(TraceFlags.SAMPLED)),
                              {ATTR.CHANGE_ID: anchor.id}))
        attributes: dict[str, Any] = {ATTR.AGENT: alarm.agent, ATTR.SIGNAL: alarm.signal,
                                      ATTR.DRIFT_SCORE: alarm.score}
        if alarm.anchor_change_id:
            attributes[ATTR.ANCHOR] = alarm.anchor_change_id
        with self.tracer.start_as_current_span("driftwatch.drift", links=links, attributes=attributes) as span:
            span.add_event("driftwatch.drift", attributes)
            return self.span_ids(span)

    # -- guardrails ---------------------------------------------------------------------------------
    def on_guard(self, action: GuardAction, span: Any = None) -> None:
        """A ``driftwatch.guard`` span event: on ``span`` (a refused change's ``driftwatch.change`` span), or on
        a short ``driftwatch.guard`` span of its own (a child of the active span, if any)."""
        attributes: dict[str, Any] = {ATTR.AGENT: action.agent, ATTR.GUARD_ACTION: action.action,
                                      ATTR.GUARD_REASON: action.reason}
        if action.component:
            attributes[ATTR.COMPONENT] = action.component
        if action.change_id:
            attributes[ATTR.CHANGE_ID] = action.change_id
        if action.revision_id:
            attributes[ATTR.SERVING] = action.revision_id
        if span is not None:
            if span.is_recording():
                span.add_event("driftwatch.guard", attributes)
            return
        with self.tracer.start_as_current_span("driftwatch.guard", attributes=attributes) as own:
            own.add_event("driftwatch.guard", attributes)


class SpanExportError(RuntimeError):
    """A span export failed (the message says after how long, and what the agent's call waited)."""


def _log_error(stage: str, exc: BaseException) -> None:
    logging.getLogger("driftwatch").warning("driftwatch %s error: %s: %s", stage, type(exc).__name__, exc)


_default_handler: ErrorHandler = _log_error


def set_default_error_handler(handler: ErrorHandler) -> None:
    """Where a :class:`CountingExporter` made without ``on_error`` reports (the runtime installs one that
    counts in the process's current runtime, whichever that is when the export fails)."""
    global _default_handler
    _default_handler = handler


class CountingExporter:
    """Wraps any OpenTelemetry ``SpanExporter`` so that failed exports are counted.

    ``BatchSpanProcessor(CountingExporter(OTLPSpanExporter(...)))``: an unreachable or failing
    collector then shows in ``driftwatch_internal_errors_total{stage="span_export"}`` instead of only
    in the SDK's log. Use a ``BatchSpanProcessor`` in production: with a ``SimpleSpanProcessor`` the
    export (and its retries, up to the exporter's timeout: 10 s for OTLP) runs inside the agent's call, which
    waits for it. ``on_error(stage, exc)`` receives the failures, with how long the export took (default: the
    process's current driftwatch runtime).
    """

    def __init__(self, exporter: Any, *, on_error: ErrorHandler | None = None) -> None:
        self.exporter = exporter
        self.on_error = on_error

    def _error(self, exc: BaseException) -> None:
        (self.on_error or _default_handler)("span_export", exc)

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        started = time.monotonic()
        try:
            result = self.exporter.export(spans)
        except Exception as exc:  # noqa: BLE001  # counted, and reported as a failed export
            self._error(SpanExportError(self._failed(spans, started, f"{type(exc).__name__}: {exc}")))
            return SpanExportResult.FAILURE
        if result != SpanExportResult.SUCCESS:
            self._error(SpanExportError(self._failed(spans, started, str(result))))
        return result

    def _failed(self, spans: Any, started: float, why: str) -> str:
        return (f"{type(self.exporter).__name__} failed to export {len(spans)} span(s) after "
                f"{time.monotonic() - started:.2f} s ({why}); the spans are lost. Under a SimpleSpanProcessor the "
                "export runs inside the agent's call, which waited that long: use a BatchSpanProcessor, which "
                "exports from its own thread")

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flush = getattr(self.exporter, "force_flush", None)
        return True if flush is None else bool(flush(timeout_millis))
