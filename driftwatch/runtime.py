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
engine (given the metrics sink, :meth:`Runtime.record_alarm` and :meth:`Runtime.error`), the guard (a
:class:`~driftwatch.guardrails.engine.Guard`, given the runtime as its
:class:`~driftwatch.guardrails.engine.GuardHost`: it decides on every change before it is recorded, and polls
the ledger's command queue for itself and the drift engine), the trackers (given the runtime as their
:class:`~driftwatch.tracker.TrackerHost`) and the per-agent options (:meth:`Runtime.configure_agent`).
Nothing in the core or the sinks imports this module.

Names a model or a caller controls are bounded (:class:`~driftwatch.limits.NameTable`): past
``max_agents`` agents (and ``max_components`` / ``max_tools`` / ``max_score_metrics`` per agent) a name is
counted as ``other`` in the metrics (``driftwatch_dropped_total{what}``) and gets no per-agent state; an agent
idle for ``agent_idle_s`` gives its place to a new one when the table is full (its drift state, trackers, call
window, caches and series are evicted). A folded agent's or component's changes are still recorded in the
ledger (and spans, audit log) under their own names.

One process-wide runtime is created lazily from ``DRIFTWATCH_*`` variables; :func:`configure`
replaces it (carrying the agent options and any ``/metrics`` server over), and :mod:`driftwatch.testing`
swaps in an isolated one.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from driftwatch.alarm import Alarm
from driftwatch.audit import AuditLog
from driftwatch.call_batch import CallBatch
from driftwatch.change import Change
from driftwatch.config import ConfigError, Settings
from driftwatch.exposition import SCRAPE_CHECK_S, follow, yield_to_scrapes
from driftwatch.exposition import start_http_server as _serve
from driftwatch.guard_host import GuardHostMixin
from driftwatch.guardrails.engine import ALLOW, Decision, Guard
from driftwatch.ledger import Ledger, LedgerError, scrub
from driftwatch.ledger.buffered import BufferedLedger, LedgerTimeoutError
from driftwatch.limits import MAX_LABEL_VALUES, OTHER, AgentNames, NameTable, clean_name
from driftwatch.metrics import Metrics
from driftwatch.observation import Call
from driftwatch.options import DEFAULT_OPTIONS, AgentOptions, agent_options
from driftwatch.redaction import resolve
from driftwatch.revision import CombinedRevision, Diff, head, unified_diff
from driftwatch.scopes import CallScope, RunScope, is_suppressed, suppressed
from driftwatch.signals import derive
from driftwatch.tracing import Tracing, current_ids, set_default_error_handler
from driftwatch.tracker import Tracker
from driftwatch.windows import WindowAggregator

__all__ = [
    "COUNT_ONLY_STAGES",
    "CallScope",
    "RunScope",
    "Runtime",
    "configure",
    "configure_agent",
    "current_runtime",
    "get_runtime",
    "is_suppressed",
    "report_error",
    "set_runtime",
    "start_http_server",
    "suppressed",
]

log = logging.getLogger("driftwatch")

#: stages counted in ``driftwatch_internal_errors_total`` but not logged: ``ledger_wait`` (a host call went on
#: without waiting longer for the ledger; the write is kept, nothing failed)
COUNT_ONLY_STAGES = frozenset({"ledger_wait"})

class Runtime(GuardHostMixin):
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
        self._error_counts: dict[str, int] = {}
        self.redact = redact = self._guarded(resolve(settings.redact))
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
        self._host_call = self.ledger.host_call()  # the ledger work of one call into driftwatch shares one wait
        #: calls kept for their batch (:meth:`record_call`, :meth:`flush_calls`)
        #: (none in prometheus_client's multiprocess mode: a scrape there, in another process, cannot flush them)
        self._calls = (CallBatch(self._record_calls, size=settings.call_batch, max_age_s=settings.call_batch_s)
                       if settings.call_batch > 1 and settings.call_batch_s > 0
                       and not (self.metrics is not None and self.metrics.multiprocess) else None)
        if self.metrics is not None and self._calls is not None:
            self.metrics.before_collect(self.flush_calls)  # a scrape sees every call made before it
        #: the drift engine (``driftwatch.drift``); fed every call, score and change
        self.drift: Any = None
        #: per-agent call aggregates written to the ledger for reports (``driftwatch.windows``)
        self._windows = WindowAggregator(self.ledger.record_window)
        self._options: dict[str, AgentOptions] = dict(agent_options or {})
        #: the agents with their own state and series, and the names each may use (the limits)
        self.names = NameTable(max_agents=settings.max_agents, max_components=settings.max_components,
                               max_tools=settings.max_tools, max_metrics=settings.max_score_metrics,
                               idle_s=settings.agent_idle_s, on_fold=self._folded, evictable=self._evictable,
                               on_evict=self._evict)
        self._folds_logged: set[str] = set()
        self._evict_listeners: list[Callable[[str], None]] = []  # integrations' per-agent state (PerRuntime)
        self._trackers: dict[str, dict[str, Tracker]] = {}  # admitted agent -> component -> tracker
        # evicted agents' trackers that a live hook still holds (a watched program): back on the agent's return
        self._dormant: dict[str, weakref.WeakValueDictionary[str, Tracker]] = {}
        self._revisions: dict[str, CombinedRevision] = {}  # admitted agent -> its components' revisions
        #: the version each agent's calls carry (its revisions' combined id as of its first call or last change)
        self._versions: dict[str, str] = {}
        #: the same, read-only: what :meth:`agent_version` reads, for hooks that read it on every call
        self.versions: Mapping[str, str] = MappingProxyType(self._versions)
        #: agents that finished a call: from then on their version moves only with a change
        self._served: set[str] = set()
        #: the ``/metrics`` servers serving this runtime's registry (handed on by :func:`configure`)
        self.http_servers: list[Any] = []
        self._scrapes_due = float("inf")  # time.monotonic() a call next looks for a scrape (never: no server)
        #: the guard: decides on every change, holds the guard state this process read, polls the command queue
        #: (its own commands, the drift engine's accept/reset and fleet evidence) every ``drift_poll_s`` on the call
        #: path
        self.guard = Guard(self, poll_s=settings.drift_poll_s)
        self._origin = f"{socket.gethostname()}:{os.getpid()}"
        if settings.drift:
            try:
                from driftwatch.drift.engine import DriftEngine

                self.drift = DriftEngine(
                    reference_calls=settings.drift_reference_calls, false_alarm_rate=settings.drift_false_alarm_rate,
                    replicas=settings.drift_replicas, poll_s=0.0, sink=self.metrics,  # the guard polls for it
                    on_alarm=self.record_alarm, on_error=self.error, ledger=self.ledger.available,
                    pool=settings.drift_pool, on_confirm=self._confirmed)
            except Exception as exc:  # noqa: BLE001  # the agent runs on without drift detection
                self.error("drift", exc)
        if settings.metrics_port is not None and settings.metrics:
            try:
                self.start_http_server(settings.metrics_port, settings.metrics_addr)
            except Exception as exc:  # noqa: BLE001  # a busy port must not stop the agent
                self.error("http_server", exc)

    @property
    def windows(self) -> WindowAggregator:
        """The per-agent call windows, every call made before this read in them (a reader's way in: the runtime
        itself uses ``_windows``)."""
        self.flush_calls()
        return self._windows

    @windows.setter
    def windows(self, windows: WindowAggregator) -> None:
        self.flush_calls()
        self._windows = windows

    @property
    def error_counts(self) -> dict[str, int]:
        """Errors inside driftwatch by stage (as ``driftwatch_internal_errors_total``), those of every call made
        before this read included."""
        self.flush_calls()
        return self._error_counts

    # -- errors -----------------------------------------------------------------------------------
    def error(self, stage: str, exc: BaseException, *, log_it: bool = True) -> None:
        """Count and log (at most once a minute per stage; never with ``log_it=False``) an error inside driftwatch.
        A :class:`~driftwatch.ledger.buffered.LedgerTimeoutError` (a bounded read gave up: the guard's or the drift
        engine's poll) reported under another stage was counted by the ledger already (stage ``ledger_wait``,
        count-only)."""
        if isinstance(exc, LedgerTimeoutError) and stage != "ledger_wait":
            return
        try:
            counts = self._error_counts
            counts[stage] = counts.get(stage, 0) + 1
            if self.metrics is not None:
                self.metrics.internal_error(stage)
            now = time.monotonic()
            if log_it and stage not in COUNT_ONLY_STAGES \
                    and now - self._errors_logged.get(stage, float("-inf")) >= 60.0:
                self._errors_logged[stage] = now
                log.warning("driftwatch %s error (caught: the agent's call returns its own result; counted in "
                            "driftwatch_internal_errors_total, logged at most once a minute): %s: %s",
                            stage, type(exc).__name__, scrub(str(exc), self.settings.ledger))
        except Exception:  # noqa: BLE001, S110  # the error path itself must never raise into the host
            pass

    def _guarded(self, redact: Callable[[str], str]) -> Callable[[str], str]:
        """The redaction hook as every sink calls it: a hook that raises or returns something other than a string
        is counted (stage ``redaction``) and the text is replaced by a placeholder, never sent unredacted."""
        def guarded(text: str) -> str:
            try:
                out = redact(text)
            except Exception as exc:  # noqa: BLE001  # the text does not leave the process unredacted
                self.error("redaction", exc)
                return f"[not shown: the redaction hook raised {type(exc).__name__}]"
            if isinstance(out, str):
                return out
            self.error("redaction", TypeError(f"the redaction hook returned {type(out).__name__}, not str"))
            return f"[not shown: the redaction hook returned {type(out).__name__}]"
        return guarded

    # -- names and their limits ----------------------------------------------------------------------
    def agent_names(self, agent: str, *, count: bool = True) -> AgentNames | None:
        """The admitted agent (admitted now if there is room), or ``None`` when it is counted as ``other``
        (``count``: in ``driftwatch_dropped_total``; an operation counts its fold once)."""
        entry = self.names.get(agent)
        if entry is not None:
            return entry
        with self._lock:
            entry, new = self.names.admit(agent, count=count)
            if new:
                self._restore(entry)  # type: ignore[arg-type]  # new implies an entry
        return entry

    def _folded(self, what: str, name: str) -> None:
        """A name past a limit was counted as ``other`` (or a name was made safe): count it, log the first."""
        if self.metrics is not None:
            self.safe("metrics", self.metrics.dropped, what)
        if what in self._folds_logged:
            return
        self._folds_logged.add(what)
        s = self.settings
        limit = {"agent": f"{s.max_agents} agents (DRIFTWATCH_MAX_AGENTS), none idle for {s.agent_idle_s:g} s "
                          "(DRIFTWATCH_AGENT_IDLE_S)",
                 "component": f"{s.max_components} components of one agent (DRIFTWATCH_MAX_COMPONENTS)",
                 "tool": f"{s.max_tools} tool names of one agent (DRIFTWATCH_MAX_TOOLS)",
                 "metric": f"{s.max_score_metrics} score metrics of one agent (DRIFTWATCH_MAX_SCORE_METRICS)",
                 "source": f"{MAX_LABEL_VALUES} change sources in one process"}.get(what)
        if limit is None:
            log.warning("driftwatch: the name %r was made safe to store and export (lone surrogates escaped, or cut "
                        "to %d characters with a hash); later ones are counted in driftwatch_dropped_total"
                        "{what=\"name\"}", name[:80], len(name))
        else:
            log.warning("driftwatch: more than %s: %s %r and later new ones are counted as %s=\"other\" in the "
                        "metrics and get no state of their own (their changes are still recorded in the ledger); "
                        "counted in driftwatch_dropped_total{what=\"%s\"}, logged once", limit, what, name[:80],
                        what, what)

    def _evictable(self, agent: str) -> bool:
        """An agent may give its place unless a drift alarm of it is latched (its gauge must stay up)."""
        drift = self.drift
        return drift is None or not drift.has_alarm(agent)

    def _evict(self, agent: str) -> None:
        """Drop an idle agent's state (under the lock): drift monitors, call window, trackers, revisions, metric
        caches and series. Trackers a hook still holds wait (weakly) for the agent's return."""
        if self.drift is not None:
            self.safe("drift", self.drift.forget, agent)
        self.safe("windows", self._windows.flush, agent)
        self._revisions.pop(agent, None)
        self._versions.pop(agent, None)
        self._served.discard(agent)
        trackers = self._trackers.pop(agent, None)
        if trackers:
            held: weakref.WeakValueDictionary[str, Tracker] = weakref.WeakValueDictionary(trackers)
            del trackers  # the trackers only the runtime held go now
            if len(held):
                self._dormant[agent] = held
        for name in [name for name, held in self._dormant.items() if not len(held)]:
            del self._dormant[name]
        if self.metrics is not None:
            self.safe("metrics", self.metrics.forget_agent, agent)
        for listener in self._evict_listeners:
            self.safe("limits", listener, agent)
        self.safe("limits", self._reconcile)

    def on_evict(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(agent)`` (under the runtime's lock: it must not take a lock a call path holds while
        it takes the runtime's) when an idle agent is evicted, so state kept elsewhere for it goes too."""
        self._evict_listeners.append(listener)

    def _reconcile(self) -> None:
        """Drop what a call racing with an eviction re-created for an agent that is no longer admitted (the call
        path takes no lock): its drift state, call window, metric caches and series."""
        admitted = set(self.names.names())
        admitted.add(OTHER)
        if self.drift is not None:
            for name in self.drift.agents():
                if name not in admitted and not self.drift.has_alarm(name):
                    self.drift.forget(name)
        for name in self._windows.agents():
            if name not in admitted:
                self._windows.flush(name)
        if self.metrics is not None:
            for name in self.metrics.agents():
                if name not in admitted:
                    self.metrics.forget_agent(name)

    def _restore(self, entry: AgentNames) -> None:
        """An agent admitted again: the trackers a hook kept meanwhile come back, with their revisions."""
        held = self._dormant.pop(entry.name, None)
        if not held:
            return
        for component, tr in list(held.items()):
            if self.names.component(entry, component):
                self._trackers.setdefault(entry.name, {})[component] = tr
                if tr.revision_id is not None:
                    self.note_revision(entry.name, component, tr.revision_id)

    # -- agent options ------------------------------------------------------------------------------
    def configure_agent(self, agent: str, **options: Any) -> AgentOptions:
        """Set an agent's options (see :func:`driftwatch.configure_agent`); replaces what it had."""
        opts = agent_options(agent, **options)
        with self._lock:
            self._options[agent] = opts
        if self.guard.loaded:  # published at the first poll otherwise
            self.safe("guard", self._publish_policy, agent)
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
        with self._host_call:
            return self.ledger.write(op)

    @property
    def pending_writes(self) -> int:
        """Ledger writes kept while the ledger was unavailable."""
        return self.ledger.pending

    # the TrackerHost reads: None when unknown or the ledger is unavailable
    def ledger_head(self, agent: str, component: str) -> str | None:
        with self._host_call:
            return self.ledger.head_or_none(agent, component)

    def ledger_state(self, revision_id: str) -> Any:
        with self._host_call:
            return self.ledger.state_or_none(revision_id)

    # -- /metrics -----------------------------------------------------------------------------------
    def start_http_server(self, port: int = 9464, addr: str = "127.0.0.1") -> Any:
        """Serve this runtime's registry on ``/metrics`` (see :func:`driftwatch.start_http_server`); the
        server is shut down by :meth:`close`, unless :func:`configure` hands it on to the next runtime."""
        server = _serve(port, addr, registry=self._registry())
        self.http_servers.append(server)
        self._scrapes_due = 0.0
        return server

    @property
    def http_server(self) -> Any:
        """The last ``/metrics`` server started for (or handed to) this runtime, or ``None``."""
        return self.http_servers[-1] if self.http_servers else None

    def _registry(self) -> Any:
        return self.metrics.registry if self.metrics is not None else None

    def adopt_http_servers(self, servers: list[Any]) -> None:
        """Serve this runtime's registry from ``servers`` (a previous runtime's, handed on by :func:`configure`)."""
        for server in servers:
            follow(server, self._registry())
            self.http_servers.append(server)
            self._scrapes_due = 0.0

    # -- changes ----------------------------------------------------------------------------------
    def tracker(self, agent: str, component: str) -> Tracker:
        """The tracker of an agent's component. Past the agent or component limit it is a new tracker each time,
        held by nobody here: the component is compared with its ledger head (a full fingerprint and a ledger
        read per observation) and its changes are recorded under its own name."""
        per = self._trackers.get(agent)
        tr = per.get(component) if per is not None else None
        if tr is not None:
            return tr
        with self._lock:
            entry = self.agent_names(agent)
            component = clean_name(component)
            if entry is None or not self.names.component(entry, component):
                return Tracker(self, entry.name if entry is not None else clean_name(agent), component)
            per = self._trackers.setdefault(entry.name, {})
            tr = per.get(component)
            if tr is None:
                tr = per[component] = Tracker(self, entry.name, component)
            return tr

    def observe(self, agent: str, component: str, state: Any, **kw: Any) -> Change | None:
        """Report a component's current state (see :meth:`Tracker.observe`); never raises (counted, stage
        ``track``): a state's content is recorded, with stand-ins for what JSON cannot hold."""
        if not self.enabled or is_suppressed():
            return None
        try:
            node = kw.get("node")
            if node is not None:
                kw["node"] = clean_name(node) if isinstance(node, str) else clean_name(str(node))
            with self._host_call:  # the guard's poll, the head read and the change's write share one wait
                guard = self.guard
                if time.monotonic() >= guard.next_poll:
                    self.safe("guard", guard.poll)
                return self.tracker(agent, component).observe(state, **kw)
        except Exception as exc:  # noqa: BLE001  # never break the host
            self.error("track", exc)
            return None

    def note_revision(self, agent: str, component: str, revision_id: str, *, changed: bool = False) -> None:
        """Remember a component's current revision (agent version, ``driftwatch_revision_info``); not for an
        agent or component past its limit.

        ``changed``: a change was recorded (not a baseline). The agent version is the combined revision of the
        agent's components; once the agent has served a call it moves only with a change, so a call site first
        seen later (a node that runs on some requests only) joins it at the next change instead of moving it.
        """
        entry = self.names.get(agent)
        if entry is None or component not in entry.components:
            return
        with self._lock:
            revs = self._revisions.get(agent)
            if revs is None:
                revs = self._revisions[agent] = CombinedRevision()
            revs.set(component, revision_id)
            if changed or agent not in self._served or agent not in self._versions:
                self._versions[agent] = revs.id
        if self.metrics is not None:
            try:
                self.metrics.set_revision(agent, component, revision_id)
            except Exception as exc:  # noqa: BLE001  # never break the host
                self.error("metrics", exc)

    def agent_version(self, agent: str) -> str | None:
        """The agent's version (``gen_ai.agent.version``): the combined revision id of its components as of its
        first call or its last change (see :meth:`note_revision`); ``None`` until a component was seen (kept for
        admitted agents only: see :mod:`driftwatch.limits`)."""
        return self._versions.get(agent)

    def emit_change(self, change: Change) -> Change:
        """Ask the guard about a change, then fan it out: span, ledger, metrics, audit, drift engine.

        A change the guard blocks or holds is recorded with that status (a ledger row, a guard action, a span
        event, an audit event, ``driftwatch_guard_actions_total``) and leaves the component's head, its
        ``driftwatch_changes_total`` and the drift reference where they were; the returned change carries the
        status, and the hook enforces it.
        """
        self.flush_calls()  # the calls made before the change are the reference's, and go in its call window
        with self._host_call:
            return self._emit_change(change)

    def _emit_change(self, change: Change) -> Change:
        decision: Decision = ALLOW
        if not change.is_baseline:
            try:
                decision = self.guard.decide(change)
            except Exception as exc:  # noqa: BLE001  # never break the host: the change is recorded as applied
                self.error("guard", exc)
            if not decision.allowed:
                change = replace(change, status=decision.status,
                                 attributes={**change.attributes, "guard_reason": decision.reason})
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
        entry = self.safe("limits", lambda: self.agent_names(change.agent, count=False))  # counted by tracker()
        in_effect = change.in_effect
        if not change.is_baseline and entry is not None and in_effect:  # a call window never spans a change
            self.safe("windows", self._windows.flush, change.agent)
        self.ledger.record_change(change)
        if in_effect:
            self.note_revision(change.agent, change.component, change.after_id, changed=not change.is_baseline)
        diff = self._diff(change) if self.settings.capture_content else None
        substitutions = change.attributes.get("substitutions")
        if substitutions and self.metrics is not None:
            self.safe("metrics", self.metrics.substituted, substitutions)
        if not change.is_baseline and in_effect and self.metrics is not None:
            counted = change
            if entry is None or change.component not in entry.components:  # past a limit: counted as "other"
                counted = replace(change, agent=change.agent if entry is not None else OTHER, component=OTHER)
            source = self.names.label("source", change.source)
            if source != change.source:
                counted = replace(counted, source=source)
            self.safe("metrics", self.metrics.on_change, counted)
        if self.audit is not None:
            self.safe("audit", self.audit.on_change, change, diff)
        if self.drift is not None and not change.is_baseline and entry is not None and in_effect:
            self.safe("drift", self.drift.on_change, change)
        if not change.is_baseline:
            self.safe("guard", self._noted, change, decision, span)
        if span is not None:
            self.safe("tracing", self.tracing.end_change, span, diff)  # type: ignore[union-attr]  # set with span
        return change

    def _diff(self, change: Change) -> Diff | None:
        """The change's unified diff as it may leave the process: redacted, cut at ``max_diff_chars``."""
        try:
            text = unified_diff(change.before_state, change.after_state,
                                f"{change.component}@{(change.before_id or 'none')[:12]}",
                                f"{change.component}@{change.after_id[:12]}")
            limit = self.settings.max_diff_chars  # cut (at a line end) before redacting: 10 MB would take seconds
            return Diff.cut(self.redact(head(text, limit)), limit, total=len(text))
        except Exception as exc:  # noqa: BLE001  # the change itself is recorded
            self.error("redaction", exc)
            return None

    def safe(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, an exception counted under ``stage`` (and logged) instead of raised: ``None`` then."""
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001  # never break the host: counted and logged
            self.error(stage, exc)
            return None

    # -- calls --------------------------------------------------------------------------------------
    def begin_call(self, agent: str, *, attach: bool = True, version: str | None = None,
                   attributes: Mapping[str, Any] | None = None) -> CallScope | None:
        """Start a watched call (``None`` when driftwatch is off or suppressed).

        ``attach=False``: the call's span is not made current here; the hook makes it current (with
        :meth:`CallScope.enter`) where the agent runs. ``version`` and ``attributes``: see :class:`CallScope`.
        """
        if not self.enabled or is_suppressed():
            return None
        try:
            return CallScope(self, agent, attach, version, attributes)
        except Exception as exc:  # noqa: BLE001  # never break the host
            self.error("call", exc)
            return None

    def record_call(self, call: Call) -> None:
        """Keep the call for its batch (:mod:`driftwatch.call_batch`: processed by :meth:`_record_calls` when
        ``call_batch`` calls are kept or the oldest is ``call_batch_s`` old, and before anything reads the state).
        An agent's first call is processed at once (its version is fixed by it: :meth:`note_revision`).

        Then, while this runtime serves ``/metrics``, at most once per ``SCRAPE_CHECK_S`` (20 ms, on the clock read
        here anyway; one comparison a call otherwise, batches or not), the host's thread lends the interpreter lock
        to a scrape waiting for it (:func:`driftwatch.exposition.yield_to_scrapes`). Here because it is the host's
        thread, once a call, holding none of driftwatch's locks; by time, not by batch, so that the looks keep
        one pace (at most one per 20 ms) with ``call_batch=1`` or batches, with fast calls or slow ones; and after
        the call is kept, so that the scrape counts it."""
        now = time.monotonic()
        if now >= self.guard.next_poll:  # operator commands (guard, accept/reset), every drift_poll_s
            self.flush_calls()
            with self._host_call:  # the poll's reads and writes share one wait
                self.safe("guard", self.guard.poll)
        calls = self._calls
        if calls is not None and (call.agent in self._served or call.agent == OTHER):
            calls.add(call, now)
        else:
            self.flush_calls()  # in order
            self._record_calls([call])
        if now >= self._scrapes_due:  # a scrape starved of the interpreter lock by this thread: let it run
            self._scrapes_due = now + SCRAPE_CHECK_S
            yield_to_scrapes(self.error)

    def flush_calls(self) -> None:
        """Process the calls kept for a batch now, and make the SDK spans of the calls that ended
        (:mod:`driftwatch.deferred_span`): called before anything reads what they feed."""
        if self._calls is not None:
            try:
                self._calls.flush()
            except Exception as exc:  # noqa: BLE001  # never break the host, nor a scrape
                self.error("call", exc)
        self.end_spans()

    def end_spans(self) -> None:
        """Make the SDK spans of the watched calls that ended (their spans deferred: :mod:`driftwatch.deferred_span`);
        done with each batch of calls and before anything reads the state."""
        if self.tracing is not None and self.tracing.ended:
            self.tracing.end_deferred(self._span_error)

    def _span_error(self, exc: BaseException) -> None:
        self.error("tracing", exc)

    def _record_calls(self, calls: list[Call]) -> None:
        """Derive each call's signals, then hand each run of one agent's calls to the sinks at once: metrics, call
        windows, drift engine (an agent past the agent limit is counted as ``other``, without drift detection;
        tools past the tool limit as ``other``). Each sink counts a failing call under its stage and goes on."""
        metrics, windows, drift, names, error = self.metrics, self._windows, self.drift, self.names, self.error
        self.end_spans()  # the calls' spans, made now (deferred_span)
        evaluate = drift is not None  # evaluator and embedding: only drift reads them
        i, n = 0, len(calls)
        while i < n:
            agent = calls[i].agent
            j = i + 1
            while j < n and calls[j].agent == agent:
                j += 1
            run = calls if j - i == n else calls[i:j]
            i = j
            try:
                entry = names.get(agent)
                if entry is None and agent != OTHER:  # OTHER: a CallScope already counted the fold
                    entry = self.safe("limits", self.agent_names, agent)
                if entry is not None and agent not in self._served:  # its version moves only with a change
                    self._served.add(agent)
                opts = self._options.get(agent if entry is not None else OTHER, DEFAULT_OPTIONS)
            except Exception as exc:  # noqa: BLE001  # never break the host (nor the batch's other calls)
                error("limits", exc)
                entry, opts = None, DEFAULT_OPTIONS
            for call in run:
                if entry is None:
                    call.agent = OTHER
                if call.tools:
                    try:
                        call.tools = names.tools(entry, call.tools)
                    except Exception as exc:  # noqa: BLE001  # never break the host
                        error("limits", exc)
                        call.tools = ()
                if call.output_text is not None:  # each step guarded inline (through safe: ~1 µs more per call)
                    try:
                        derive(call, opts, error, evaluate=evaluate)
                    except Exception as exc:  # noqa: BLE001  # never break the host
                        error("signals", exc)
            if metrics is not None:
                try:
                    metrics.on_calls(run, error)
                except Exception as exc:  # noqa: BLE001  # never break the host
                    error("metrics", exc)
            try:
                windows.on_calls(run, error)
            except Exception as exc:  # noqa: BLE001  # never break the host
                error("windows", exc)
            if drift is not None and entry is not None:
                try:
                    drift.on_calls(run, error)  # an alarm it raises is stored within a wait of its own
                except Exception as exc:  # noqa: BLE001  # never break the host
                    error("drift", exc)

    def _label(self, agent: str) -> tuple[AgentNames | None, str]:
        """The agent's entry and metric label (``None`` and ``other`` past the agent limit)."""
        entry = self.names.get(agent) or self.agent_names(agent)
        return entry, entry.name if entry is not None else OTHER

    def record_score(self, agent: str, value: float, metric: str = "score") -> None:
        if not self.enabled:
            return
        self.flush_calls()  # in order with the calls before it
        try:
            entry, label = self._label(agent)
            metric_label = self.names.metric(entry, metric)
        except Exception as exc:  # noqa: BLE001  # never break the host
            self.error("limits", exc)
            return
        if self.metrics is not None:
            self.safe("metrics", self.metrics.on_score, label, metric_label, value)
        self.safe("windows", self._windows.on_score, label, metric_label, value)
        if self.drift is not None and entry is not None and metric == self.agent_options(agent).score_metric:
            with self._host_call:  # an alarm it raises is stored
                self.safe("drift", self.drift.on_score, entry.name, value)

    def record_signals(self, agent: str, *, refused: bool | None, format_ok: bool | None) -> None:
        """Count signals a hook derived on its own for the agent's latest call: metrics and call windows (the
        usual way is :meth:`configure_agent`, whose checks run on every call with an answer text)."""
        self.flush_calls()  # the latest call is counted first
        try:
            agent = self._label(agent)[1]
        except Exception as exc:  # noqa: BLE001  # never break the host
            self.error("limits", exc)
            return
        if self.metrics is not None:  # per call too: guarded inline like record_call
            try:
                self.metrics.on_signals(agent, refused=refused, format_ok=format_ok)
            except Exception as exc:  # noqa: BLE001  # never break the host
                self.error("metrics", exc)
        try:
            self._windows.on_signals(agent, refused=refused, format_ok=format_ok)
        except Exception as exc:  # noqa: BLE001  # never break the host
            self.error("windows", exc)

    # -- optimizer runs -----------------------------------------------------------------------------
    def begin_run(self, agent: str, optimizer: str, **attributes: Any) -> RunScope | None:
        """Start an optimizer run (``None`` when driftwatch is off or suppressed): recorded in the ledger
        at once, with its ``driftwatch.optimizer.compile`` span current until :meth:`RunScope.finish`.
        ``attributes`` (JSON-able) are stored with the run."""
        if not self.enabled or is_suppressed():
            return None
        try:
            return RunScope(self, agent, optimizer, attributes)
        except Exception as exc:  # noqa: BLE001  # never break the host
            self.error("run", exc)
            return None

    # -- alarms -------------------------------------------------------------------------------------
    def record_alarm(self, alarm: Alarm, anchor: Change | None = None) -> Alarm:
        """Store and export a drift alarm (called by the drift engine)."""
        if self.tracing is not None:
            ids = self.safe("tracing", self.tracing.on_alarm, alarm, anchor)
            if ids and ids[0]:
                alarm = Alarm(alarm.id, alarm.agent, alarm.signal, alarm.score, alarm.timestamp,
                              alarm.anchor_change_id, alarm.calls_since_anchor, ids[0], ids[1], alarm.attributes)
        with self._host_call:
            self.ledger.record_alarm(alarm)
        if self.audit is not None:
            self.safe("audit", self.audit.on_alarm, alarm)
        return alarm

    def close(self, timeout: float | None = None, *, keep_http_servers: bool = False,
              keep_trying: bool = False) -> int:
        """Close: open call windows are handed to the ledger, kept writes get one more try and up to ``timeout``
        seconds (default ``ledger_drain_s``), then the ledger is closed; the ``/metrics`` servers are shut down
        (``keep_http_servers``: leave them to whoever adopted them). Returns how many kept writes were not
        written: dropped, unless ``keep_trying`` (the writer goes on while the process lives: :func:`configure`
        closes the previous runtime with ``timeout=0, keep_trying=True``; at exit, those left are lost and
        logged)."""
        if self._calls is not None:
            self.safe("call", self._calls.close)  # the kept calls, before their call windows close
        self.safe("windows", self._windows.flush)
        left = self.safe("ledger", lambda: self.ledger.close(timeout, keep_trying=keep_trying)) or 0
        if self.audit is not None:
            self.safe("audit", self.audit.close)
        servers, self.http_servers = self.http_servers, []
        self._scrapes_due = float("inf")
        if not keep_http_servers:
            for server in servers:
                self.safe("http_server", server.shutdown)
                self.safe("http_server", server.server_close)
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
    (:func:`configure_agent`) carry over to the new runtime, and so does a ``/metrics`` server started before
    (:func:`start_http_server`): it keeps serving, now the new runtime's registry. The previous runtime's ledger
    is closed. See :class:`~driftwatch.config.Settings` for the list.
    """
    resolved = Settings.from_env(**settings)
    previous = current_runtime()
    servers = previous.http_servers if previous is not None else []
    if resolved.metrics_port is not None and any(s.server_port == resolved.metrics_port for s in servers):
        resolved = replace(resolved, metrics_port=None)  # already served: the server follows the new runtime
    new = Runtime(resolved, agent_options=previous.all_agent_options() if previous is not None else None)
    if new.enabled:
        new.ledger.start()  # opened in the background now, not on the first call
    old = set_runtime(new)
    if old is not None:
        new.adopt_http_servers(old.http_servers)  # /metrics keeps serving, now the new runtime's registry
        if old.close(timeout=0, keep_http_servers=True, keep_trying=True):  # kept writes go on in the background
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
