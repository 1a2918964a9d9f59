"""The OpenTelemetry sink: ``driftwatch.change`` spans, ``invoke_agent`` spans, drift span events.

Spans go through the global tracer provider unless one is injected; driftwatch never sets a global
provider. Nothing here knows the runtime: errors go to the callback a caller passes (or to the process's
default error handler, which the runtime installs). Prompt text, diffs and exception messages (they can hold
user input) are attached only when content capture is on, and then after redaction; with it off, an exception
is recorded by its type alone.

Every attribute, span and event name driftwatch emits is a constant of this module: the OpenTelemetry GenAI
names (``GEN_AI_*``; the constants in opentelemetry-semantic-conventions are deprecated for import, so the
strings are defined here, and a test checks them against that package) and driftwatch's own (:class:`ATTR`,
:class:`SPAN`, :class:`EVENT`), which ``docs/semantic-conventions.md`` specifies (a test keeps the two equal).

The SDK's default id generator draws span and trace ids from the global :mod:`random`, so a program that
seeds ``random`` gets other numbers once spans are made; :func:`id_generator` draws them from a private
generator instead (pass it to your ``TracerProvider``; :func:`driftwatch.testing.capture` does).
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from driftwatch._version import __version__
from driftwatch.deferred_span import DeferredSpan, deferrable, end_deferred, start_deferred

if TYPE_CHECKING:
    from driftwatch.alarm import Alarm
    from driftwatch.change import Change
    from driftwatch.guardrails.records import GuardAction
    from driftwatch.observation import OptimizerRun
    from driftwatch.revision import Diff

__all__ = [
    "ATTR",
    "ERROR_TYPE",
    "EVENT",
    "GEN_AI_AGENT_NAME",
    "GEN_AI_AGENT_VERSION",
    "GEN_AI_ATTRIBUTES",
    "GEN_AI_CONVERSATION_ID",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "SPAN",
    "CountingExporter",
    "ErrorHandler",
    "SpanExportError",
    "Tracing",
    "current_ids",
    "end_call_span",
    "id_generator",
    "provider_name",
    "record_exception",
    "set_default_error_handler",
]

#: ``handler(stage, exc)``: counts and logs an error inside driftwatch
ErrorHandler = Callable[[str, BaseException], None]

# -- OpenTelemetry GenAI semantic conventions (the names; checked against opentelemetry-semantic-conventions) --
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_AGENT_VERSION = "gen_ai.agent.version"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
#: the general (stable) convention's attribute for the class of error a span ended with
ERROR_TYPE = "error.type"
#: every GenAI attribute driftwatch emits (on ``invoke_agent`` / ``create_agent`` spans)
GEN_AI_ATTRIBUTES: tuple[str, ...] = (
    GEN_AI_OPERATION_NAME, GEN_AI_PROVIDER_NAME, GEN_AI_AGENT_NAME, GEN_AI_AGENT_VERSION, GEN_AI_CONVERSATION_ID,
    GEN_AI_REQUEST_MODEL, GEN_AI_USAGE_INPUT_TOKENS, GEN_AI_USAGE_OUTPUT_TOKENS)

#: well-known ``gen_ai.provider.name`` values, by the names frameworks use for a provider (LangChain's
#: ``ls_provider``, LiteLLM's model prefix as DSPy uses it); other names pass through lower-cased
_PROVIDERS = {
    "openai": "openai", "text-completion-openai": "openai", "anthropic": "anthropic", "claude": "anthropic",
    "azure": "azure.ai.openai", "azure_openai": "azure.ai.openai", "azure_ai": "azure.ai.inference",
    "azure-ai-inference": "azure.ai.inference", "bedrock": "aws.bedrock", "amazon_bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock", "google_genai": "gcp.gemini", "gemini": "gcp.gemini",
    "google_vertexai": "gcp.vertex_ai", "vertex_ai": "gcp.vertex_ai", "vertexai": "gcp.vertex_ai",
    "cohere": "cohere", "deepseek": "deepseek", "groq": "groq", "mistral": "mistral_ai", "mistralai": "mistral_ai",
    "mistral_ai": "mistral_ai", "xai": "x_ai", "x_ai": "x_ai", "perplexity": "perplexity", "watsonx": "ibm.watsonx.ai",
    "ibm": "ibm.watsonx.ai", "moonshot": "moonshot_ai", "moonshot_ai": "moonshot_ai",
}


def provider_name(raw: str | None) -> str | None:
    """The ``gen_ai.provider.name`` for a framework's provider name (``"google_genai"`` → ``"gcp.gemini"``):
    the convention's well-known value when there is one, else the name lower-cased; ``None`` for none."""
    if not raw or not isinstance(raw, str):
        return None
    key = raw.strip().lower()
    return _PROVIDERS.get(key, key) or None


class SPAN:
    """driftwatch's span names (``invoke_agent {agent}`` and ``create_agent {agent}`` are the GenAI ones)."""

    INVOKE_AGENT = "invoke_agent"
    CREATE_AGENT = "create_agent"
    CHANGE = "driftwatch.change"
    OPTIMIZER_COMPILE = "driftwatch.optimizer.compile"
    DRIFT = "driftwatch.drift"
    GUARD = "driftwatch.guard"


class EVENT:
    """driftwatch's span event names."""

    DRIFT = "driftwatch.drift"
    CHANGE_DIFF = "driftwatch.change.diff"
    GUARD = "driftwatch.guard"


class ATTR:
    """driftwatch's own span attribute names (``docs/semantic-conventions.md``)."""

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


def end_call_span(span: Any, recording: bool, error: BaseException | None, output_chars: int | None,
                  input_tokens: int | None, output_tokens: int | None, factory: str | None,
                  attributes: Mapping[str, Any] | None, capture_content: bool,
                  redact: Callable[[str], str] | None) -> None:
    """:meth:`Tracing.end_call`'s body, its arguments positional (a hook's per-call path: ten keywords cost more
    than the rest of it); ``span`` is not ``None``."""
    if recording:
        if error is None and factory is None and not attributes and not input_tokens and not output_tokens:
            # the answer's size alone (the usual end): set alone, no dict to build (into an SDK span's table directly)
            if output_chars is not None and (type(span) is not _SDK[0]
                                             or not _set_plain(span, ATTR.OUTPUT_CHARS, output_chars)):
                span.set_attribute(ATTR.OUTPUT_CHARS, output_chars)
        else:
            attrs: dict[str, Any] = {}
            if attributes:
                for k, v in attributes.items():
                    if v is not None:
                        attrs[k] = v
            if factory is not None:  # the watched function built an agent rather than ran one
                span.update_name(f"{SPAN.CREATE_AGENT} {factory}")
                attrs[GEN_AI_OPERATION_NAME] = SPAN.CREATE_AGENT
            if output_chars is not None:
                attrs[ATTR.OUTPUT_CHARS] = output_chars
            if input_tokens:
                attrs[GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
            if output_tokens:
                attrs[GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
            if error is not None:
                record_exception(span, error, capture_content=capture_content, redact=redact)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                attrs[ERROR_TYPE] = type(error).__qualname__
            if len(attrs) > 1:
                span.set_attributes(attrs)  # one lock and one pass for all of them
            elif attrs:  # one (the answer's size, say): set alone, the SDK cleans it without a pass over a dict
                for k, v in attrs.items():
                    span.set_attribute(k, v)
    span.end()


def _hex_ids(ctx: SpanContext) -> tuple[str | None, str | None]:
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def current_ids() -> tuple[str | None, str | None]:
    """Trace and span id (hex) of the active span, or ``(None, None)``."""
    return _hex_ids(trace.get_current_span().get_span_context())


#: agents whose span name and start attributes a :class:`Tracing` keeps (past it, all are forgotten)
_STARTS_KEPT = 1024


class Tracing:
    """Creates driftwatch's spans on one tracer."""

    stage = "tracing"

    def __init__(self, tracer_provider: Any = None, *, capture_content: bool = False,
                 redact: Callable[[str], str] | None = None, defer: bool = True) -> None:
        self.tracer = trace.get_tracer("driftwatch", __version__, tracer_provider=tracer_provider)
        #: the tracer is a provider's own (one was injected, or the global one was set when this was made): its
        #: spans can record for good, so :meth:`live` need not be asked (a hook reads this first, then ``live()``)
        self.bound = type(self.tracer) is not trace.ProxyTracer
        #: no global provider is named in the environment (``OTEL_PYTHON_TRACER_PROVIDER``, which the API loads on
        #: first use): read once, here
        self._no_env_provider = OTEL_PYTHON_TRACER_PROVIDER not in os.environ
        self.capture_content = capture_content
        self.redact = redact
        #: per agent: [version, span name, start attributes, (last read-only extra attributes, the two merged, whether
        #: their values are all plain)] of its last call, reused while its version holds
        self._starts: dict[str, list[Any]] = {}
        #: (sampler, span processors, whether start attributes may go straight into the span's table, whether call
        #: spans are deferred) of the tracer as last checked (:func:`_direct_allowed`, :func:`deferrable`): checked
        #: again when either of the two is replaced
        self._direct: tuple[Any, Any, bool, bool] | None = None
        #: call spans may be deferred (:mod:`driftwatch.deferred_span`) where nothing can tell
        self.defer = defer
        #: deferred call spans that ended, for :meth:`end_deferred` (any thread appends)
        self.ended: deque[DeferredSpan] = deque()
        _LIVE.add(self)

    def live(self) -> bool:
        """Whether a span started now can record: not while the tracer is the global provider's and no SDK
        provider is set (its spans record nothing: a hook can skip making one, and its attributes)."""
        if self.bound:
            return True
        # what trace.get_tracer_provider() reads, without the environment lookup it makes while no provider is set
        # (~1/2 of a call's work here); the attribute read falls back to it if a version of the API lacks it
        if getattr(trace, "_TRACER_PROVIDER", self) is None and self._no_env_provider:
            return False
        return type(trace.get_tracer_provider()) is not trace.ProxyTracerProvider

    # -- agent calls ------------------------------------------------------------------------------
    def start_call(self, agent: str, version: str | None, attach: bool = True,
                   attributes: Mapping[str, Any] | None = None) -> tuple[Any, Any, bool]:
        """Start ``invoke_agent {agent}`` as the current span; returns ``(span, token, recording)``.

        ``attributes``: more GenAI attributes known at the start (``gen_ai.provider.name``,
        ``gen_ai.request.model``, ``gen_ai.conversation.id``; samplers see them; ``None`` values are left out). A
        ``MappingProxyType`` (a DSPy LM's, kept per LM) is taken as unchanging: passed again, its merge with the start
        attributes is reused (pass a new one for new values). Under the SDK's own samplers and span processors
        (which read no start attribute) and no attribute length limit, the start attributes go straight into the new
        span's attribute table rather than through the SDK's per-value cleaning (the same span, ~90k fewer instructions
        per LangGraph invoke).
        The token is ``None`` when the span belongs to no trace (a no-op provider), so nothing needs detaching
        and the call pays almost nothing, and with ``attach=False`` (the caller makes the span current with
        :meth:`enter` where the agent runs). A span the sampler dropped is made current like a recorded one: the
        spans made inside the call follow its decision and its trace. ``recording``: the span records (pass it
        to :meth:`end_call`; nothing is computed for a span that does not).
        """
        start = self._starts.get(agent)
        if start is None or start[0] != version:
            start = self._start_of(agent, version)
        merged = start[3]  # (read-only extra attributes, merged with the start ones): one read, threads may swap it
        plain = fresh = True  # every value one the SDK keeps as it is (start[2]'s are strings); attrs is a new dict
        if not attributes:
            attrs, fresh = start[2], False
        elif merged is not None and merged[0] is attributes:  # the last call's read-only mapping (a DSPy LM's)
            attrs, plain, fresh = merged[1], merged[2], False
        else:
            attrs = {**start[2]}
            for k, v in attributes.items():
                if v is not None:
                    attrs[k] = v
                    if type(v) not in _PLAIN_VALUES:
                        plain = False
            if type(attributes) is MappingProxyType:  # read-only: the same one next call holds the same values
                start[3] = (attributes, {**attrs}, plain)
        tracer = self.tracer
        if plain and self.bound and self._direct_for(tracer):
            if self._direct[3]:  # type: ignore[index]  # set by _direct_for
                # the SDK span made after the call, off its path (driftwatch.deferred_span); nothing can tell
                span = start_deferred(tracer, start[1], attrs, self.ended)
                recording = type(span) is DeferredSpan
            else:
                # the SDK's own samplers and processors do not read a span's start attributes: the span starts
                # without them and they go straight into its attribute table, as the SDK would have stored them
                # (plain values, no length limit, room checked), without its per-value cleaning (~40% of the span's
                # added bytecodes)
                span = tracer.start_span(start[1], None, SpanKind.INTERNAL)
                recording = span.is_recording()
                if recording:
                    table = span._attributes
                    if type(table) is _SDK[1] and (table.maxlen is None or len(attrs) <= table.maxlen):
                        table._dict.update(attrs)  # a new span: no other thread holds it yet
                    else:
                        span.set_attributes(attrs)
        else:  # a copy of a kept mapping (one C-level copy): a sampler given it may keep or change it
            span = tracer.start_span(start[1], None, SpanKind.INTERNAL, attrs if fresh else {**attrs})
            recording = span.is_recording()
        # a span the sampler dropped is made current too: spans made inside the call inherit the decision (and
        # the trace) instead of starting traces of their own; a span of no trace at all (no-op API) is not
        if not attach or not (recording or span.get_span_context().is_valid):
            return span, None, recording
        return span, otel_context.attach(trace.set_span_in_context(span)), recording

    def end_deferred(self, on_error: Callable[[BaseException], None]) -> None:
        """Make the SDK spans of the deferred call spans that ended (the runtime calls this with each batch of calls
        it processes, and before anything reads its state)."""
        end_deferred(self.ended, on_error)

    def _direct_for(self, tracer: Any) -> bool:
        """Whether ``tracer``'s spans may take their start attributes straight into their table (see
        :func:`_direct_allowed`; the answer is kept until the tracer's sampler or span processors change)."""
        kept = self._direct
        if kept is not None:
            if kept[1] is None:  # not the SDK's tracer
                return False
            if kept[0] is tracer.sampler and kept[1] is tracer.span_processor._span_processors:
                return kept[2]  # type: ignore[no-any-return]
        processors = getattr(getattr(tracer, "span_processor", None), "_span_processors", None)
        if type(processors) is not tuple:
            self._direct = (None, None, False, False)
            return False
        allowed = _direct_allowed(tracer, processors)
        defer = allowed and self.defer and deferrable(tracer)
        if defer and tracer.span_processor not in _EXIT_HOOKED:  # a provider not seen deferring yet
            _EXIT_HOOKED.add(tracer.span_processor)
            _hook_exit()
        self._direct = (tracer.sampler, processors, allowed, defer)
        return allowed

    def _start_of(self, agent: str, version: str | None) -> list[Any]:
        """The span name and start attributes of ``agent``'s calls at ``version`` (kept for the next call), and the
        last read-only ``attributes`` mapping passed with them and their merge (see :meth:`start_call`)."""
        attrs: dict[str, Any] = {GEN_AI_OPERATION_NAME: SPAN.INVOKE_AGENT, GEN_AI_AGENT_NAME: agent}
        if version:
            attrs[GEN_AI_AGENT_VERSION] = version
        start = [version, f"{SPAN.INVOKE_AGENT} {agent}", attrs, None]
        if len(self._starts) >= _STARTS_KEPT:  # agents past the agent limit keep coming: forget them all
            self._starts.clear()
        self._starts[agent] = start
        return start

    @staticmethod
    def enter(span: Any) -> Any:
        """Make ``span`` current again (generators resume in the caller's context); returns a token."""
        if span is None or not (span.is_recording() or span.get_span_context().is_valid):
            return None
        return otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def exit(token: Any) -> None:
        if token is not None:
            otel_context.detach(token)

    @staticmethod
    def end_call(span: Any, *, error: BaseException | None = None, output_chars: int | None = None,
                 input_tokens: int | None = None, output_tokens: int | None = None,
                 factory: str | None = None, attributes: Mapping[str, Any] | None = None,
                 capture_content: bool = False, redact: Callable[[str], str] | None = None,
                 recording: bool | None = None) -> None:
        """End an ``invoke_agent`` span: output size, tokens, ``attributes`` learnt during the call (the agent
        version that served it, the model and provider it called; ``None`` values left out), and an error by
        type (with its message and stack trace only when ``capture_content``, after ``redact``). ``recording``:
        whether the span records, when the caller knows (:meth:`start_call`); nothing is set on one that does
        not."""
        if span is not None:
            end_call_span(span, recording if recording is not None else span.is_recording(), error, output_chars,
                          input_tokens, output_tokens, factory, attributes, capture_content, redact)

    # -- optimizer runs ---------------------------------------------------------------------------
    def start_run(self, run: OptimizerRun) -> Any:
        """Start ``driftwatch.optimizer.compile`` for ``run`` (not made current: see :meth:`enter`).

        The changes an optimizer run produces are recorded while it is current, so their spans are its
        children.
        """
        return self.tracer.start_span(SPAN.OPTIMIZER_COMPILE, kind=SpanKind.INTERNAL, attributes={
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
                attributes[ERROR_TYPE] = type(error).__qualname__
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
        return self.tracer.start_span(SPAN.CHANGE, kind=SpanKind.INTERNAL, attributes=attributes,
                                      start_time=int(change.timestamp * 1e9) or None)

    @staticmethod
    def span_ids(span: Any) -> tuple[str | None, str | None]:
        ids = _hex_ids(span.get_span_context())
        return ids if ids[0] else current_ids()

    def end_change(self, span: Any, diff: Diff | None) -> None:
        """End the change span; with content capture on, its diff as an event (with its full size and whether
        it was cut)."""
        if diff is not None and self.capture_content and span.is_recording():
            span.add_event(EVENT.CHANGE_DIFF, {ATTR.DIFF: diff.text, ATTR.DIFF_CHARS: diff.chars,
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
        with self.tracer.start_as_current_span(SPAN.DRIFT, links=links, attributes=attributes) as span:
            span.add_event(EVENT.DRIFT, attributes)
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
                span.add_event(EVENT.GUARD, attributes)
            return
        with self.tracer.start_as_current_span(SPAN.GUARD, attributes=attributes) as own:
            own.add_event(EVENT.GUARD, attributes)


# -- the SDK's span attribute table, written directly where that stores what the SDK would --------------------------

#: value types the SDK's attribute cleaning returns as they are (strings too while no length limit is set)
_PLAIN_VALUES = frozenset({str, int, float, bool})
#: (the SDK's span class, its attribute table class), or Nones before :func:`_direct_allowed` first ran (or
#: when the SDK does not have them)
_SDK: list[Any] = [None, None]


def _direct_allowed(tracer: Any, processors: tuple[Any, ...]) -> bool:
    """Whether spans of the SDK ``tracer`` may start without their attributes and take them into their table right
    after, with nothing able to tell: its sampler is the SDK's own (they pass the attributes through untouched
    and decide without them), its processors are the SDK's ``BatchSpanProcessor``/``SimpleSpanProcessor`` (whose
    ``on_start`` reads nothing), and no attribute length limit is set (the SDK would cut strings)."""
    try:
        from opentelemetry.attributes import BoundedAttributes
        from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor, Tracer, _Span
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:  # pragma: no cover - the SDK is a dependency
        return False
    if _SDK[0] is None:
        _SDK[0], _SDK[1] = _Span, BoundedAttributes
    if type(tracer) is not Tracer or type(tracer.span_processor) is not SynchronousMultiSpanProcessor:
        return False
    if any(type(p) not in (BatchSpanProcessor, SimpleSpanProcessor) for p in processors):
        return False
    limits = getattr(tracer, "_span_limits", None)  # the provider's, fixed at the tracer's making
    if getattr(limits, "max_span_attribute_length", 0) is not None:
        return False
    return _own_sampler(tracer.sampler)


def _own_sampler(sampler: Any) -> bool:
    """Whether ``sampler`` is one of the SDK's samplers (a parent-based one: with its delegates the SDK's too)."""
    from opentelemetry.sdk.trace import sampling

    kind = type(sampler)
    if kind in (sampling.StaticSampler, sampling.TraceIdRatioBased):
        return True
    if kind in (sampling.ParentBased, sampling.ParentBasedTraceIdRatio):
        delegates = [getattr(sampler, name, None) for name in (
            "_root", "_remote_parent_sampled", "_remote_parent_not_sampled", "_local_parent_sampled",
            "_local_parent_not_sampled")]
        return all(d is not None and _own_sampler(d) for d in delegates)
    return False


def _set_plain(span: Any, key: str, value: Any) -> bool:
    """Set ``key`` (not on the span yet) to a plain ``value`` on an SDK span the way ``set_attribute`` does, without
    its cleaning; ``False`` (nothing done) where that would not store the same: the span ended, its table is not
    the SDK's, the key is there already (the SDK moves it last), the table is full, or a string would be cut.

    Without the span's lock: the span is the watched call's own, ended right after by the same thread; only code
    ending it from another thread at that very moment could see the attribute land as it ends (as it would have
    a moment earlier)."""
    if type(value) not in _PLAIN_VALUES:
        return False
    table = span._attributes
    if span._end_time is not None or type(table) is not _SDK[1] or table._immutable:
        return False
    if type(value) is str and table.max_value_len is not None:  # the SDK would cut it
        return False
    items = table._dict
    if key in items or (table.maxlen is not None and len(items) >= table.maxlen):
        return False
    items[key] = value
    return True


class SpanExportError(RuntimeError):
    """A span export failed (the message says after how long, and what the agent's call waited)."""


# -- span ids that leave the global random alone ----------------------------------------------------------

_ID_GENERATOR: Any = None
_ID_LOCK = threading.Lock()


def id_generator() -> Any:
    """An OpenTelemetry ``IdGenerator`` that does not touch the global :mod:`random` (the SDK's default draws
    ids with ``random.getrandbits``, which shifts every number a program that seeds ``random`` draws later).

    ``TracerProvider(id_generator=driftwatch.tracing.id_generator())``. Ids come from a private
    ``random.Random`` seeded from ``os.urandom`` (reseeded in a forked child, as the global one is); trace ids
    are random in all 128 bits. One shared instance per process.
    """
    global _ID_GENERATOR
    if _ID_GENERATOR is None:
        with _ID_LOCK:
            if _ID_GENERATOR is None:
                _ID_GENERATOR = _make_id_generator()
    return _ID_GENERATOR


def _make_id_generator() -> Any:
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class PrivateRandomIdGenerator(IdGenerator):
        """Span and trace ids from a private random generator (the global ``random`` is left alone)."""

        def __init__(self) -> None:
            self._rng = random.Random(os.urandom(32))

        def reseed(self) -> None:
            self._rng.seed(os.urandom(32))

        def generate_span_id(self) -> int:
            span_id = self._rng.getrandbits(64)
            while span_id == trace.INVALID_SPAN_ID:
                span_id = self._rng.getrandbits(64)
            return span_id

        def generate_trace_id(self) -> int:
            trace_id = self._rng.getrandbits(128)
            while trace_id == trace.INVALID_TRACE_ID:
                trace_id = self._rng.getrandbits(128)
            return trace_id

        def is_trace_id_random(self) -> bool:
            return True

    generator = PrivateRandomIdGenerator()
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=generator.reseed)
    return generator


#: every Tracing alive, for the fork handler
_LIVE: weakref.WeakSet[Tracing] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """The deferred spans that ended before ``fork()`` are the parent's to make (as its kept calls are)."""
    for tracing in list(_LIVE):
        tracing.ended.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


#: the span processors (one per tracer provider) whose spans were deferred: :func:`_hook_exit` ran after each
_EXIT_HOOKED: weakref.WeakSet[Any] = weakref.WeakSet()


def _hook_exit() -> None:
    """(Re-)register :func:`_end_at_exit` as the last exit handler: it then runs before the exit handler of every
    tracer provider made so far (atexit is LIFO), that of the provider whose spans start being deferred included.
    Once per provider (the SDK registers one of its own per provider), however many runtimes come and go on it."""
    atexit.unregister(_end_at_exit)
    atexit.register(_end_at_exit)


def _end_at_exit() -> None:
    """At exit, before the tracer providers shut down: the SDK spans of the deferred call spans that ended."""
    for tracing in list(_LIVE):
        tracing.end_deferred(lambda exc: _log_error("tracing", exc))


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
