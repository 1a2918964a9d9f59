"""The runtime: where observations meet the core and fan out to the sinks.

hook → observation (:class:`~driftwatch.change.Change` via a :class:`~driftwatch.tracker.Tracker`,
:class:`~driftwatch.observation.Call`, :class:`~driftwatch.observation.OptimizerRun`) → runtime →
ledger first (a change is durable before the hook returns), then metrics, spans, audit log and the
drift engine. A call's signals (refusal, format check, evaluator score, embedding) are derived once,
here, before it fans out (:func:`driftwatch.signals.derive`). Every sink call is wrapped: an exception
inside driftwatch is counted in ``driftwatch_internal_errors_total{stage}``, logged (rate-limited) on the
``driftwatch`` stdlib logger, and never reaches the host agent.

The runtime holds the collaborators and passes them in: the ledger (a
:class:`~driftwatch.ledger.buffered.BufferedLedger`), the metrics sink, tracing, the audit log, the drift
engine (given the ledger, the metrics sink, :meth:`Runtime.record_alarm` and :meth:`Runtime.error`), the
trackers (given the runtime as their :class:`~driftwatch.tracker.TrackerHost`) and the per-agent options
(:meth:`Runtime.configure_agent`). Nothing in the core or the sinks imports this module.

One process-wide runtime is created lazily from ``DRIFTWATCH_*`` variables; :func:`configure`
replaces it (carrying the agent options over), and :mod:`driftwatch.testing` swaps in an isolated one.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from driftwatch.alarm import Alarm
from driftwatch.audit import AuditLog
from driftwatch.change import Change, new_id
from driftwatch.config import ConfigError, Settings
from driftwatch.exposition import start_http_server as _serve
from driftwatch.ledger import Ledger, LedgerError, scrub
from driftwatch.ledger.buffered import BufferedLedger
from driftwatch.metrics import Metrics
from driftwatch.observation import Call, OptimizerRun
from driftwatch.options import DEFAULT_OPTIONS, AgentOptions, agent_options
from driftwatch.redaction import resolve
from driftwatch.revision import combine, unified_diff
from driftwatch.signals import derive
from driftwatch.tracing import Tracing, current_ids, set_default_error_handler
from driftwatch.tracker import Tracker
from driftwatch.windows import WindowAggregator

__all__ = [
    "COUNT_ONLY_STAGES",
    "CallScope",
    "Runtime",
    "configure",
    "configure_agent",
    "current_runtime",
    "get_runtime",
    "report_error",
    "set_runtime",
    "start_http_server",
    "suppressed",
]

log = logging.getLogger("driftwatch")

#: stages counted in ``driftwatch_internal_errors_total`` but not logged: ``ledger_wait`` (a host call went on
#: without waiting longer for the ledger; the write is kept, nothing failed)
COUNT_ONLY_STAGES = frozenset({"ledger_wait"})

#: set while driftwatch itself acts on a watched object (restore, replay): hooks stand aside
_SUPPRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("driftwatch_suppress", default=False)


@contextmanager
def suppressed() -> Iterator[None]:
    """Within this block, driftwatch's hooks observe nothing (used when driftwatch edits a program)."""
    token = _SUPPRESS.set(True)
    try:
        yield
    finally:
        _SUPPRESS.reset(token)


def is_suppressed() -> bool:
    return _SUPPRESS.get()


class CallScope:
    """One watched call in progress: its start time and span. Made by :meth:`Runtime.begin_call`."""

    __slots__ = ("agent", "runtime", "span", "t0", "token")

    def __init__(self, runtime: Runtime, agent: str, attach: bool = True) -> None:
        self.runtime = runtime
        self.agent = agent
        self.span: Any = None
        self.token: Any = None
        tracing = runtime.tracing
        if tracing is not None:
            try:
                self.span, self.token = tracing.start_call(agent, runtime.agent_version(agent), attach=attach)
            except Exception as exc:  # noqa: BLE001  # never break the host: counted below
                runtime.error("tracing", exc)
        self.t0 = time.perf_counter()

    def enter(self) -> Any:
        """Re-activate the call's span (a generator resuming); returns a token for :meth:`exit`."""
        if self.token is None:
            return None
        try:
            return Tracing.enter(self.span)
        except Exception as exc:  # noqa: BLE001  # never break the host
            self.runtime.error("tracing", exc)
            return None

    def exit(self, token: Any) -> None:
        if token is not None:
            try:
                Tracing.exit(token)
            except Exception as exc:  # noqa: BLE001  # never break the host
                self.runtime.error("tracing", exc)

    def finish(self, *, error: BaseException | None = None, output_chars: int | None = None,
               output_text: str | None = None, input_tokens: int | None = None,
               output_tokens: int | None = None, tools: tuple[str, ...] = (), record: bool = True,
               factory: str | None = None, attributes: dict[str, Any] | None = None) -> None:
        """End the span and record the call (``record=False``: end the span only)."""
        duration = time.perf_counter() - self.t0
        rt = self.runtime
        trace_id = span_id = None
        span = self.span
        if span is not None:
            try:
                if self.token is not None:
                    Tracing.exit(self.token)
                    self.token = None
                # exemplars (the call's trace id on its metrics) only for recording spans, rate-limited:
                # Prometheus keeps one exemplar per series per scrape anyway
                if record and rt.metrics is not None and span.is_recording() \
                        and rt.metrics.exemplar_due(self.agent, error is not None):
                    ctx = span.get_span_context()
                    if ctx.is_valid:
                        trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
                Tracing.end_call(span, error=error, output_chars=output_chars, input_tokens=input_tokens,
                                 output_tokens=output_tokens, factory=factory)
            except Exception as exc:  # noqa: BLE001  # never break the host
                rt.error("tracing", exc)
        if not record:
            return
        rt.record_call(Call(
            agent=self.agent, duration_s=duration, error=error is not None,
            error_type=type(error).__qualname__ if error is not None else None, output_chars=output_chars,
            output_text=output_text, input_tokens=input_tokens, output_tokens=output_tokens, tools=tools,
            trace_id=trace_id, span_id=span_id, timestamp=time.time(), attributes=attributes or {},
        ))


class Runtime:
    """Holds the settings, the ledger, the sinks, the drift engine, the trackers and the agent options of one
    process (or one test).

    ``ledger``: a :class:`~driftwatch.ledger.Ledger` to use instead of opening ``settings.ledger``;
    ``agent_options``: options already registered (``configure()`` carries the previous runtime's over).
    """

    def __init__(self, settings: Settings | None = None, *, ledger: Ledger | None = None,
                 agent_options: Mapping[str, AgentOptions] | None = None) -> None:
        self.settings = settings = settings or Settings()
        self.enabled = settings.enabled
        self._lock = threading.RLock()
        self._errors_logged: dict[str, float] = {}
        self.error_counts: dict[str, int] = {}
        redact = resolve(settings.redact)
        self.redact = redact
        self.metrics: Metrics | None = Metrics.for_registry(settings.registry) if settings.metrics else None
        self.tracing: Tracing | None = (
            Tracing(settings.tracer_provider, capture_content=settings.capture_content, redact=redact)
            if settings.tracing else None)
        self.audit: AuditLog | None = (
            AuditLog(logger=settings.audit_logger, path=settings.audit_log,
                     capture_content=settings.capture_content, redact=redact, file_mode=settings.file_mode)
            if settings.audit else None)
        #: the ledger: opened on first use by its writer thread; a host call waits at most ``ledger_wait_s`` for
        #: it, and writes are kept (bounded, in order) while it is slow or unavailable
        self.ledger = BufferedLedger(ledger if ledger is not None else settings.ledger, on_error=self.error,
                                     wait_s=settings.ledger_wait_s, max_pending=settings.ledger_queue,
                                     drain_s=settings.ledger_drain_s, file_mode=settings.file_mode)
        #: the drift engine (``driftwatch.drift``); fed every call, score and change
        self.drift: Any = None
        #: per-agent call aggregates written to the ledger for reports (``driftwatch.windows``)
        self.windows = WindowAggregator(self.ledger.record_window)
        self._options: dict[str, AgentOptions] = dict(agent_options or {})
        self._trackers: dict[tuple[str, str], Tracker] = {}
        self._revisions: dict[str, dict[str, str]] = {}
        self._versions: dict[str, str] = {}
        self.http_server: Any = None
        if settings.drift:
            try:
                from driftwatch.drift.engine import DriftEngine

                self.drift = DriftEngine(
                    reference_calls=settings.drift_reference_calls, false_alarm_rate=settings.drift_false_alarm_rate,
                    replicas=settings.drift_replicas, poll_s=settings.drift_poll_s, sink=self.metrics,
                    on_alarm=self.record_alarm, on_error=self.error, ledger=self.ledger.available)
            except Exception as exc:  # noqa: BLE001  # the agent runs on without drift detection
                self.error("drift", exc)
        if settings.metrics_port is not None and settings.metrics:
            try:
                self.start_http_server(settings.metrics_port, settings.metrics_addr)
            except Exception as exc:  # noqa: BLE001  # a busy port must not stop the agent
                self.error("http_server", exc)

    # -- errors -----------------------------------------------------------------------------------
    def error(self, stage: str, exc: BaseException, *, log_it: bool = True) -> None:
        """Count and log (at most once a minute per stage; never with ``log_it=False``) an error inside driftwatch."""
        try:
            self.error_counts[stage] = self.error_counts.get(stage, 0) + 1
            if self.metrics is not None:
                self.metrics.internal_error(stage)
            now = time.monotonic()
            if log_it and stage not in COUNT_ONLY_STAGES \
                    and now - self._errors_logged.get(stage, float("-inf")) >= 60.0:
                self._errors_logged[stage] = now
                log.warning("driftwatch %s error (the host call is unaffected): %s: %s",
                            stage, type(exc).__name__, scrub(str(exc), self.settings.ledger))
        except Exception:  # noqa: BLE001, S110  # the error path itself must never raise into the host
            pass

    # -- agent options ------------------------------------------------------------------------------
    def configure_agent(self, agent: str, **options: Any) -> AgentOptions:
        """Set an agent's options (see :func:`driftwatch.configure_agent`); replaces what it had."""
        opts = agent_options(agent, **options)
        with self._lock:
            self._options[agent] = opts
        return opts

    def agent_options(self, agent: str) -> AgentOptions:
        """The agent's options (the defaults when none were set)."""
        return self._options.get(agent, DEFAULT_OPTIONS)

    def all_agent_options(self) -> dict[str, AgentOptions]:
        """Every agent's options, by agent (a copy)."""
        with self._lock:
            return dict(self._options)

    # -- ledger -------------------------------------------------------------------------------------
    def write(self, op: Callable[[Ledger], None]) -> bool:
        """Write to the ledger within the call's wait, or keep it for the writer (see :meth:`BufferedLedger.write`)."""
        with self.ledger.host_call():
            return self.ledger.write(op)

    @property
    def pending_writes(self) -> int:
        """Ledger writes kept while the ledger was unavailable."""
        return self.ledger.pending

    # the TrackerHost reads: None when unknown or the ledger is unavailable
    def ledger_head(self, agent: str, component: str) -> str | None:
        with self.ledger.host_call():
            return self.ledger.head_or_none(agent, component)

    def ledger_state(self, revision_id: str) -> Any:
        with self.ledger.host_call():
            return self.ledger.state_or_none(revision_id)

    # -- /metrics -----------------------------------------------------------------------------------
    def start_http_server(self, port: int = 9464, addr: str = "127.0.0.1") -> Any:
        """Serve this runtime's registry on ``/metrics`` (see :func:`driftwatch.start_http_server`); the
        server is shut down by :meth:`close`."""
        registry = self.metrics.registry if self.metrics is not None else None
        server = _serve(port, addr, registry=registry)
        self.http_server = server
        return server

    # -- changes ----------------------------------------------------------------------------------
    def tracker(self, agent: str, component: str) -> Tracker:
        key = (agent, component)
        tr = self._trackers.get(key)
        if tr is None:
            with self._lock:
                tr = self._trackers.setdefault(key, Tracker(self, agent, component))
        return tr

    def observe(self, agent: str, component: str, state: Any, **kw: Any) -> Change | None:
        """Report a component's current state (see :meth:`Tracker.observe`)."""
        if not self.enabled or _SUPPRESS.get():
            return None
        with self.ledger.host_call():  # the head read and the change's write share one wait
            return self.tracker(agent, component).observe(state, **kw)

    def note_revision(self, agent: str, component: str, revision_id: str) -> None:
        """Remember a component's current revision (agent version, ``driftwatch_revision_info``)."""
        with self._lock:
            revs = self._revisions.setdefault(agent, {})
            revs[component] = revision_id
            self._versions[agent] = combine(revs)
        if self.metrics is not None:
            try:
                self.metrics.set_revision(agent, component, revision_id)
            except Exception as exc:  # noqa: BLE001  # never break the host
                self.error("metrics", exc)

    def agent_version(self, agent: str) -> str | None:
        """The agent's combined revision id (``gen_ai.agent.version``), once any component was seen."""
        return self._versions.get(agent)

    def emit_change(self, change: Change) -> Change:
        """Fan a detected change (or baseline) out: span, ledger, metrics, audit, drift engine."""
        with self.ledger.host_call():
            return self._emit_change(change)

    def _emit_change(self, change: Change) -> Change:
        span = None
        if self.tracing is not None and not change.is_baseline:
            try:
                span = self.tracing.start_change(change)
                trace_id, span_id = self.tracing.span_ids(span)
                change = _with_ids(change, trace_id, span_id)
            except Exception as exc:  # noqa: BLE001  # never break the host
                self.error("tracing", exc)
        elif change.trace_id is None:
            change = _with_ids(change, *current_ids())
        final = change
        if not change.is_baseline:  # a call window never spans a change
            self._safe("windows", self.windows.flush, change.agent)
        self.ledger.record_change(final)
        self.note_revision(change.agent, change.component, change.after_id)
        diff = None
        if self.settings.capture_content:
            try:
                diff = self.redact(unified_diff(change.before_state, change.after_state,
                                                f"{change.component}@{(change.before_id or 'none')[:12]}",
                                                f"{change.component}@{change.after_id[:12]}"))
            except Exception as exc:  # noqa: BLE001  # the change itself is recorded
                self.error("redaction", exc)
        if not change.is_baseline and self.metrics is not None:
            self._safe("metrics", self.metrics.on_change, change)
        if self.audit is not None:
            self._safe("audit", self.audit.on_change, change, diff)
        if self.drift is not None and not change.is_baseline:
            self._safe("drift", self.drift.on_change, change)
        if span is not None:
            self._safe("tracing", self.tracing.end_change, span, diff)  # type: ignore[union-attr]  # set with span
        return change

    def _safe(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001  # never break the host: counted and logged
            self.error(stage, exc)
            return None

    # -- calls --------------------------------------------------------------------------------------
    def begin_call(self, agent: str, *, attach: bool = True) -> CallScope | None:
        """Start a watched call (``None`` when driftwatch is off or suppressed).

        ``attach=False``: the call's span is not made current here; the hook makes it current (with
        :meth:`CallScope.enter`) where the agent runs.
        """
        if not self.enabled or _SUPPRESS.get():
            return None
        try:
            return CallScope(self, agent, attach)
        except Exception as exc:  # noqa: BLE001  # never break the host
            self.error("call", exc)
            return None

    def record_call(self, call: Call) -> None:
        """Derive the call's signals, then fan it out: metrics, call windows, drift engine."""
        with self.ledger.host_call():  # a window written, commands polled, an alarm stored: one wait in all
            self._record_call(call)

    def _record_call(self, call: Call) -> None:
        # the per-call hot path: each step guarded inline (through _safe it costs ~1 µs more per call)
        if call.output_text is not None:
            try:
                derive(call, self._options.get(call.agent, DEFAULT_OPTIONS), self.error,
                       evaluate=self.drift is not None)  # evaluator and embedding: only drift reads them
            except Exception as exc:  # noqa: BLE001  # never break the host
                self.error("signals", exc)
        if self.metrics is not None:
            try:
                self.metrics.on_call(call)
            except Exception as exc:  # noqa: BLE001  # never break the host
                self.error("metrics", exc)
        try:
            self.windows.on_call(call)
        except Exception as exc:  # noqa: BLE001  # never break the host
            self.error("windows", exc)
        if self.drift is not None:
            try:
                self.drift.on_call(call)
            except Exception as exc:  # noqa: BLE001  # never break the host
                self.error("drift", exc)

    def record_score(self, agent: str, value: float, metric: str = "score") -> None:
        if not self.enabled:
            return
        if self.metrics is not None:
            self._safe("metrics", self.metrics.on_score, agent, metric, value)
        self._safe("windows", self.windows.on_score, agent, metric, value)
        if self.drift is not None and metric == self.agent_options(agent).score_metric:
            with self.ledger.host_call():  # an alarm it raises is stored
                self._safe("drift", self.drift.on_score, agent, value)

    def record_signals(self, agent: str, *, refused: bool | None, format_ok: bool | None) -> None:
        """Count signals a hook derived on its own for the agent's latest call: metrics and call windows (the
        usual way is :meth:`configure_agent`, whose checks run on every call with an answer text)."""
        if self.metrics is not None:  # per call too: guarded inline like record_call
            try:
                self.metrics.on_signals(agent, refused=refused, format_ok=format_ok)
            except Exception as exc:  # noqa: BLE001  # never break the host
                self.error("metrics", exc)
        try:
            self.windows.on_signals(agent, refused=refused, format_ok=format_ok)
        except Exception as exc:  # noqa: BLE001  # never break the host
            self.error("windows", exc)

    # -- optimizer runs -----------------------------------------------------------------------------
    def start_run(self, agent: str, optimizer: str, **attributes: Any) -> OptimizerRun:
        trace_id, _ = current_ids()
        run = OptimizerRun(id=new_id(), agent=agent, optimizer=optimizer, started_at=time.time(),
                           trace_id=trace_id, attributes=attributes)
        with self.ledger.host_call():
            self.ledger.record_run(run)
        return run

    def record_candidate(self, run: OptimizerRun, score: float | None, revision_id: str | None = None,
                         **attributes: Any) -> None:
        index = run.candidates
        run.candidates += 1
        if score is not None and (run.best_score is None or score > run.best_score):
            run.best_score = score
        with self.ledger.host_call():
            self.ledger.record_candidate(run.id, index, score, revision_id, attributes)

    def end_run(self, run: OptimizerRun, *, error: BaseException | None = None) -> None:
        run.ended_at = time.time()
        run.outcome = "failed" if error is not None else "ok"
        run.error_type = type(error).__qualname__ if error is not None else None
        snapshot = replace(run, attributes=dict(run.attributes))
        with self.ledger.host_call():
            self.ledger.record_run(snapshot)
        if self.metrics is not None:
            self._safe("metrics", self.metrics.on_run, snapshot)
        if self.audit is not None:
            self._safe("audit", self.audit.on_run, snapshot)

    # -- alarms -------------------------------------------------------------------------------------
    def record_alarm(self, alarm: Alarm, anchor: Change | None = None) -> Alarm:
        """Store and export a drift alarm (called by the drift engine)."""
        if self.tracing is not None:
            ids = self._safe("tracing", self.tracing.on_alarm, alarm, anchor)
            if ids and ids[0]:
                alarm = Alarm(alarm.id, alarm.agent, alarm.signal, alarm.score, alarm.timestamp,
                              alarm.anchor_change_id, alarm.calls_since_anchor, ids[0], ids[1], alarm.attributes)
        with self.ledger.host_call():
            self.ledger.record_alarm(alarm)
        if self.audit is not None:
            self._safe("audit", self.audit.on_alarm, alarm)
        return alarm

    def close(self, timeout: float | None = None) -> int:
        """Close: open call windows are handed to the ledger, kept writes get one more try and up to ``timeout``
        seconds (default ``ledger_drain_s``), then the ledger is closed. Returns how many kept writes are still
        not written: the writer keeps trying while the process lives (:func:`configure` closes the previous
        runtime with ``timeout=0``; at exit, those left are lost and logged)."""
        self._safe("windows", self.windows.flush)
        left = self._safe("ledger", self.ledger.close, timeout) or 0
        if self.audit is not None:
            self._safe("audit", self.audit.close)
        if self.http_server is not None:
            self._safe("http_server", self.http_server.shutdown)
            self._safe("http_server", self.http_server.server_close)
        return int(left)


def _with_ids(change: Change, trace_id: str | None, span_id: str | None) -> Change:
    return replace(change, trace_id=trace_id, span_id=span_id)


# -- the process-wide runtime ----------------------------------------------------------------------

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


#: runtimes replaced by configure() whose ledgers still had kept writes: drained (or reported) at exit
_draining: list[Runtime] = []


def _drain_at_exit() -> None:
    """At interpreter exit: the process runtime's open call windows (the last calls of each agent) go to the
    ledger, and every runtime's kept writes get up to ``ledger_drain_s``; how many are lost is logged."""
    for rt in {id(r): r for r in (_runtime, *_draining) if r is not None}.values():
        try:
            lost = rt.close()
        except Exception as exc:  # noqa: BLE001  # exit must go on
            lost = -1
            log.warning("driftwatch: closing the ledger at exit failed: %s: %s", type(exc).__name__,
                        scrub(str(exc), rt.settings.ledger))
        if lost > 0:
            message = (f"{lost} ledger writes kept while the ledger {rt.ledger.location} was slow or unavailable were "
                       f"not written within {rt.settings.ledger_drain_s:g} s of exit and are lost "
                       "(DRIFTWATCH_LEDGER_DRAIN_S sets the wait)")
            rt.error("ledger", LedgerError(message), log_it=False)
            log.warning("driftwatch: %s", message)  # always, whatever was logged in the last minute


atexit.register(_drain_at_exit)


def get_runtime() -> Runtime:
    """The process-wide runtime, created from ``DRIFTWATCH_*`` variables on first use.

    A bad variable does not break the host: it is logged once, counted (stage ``config``), and the
    defaults are used. :func:`configure` and the CLI raise it instead.
    """
    rt = _runtime
    if rt is not None:
        return rt
    return _default_runtime()


def current_runtime() -> Runtime | None:
    """The process-wide runtime if one exists (unlike :func:`get_runtime`, never creates it)."""
    return _runtime


def _default_runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            try:
                settings = Settings.from_env()
                problem = None
            except ConfigError as exc:
                settings, problem = Settings(), exc
            _runtime = Runtime(settings)
            if problem is not None:
                _runtime.error("config", problem)
        return _runtime


def set_runtime(runtime: Runtime | None) -> Runtime | None:
    """Install a runtime (``None``: recreate from the environment on next use); returns the old one."""
    global _runtime
    with _runtime_lock:
        old, _runtime = _runtime, runtime
    return old


def configure(**settings: Any) -> Runtime:
    """Configure driftwatch for this process; ``ConfigError`` names a bad setting or variable.

    Settings not given keep their ``DRIFTWATCH_*`` value or default. Agent options registered before
    (:func:`configure_agent`) carry over to the new runtime. The previous runtime's ledger is closed. See
    :class:`~driftwatch.config.Settings` for the list.
    """
    resolved = Settings.from_env(**settings)
    previous = current_runtime()
    new = Runtime(resolved, agent_options=previous.all_agent_options() if previous is not None else None)
    if new.enabled:
        new.ledger.start()  # opened in the background now, not on the first call
    old = set_runtime(new)
    if old is not None and old.close(timeout=0):  # its kept writes go on in the background: never wait here
        _draining.append(old)
    return new


def configure_agent(agent: str, **options: Any) -> AgentOptions:
    """Declare how an agent's answers are checked: the one way to set per-agent options.

    ``format``: ``"json"``, a JSON schema (needs ``jsonschema``), or a callable(text) that returns ``False``
    or raises on a malformed answer (``driftwatch_format_failures_total``, the ``format_failure`` signal).
    ``refusal``: a classifier(text) -> bool, used in addition to the built-in phrase set
    (``refusal_phrases=False`` turns the phrases off; ``driftwatch_refusals_total``, ``refusal``).
    ``evaluator``: text -> score, per call (the ``score`` drift signal, like ``record_score``).
    ``embed``: text -> vector (the ``embedding`` signal; needs numpy). ``score_metric``: which
    ``record_score`` metric feeds the ``score`` signal (default ``"score"``).

    Calling again replaces the agent's options. They live in the process's runtime and carry over to the one
    :func:`configure` makes (and into :func:`driftwatch.testing.capture`). The callables run inside the
    agent's call, on every call with an answer text (evaluator and embed only while the drift engine is on):
    keep them fast. Their exceptions are counted (``driftwatch_internal_errors_total{stage="signals"}``) and
    the value is treated as unknown. A bad option raises ``ValueError`` naming it.
    """
    return get_runtime().configure_agent(agent, **options)


def start_http_server(port: int = 9464, addr: str = "127.0.0.1", *, runtime: Runtime | None = None) -> Any:
    """Serve ``/metrics`` of this process's runtime (or ``runtime``) from a daemon thread; returns the server
    (``.shutdown()`` then ``.server_close()``).

    Binds to ``127.0.0.1`` by default: pass ``addr="0.0.0.0"`` to expose it beyond the host.
    ``port=0`` picks a free port (read it from ``server.server_port``). In prometheus_client
    multiprocess mode it serves the aggregate of every process.
    """
    return (runtime or get_runtime()).start_http_server(port, addr)


def report_error(stage: str, exc: BaseException) -> None:
    """Count an error inside driftwatch in the process's current runtime (an ``on_error`` callback for
    collaborators made outside driftwatch, such as :class:`~driftwatch.tracing.CountingExporter`)."""
    get_runtime().error(stage, exc)


set_default_error_handler(report_error)
