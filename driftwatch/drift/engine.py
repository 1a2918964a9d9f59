"""The per-process drift engine: one :class:`DriftMonitor` per agent, anchored at each change.

The runtime feeds it every call (:meth:`DriftEngine.on_call`), every score and every change.
For each agent it keeps

* a behavioural :class:`~driftwatch.drift.monitor.DriftMonitor` whose ring holds the calls of the
  current revision; at a change, those calls (the last ``drift_reference_calls`` of them) become
  the reference and the bank is armed for the calls after it;
* a separate operational monitor (latency, cost), so that load never raises a behavioural alarm.

Reference policy, per agent:

* a change with at least ``min_reference`` calls since the previous one re-anchors: those calls
  are the new reference;
* a change that follows the previous one within fewer calls (a burst: an optimizer updating
  several components) keeps the current reference; the later changes are listed on the alarm;
* a change before any reference exists (too few calls since start) starts a settle period: the
  first ``drift_reference_calls`` calls after it become the reference (so only later drift is seen);
* :meth:`accept` unlatches and freezes the calls since the last freeze as the new reference;
  :meth:`reset` unlatches and restarts the statistics against the same reference. Both also
  arrive from other processes (``driftwatch accept``) through the ledger's ``drift_commands``,
  polled every ``drift_poll_s`` seconds on the call path (in a watched process, the runtime's guard polls
  and hands them over; a standalone engine given ``ledger=`` polls itself);
* :meth:`rollback` (a guard rolled the agent back to the revisions before the change that anchored the
  alarm): the statistics restart against the same reference while the alarms stay latched; when
  ``reference_calls`` calls pass without a new alarm, the rolled-back behaviour is confirmed: the alarms
  unlatch and those calls become the new reference (``on_confirm(agent, calls)``).

Exports, through the collaborators it is given (it knows nothing of the runtime):
``driftwatch_drift_score`` and ``driftwatch_drift_alarm`` per signal and ``driftwatch_reference_calls``
(the frozen reference's size; while warming, the calls collected so far, exported as soon as it moves; the
scores at most every 0.5 s, and at once on an alarm, a freeze or an operator command) through the metrics sink's
:meth:`~driftwatch.metrics.Metrics.set_drift`; each alarm through ``on_alarm(alarm, anchor_change)`` (the
runtime's :meth:`~driftwatch.runtime.Runtime.record_alarm`: span event linked to the anchor change, audit
event, ledger row); errors through ``on_error(stage, exc)``. It reads the per-call signals the runtime
derived (:mod:`driftwatch.signals`) from each :class:`~driftwatch.observation.Call`, and operator commands
from the ledger it is given.
Each alarm's attributes say how much each signal moved (``effects``; for the ``combined`` signal,
``moved`` lists the signals behind it).

Fleets (``drift_pool``): at each poll every replica also publishes its evidence for the current
anchor to the ledger and pools the fleet's (:mod:`driftwatch.drift.fleet`); a pooled crossing raises one
fleet alarm (``attributes.fleet``), with an id derived from the agent, anchor and signal so that every
replica that sees it writes the same ledger row.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from driftwatch.alarm import Alarm
from driftwatch.change import new_id
from driftwatch.drift.fleet import FleetPool, anchor_key
from driftwatch.drift.monitor import DriftMonitor
from driftwatch.drift.record import BEHAVIOUR_SIGNALS, COMBINED_SIGNAL, OPERATIONAL_SIGNALS, CallRecord

if TYPE_CHECKING:
    from driftwatch.change import Change
    from driftwatch.ledger import Ledger
    from driftwatch.observation import Call

__all__ = ["DriftEngine", "DriftSink"]


class DriftSink(Protocol):
    """Where the engine's gauges go (:class:`driftwatch.metrics.Metrics` is one)."""

    def set_drift(self, agent: str, scores: Mapping[str, float], alarmed: Collection[str],
                  reference_calls: int) -> None: ...

_EXPORT_S = 0.5
_LATER_MAX = 16


def _fleet_alarm_id(agent: str, key: str, signal: str, resets: int) -> str:
    """The same id in every replica for one pooled alarm (the ledger keeps one row)."""
    return hashlib.blake2b(f"{agent}|{key}|{signal}|{resets}".encode(), digest_size=16).hexdigest()


class _Agent:
    __slots__ = ("accepts", "alarmed", "anchor", "calls_since_anchor", "confirming", "exported_reference", "later",
                 "lock", "mon",
                 "name", "next_export", "ops", "ops_alarmed", "pool", "pool_key", "reference_kind", "settle")

    def __init__(self, name: str, mon: DriftMonitor, ops: DriftMonitor) -> None:
        self.name = name
        self.mon = mon
        self.ops = ops
        self.lock = threading.Lock()
        self.anchor: Change | None = None
        self.later: list[str] = []
        self.calls_since_anchor = 0
        self.settle = False
        self.confirming = False  # after a rollback: the calls since are checked against the reference
        self.reference_kind = "none"
        self.alarmed: dict[str, str] = {}  # signal -> alarm id (latched until accept/reset)
        self.ops_alarmed: set[str] = set()
        self.next_export = 0.0
        self.exported_reference = -1  # the driftwatch_reference_calls value last exported
        self.pool: FleetPool | None = None  # fleet pooling: the pooled statistics of the current anchor
        self.pool_key: str | None = None
        self.accepts = 0  # accepts since the anchor (part of the pool key: a new reference, a new pool)


def _ignore(stage: str, exc: BaseException) -> None:
    """The default ``on_error``: nothing to count into."""


def _reraise(stage: str, exc: BaseException) -> None:
    raise exc


class DriftEngine:
    """Drift detection for every agent of one process (or one runtime).

    Collaborators, all optional: ``sink`` gets the gauges (``set_drift``); ``on_alarm(alarm, anchor)``
    records each alarm; ``on_error(stage, exc)`` counts errors; ``ledger()`` returns the ledger that
    operator commands are read from, or ``None`` while it is unavailable. Settings default to
    :class:`~driftwatch.config.Settings`' defaults.
    """

    def __init__(self, *, reference_calls: int = 1000, false_alarm_rate: float = 1e-4, replicas: int = 1,
                 min_reference: int | None = None, poll_s: float = 2.0, sink: DriftSink | None = None,
                 on_alarm: Callable[[Alarm, Change | None], object] | None = None,
                 on_error: Callable[[str, BaseException], None] = _ignore,
                 ledger: Callable[[], Ledger | None] | None = None, pool: bool = False,
                 on_confirm: Callable[[str, int], object] | None = None) -> None:
        self.reference_calls = reference_calls
        self.false_alarm_rate = false_alarm_rate
        self.replicas = replicas
        self.min_reference = min_reference or max(30, self.reference_calls // 5)
        self.poll_s = poll_s if ledger is not None else 0.0
        self.sink = sink
        self.on_alarm = on_alarm
        self.on_error = on_error
        self.on_confirm = on_confirm
        self.ledger = ledger
        #: pool evidence with the other replicas through the ledger (half the budget fleet-wide)
        self.pool = pool
        self.replica_id = new_id()
        self._agents: dict[str, _Agent] = {}
        self._lock = threading.Lock()
        self._started = time.time()
        self._cmd_after = 0
        self._next_poll = 0.0
        self._poll_lock = threading.Lock()

    # -- agents ---------------------------------------------------------------------------------
    def _agent(self, name: str) -> _Agent:
        st = self._agents.get(name)
        if st is None:
            with self._lock:
                st = self._agents.get(name)
                if st is None:
                    kw = {"reference_calls": self.reference_calls, "replicas": self.replicas}
                    pool = self.false_alarm_rate / 2 if self.pool else None
                    st = _Agent(name, DriftMonitor(self.false_alarm_rate, signals=BEHAVIOUR_SIGNALS, pool_rate=pool,
                                                   **kw),
                                DriftMonitor(self.false_alarm_rate, signals=OPERATIONAL_SIGNALS, **kw))
                    self._agents[name] = st
        return st

    def agents(self) -> list[str]:
        return sorted(self._agents)

    def has_alarm(self, agent: str) -> bool:
        """Whether one of the agent's alarms (behavioural or operational) is latched."""
        st = self._agents.get(agent)
        return st is not None and bool(st.alarmed or st.ops_alarmed)

    def forget(self, agent: str) -> None:
        """Drop an agent's state (an idle agent the runtime evicts); it starts afresh if it comes back."""
        with self._lock:
            self._agents.pop(agent, None)

    def monitor(self, agent: str) -> DriftMonitor:
        """The behavioural monitor of an agent (created on first use)."""
        return self._agent(agent).mon

    def operational(self, agent: str) -> DriftMonitor:
        """The operational (latency, cost) monitor of an agent."""
        return self._agent(agent).ops

    def status(self, agent: str) -> dict[str, Any]:
        """A summary of an agent's drift state (for tests, the API and debugging)."""
        st = self._agent(agent)
        with st.lock:
            return {
                "agent": agent, "armed": st.mon.armed, "warming": not st.mon.armed,
                "reference_calls": st.mon.reference_size, "collected_calls": st.mon.ring_size,
                "reference": st.reference_kind, "anchor_change_id": st.anchor.id if st.anchor else None,
                "later_changes": list(st.later), "calls_since_anchor": st.calls_since_anchor,
                "alarms": dict(st.alarmed), "scores": st.mon.scores(), "operational": st.ops.scores(),
                "operational_alarms": sorted(st.ops_alarmed), "bank_rate": st.mon.bank_rate,
                "signals": st.mon.describe(), "effects": st.mon.effects(),
                "fleet": None if st.pool is None else {"key": st.pool_key, "scores": dict(st.pool.scores),
                                                       "calls": st.pool.calls},
            }

    # -- inputs from the runtime ----------------------------------------------------------------------
    @staticmethod
    def record_for(call: Call) -> CallRecord:
        """A watched call as the detector's record (its signals were derived before it got here)."""
        # positional (CallRecord's field order): cheaper than keywords, once per call
        return CallRecord(call.output_chars, call.output_tokens, call.refused, call.tools, call.format_ok,
                          call.error, call.score, call.embedding, call.duration_s, call.input_tokens)

    def on_call(self, call: Call) -> None:
        """Feed one call (an error raises: :meth:`on_calls` is the runtime's way in)."""
        self.on_calls([call], _reraise)

    def on_calls(self, calls: list[Call], on_error: Callable[[str, BaseException], None]) -> None:
        """The calls of one agent, in order, each fed to the monitors, with the agent's lock taken once per stretch
        of calls and the gauges exported once at the end (the scores at most every 0.5 s; at once on an alarm, a
        freeze or while warming). An alarm (or a rolled-back behaviour confirmed) is raised at its own call,
        before the next call is fed; a call that raises is reported to ``on_error("drift", exc)`` and the
        others are still fed."""
        now = time.monotonic()
        if now >= self._next_poll and self.poll_s > 0:
            self.poll_commands(now)
        st = self._agents.get(calls[0].agent) or self._agent(calls[0].agent)
        record_for, reference_calls = self.record_for, self.reference_calls
        mon, opm = st.mon, st.ops
        i, n, export = 0, len(calls), False
        while i < n:
            fired: list[tuple[str, float]] | None = None
            confirmed = 0
            errors: list[BaseException] | None = None
            with st.lock:
                while i < n:
                    call = calls[i]
                    i += 1
                    try:
                        rec = record_for(call)
                        status = mon.update(rec)
                        ops = opm.update(rec)
                    except Exception as exc:  # noqa: BLE001  # reported below; the batch's other calls go on
                        errors = [*(errors or ()), exc]
                        continue
                    if st.anchor is not None:
                        st.calls_since_anchor += 1
                    if st.settle and mon.ring_size >= reference_calls:
                        self._freeze(st, "after_change")
                        export = True
                    if st.confirming:
                        if status.fired:  # the rolled-back behaviour still drifts: the new alarm stands
                            st.confirming = False
                        elif mon.ring_size >= reference_calls:
                            confirmed = mon.ring_size
                            st.alarmed.clear()
                            self._freeze(st, "rolled_back")
                            st.confirming = False
                    if ops.fired:
                        st.ops_alarmed.update(ops.fired)
                        export = True
                    if status.fired:
                        latched = mon.latched  # the score at the crossing (an embedding batch may end lower)
                        fired = [(s, latched.get(s, status.signals[s])) for s in status.fired]
                    if fired or confirmed:
                        break  # raised at this call, before the next one is fed
            if errors is not None:
                for exc in errors:
                    on_error("drift", exc)
            if fired or confirmed:
                for signal, score in fired or ():
                    self._raise(st, signal, score)
                if confirmed and self.on_confirm is not None:
                    self.on_confirm(st.name, confirmed)
                self.export(st)
        # the reference size shown: moves with every call while warming, then only at a freeze
        moved = (mon.reference_size if mon.armed else mon.ring_size) != st.exported_reference
        if export or moved or now >= st.next_export:
            st.next_export = now + _EXPORT_S
            self.export(st)

    def on_score(self, agent: str, value: float) -> None:
        """A score of the metric that feeds the agent's ``score`` signal (the runtime picks it)."""
        st = self._agent(agent)
        with st.lock:
            status = st.mon.update_score(value)
        for signal in status.fired:
            self._raise(st, signal, status.signals[signal])
        if status.fired:
            self.export(st)

    def on_change(self, change: Change) -> None:
        st = self._agent(change.agent)
        with st.lock:
            if st.mon.ring_size >= self.min_reference:
                st.anchor = change
                self._freeze(st, "before_change")
            elif st.mon.armed and st.anchor is not None:
                if len(st.later) < _LATER_MAX:
                    st.later.append(change.id)
                st.mon.clear_ring()
                st.ops.clear_ring()
            else:
                st.anchor = change
                st.later = []
                st.calls_since_anchor = 0
                st.mon.disarm()
                st.ops.disarm()
                st.mon.clear_ring()
                st.ops.clear_ring()
                st.settle = True
                st.reference_kind = "settling"
        self.export(st)

    def _freeze(self, st: _Agent, kind: str) -> None:
        """Freeze the agent's collected calls as its reference (caller holds the lock)."""
        if kind != "accepted":
            st.accepts = 0
        st.pool = None
        st.mon.freeze()
        st.ops.freeze()
        st.ops_alarmed.clear()
        st.later = []
        st.calls_since_anchor = 0
        st.settle = False
        st.reference_kind = kind if st.mon.armed else "none"

    # -- operator actions -------------------------------------------------------------------------------
    def accept(self, agent: str | None = None) -> list[str]:
        """Accept the current behaviour of one agent (all when ``None``): unlatch its alarms and make its
        calls since the last freeze the new reference (or settle, if there are too few yet)."""
        names = self.agents() if agent in (None, "*") else [agent]
        for name in names:
            st = self._agent(name)  # type: ignore[arg-type]  # None handled above
            with st.lock:
                st.alarmed.clear()
                st.ops_alarmed.clear()
                st.accepts += 1
                if st.mon.ring_size >= self.min_reference:
                    self._freeze(st, "accepted")
                else:
                    st.mon.disarm()
                    st.ops.disarm()
                    st.settle = True
                    st.reference_kind = "settling"
            self.export(st)
        return names  # type: ignore[return-value]  # all str

    def reset(self, agent: str | None = None) -> list[str]:
        """Unlatch one agent's alarms (all when ``None``) and restart its statistics, same reference."""
        names = self.agents() if agent in (None, "*") else [agent]
        for name in names:
            st = self._agent(name)  # type: ignore[arg-type]  # None handled above
            with st.lock:
                st.alarmed.clear()
                st.ops_alarmed.clear()
                st.mon.reset()
                st.ops.reset()
                if st.pool is not None:
                    st.pool.reset()
            self.export(st)
        return names  # type: ignore[return-value]  # all str

    def rollback(self, agent: str) -> None:
        """The agent was rolled back: restart its statistics against the same reference (the behaviour before the
        change that anchored its alarm), keep its alarms latched until ``reference_calls`` calls confirm the
        rolled-back behaviour (see the module's docstring)."""
        st = self._agent(agent)
        with st.lock:
            st.mon.reset()
            st.ops.reset()
            if st.pool is not None:
                st.pool.reset()
            st.mon.clear_ring()
            st.ops.clear_ring()
            st.ops_alarmed.clear()
            st.later = []
            st.calls_since_anchor = 0
            if st.mon.armed:
                st.confirming = True
                st.reference_kind = "confirming"
            else:
                st.alarmed.clear()
                st.settle = True
                st.reference_kind = "settling"
        self.export(st)

    def poll_commands(self, now: float | None = None) -> int:
        """Apply accept/reset commands queued in the ledger by other processes; returns how many."""
        if not self._poll_lock.acquire(blocking=False):
            return 0
        try:
            self._next_poll = (time.monotonic() if now is None else now) + self.poll_s
            led = self.ledger() if self.ledger is not None else None
            if led is None:
                return 0
            try:
                rows = led.commands(after=self._cmd_after, since=self._started)
            except Exception as exc:  # noqa: BLE001  # a ledger hiccup: retried at the next poll
                self.on_error("drift", exc)
                return 0
            for cid, agent, action, _ in rows:
                self._cmd_after = max(self._cmd_after, cid)
                if agent != "*" and agent not in self._agents:
                    continue
                if action == "accept":
                    self.accept(agent)
                elif action == "reset":
                    self.reset(agent)
            if self.pool:
                self.pool_evidence(led)
            return len(rows)
        finally:
            self._poll_lock.release()

    def pool_evidence(self, led: Any) -> int:
        """Fleet pooling, one round: publish each armed agent's evidence, pool the fleet's, raise the pooled
        alarms; returns how many were raised. Runs at each poll (``drift_poll_s``) when ``drift_pool``."""
        raised = 0
        for st in list(self._agents.values()):
            with st.lock:
                snap = st.mon.evidence()
                anchor = st.anchor
                if snap is None or anchor is None:
                    continue
                key = f"{anchor_key(anchor.component, anchor.after_id)}#{st.accepts}"
            try:
                led.record_evidence(st.name, key, self.replica_id, time.time(), snap)
                rows = led.evidence(st.name, key)
            except Exception as exc:  # noqa: BLE001  # a ledger hiccup: pooled again at the next poll
                self.on_error("drift", exc)
                continue
            with st.lock:
                if st.pool is None or st.pool_key != key:
                    st.pool, st.pool_key = FleetPool(st.mon.pool_rate or 0.0), key
                fired = [s for s in st.pool.update(rows) if s not in st.alarmed]
                scores = dict(st.pool.scores)
                replicas = len(rows)
            for signal in fired:
                fleet = {"key": key, "replicas": replicas, "fleet_calls": st.pool.calls,
                         "pool_rate": st.mon.pool_rate}
                self._raise(st, signal, scores[signal], fleet=fleet,
                            alarm_id=_fleet_alarm_id(st.name, key, signal, st.pool.resets))
                raised += 1
        return raised

    # -- outputs ------------------------------------------------------------------------------------------
    def _raise(self, st: _Agent, signal: str, score: float, *, fleet: dict[str, Any] | None = None,
               alarm_id: str | None = None) -> None:
        with st.lock:
            anchor = st.anchor
            mon = st.mon
            info = mon.describe().get(signal, {})
            attributes: dict[str, Any] = {
                "reference": st.reference_kind, "reference_calls": mon.reference_size,
                "false_alarm_rate": mon.false_alarm_rate, "replicas": mon.replicas, "detector": "behaviour",
            }
            for key in ("threshold", "threshold_up", "threshold_down", "reference_rate"):
                if key in info:
                    attributes[key] = info[key]
            effects = mon.effects(signal)
            if effects:
                attributes["effects"] = effects
            if signal == COMBINED_SIGNAL:  # the signals behind it: at least two standard errors off
                attributes["moved"] = sorted(s for s, e in effects.items() if abs(e.get("t", 0.0)) >= 2.0)
            dep = mon.describe().get("dependence")
            if dep:
                attributes["dependence"] = dep
            if fleet is not None:
                attributes["fleet"] = fleet
            if st.later:
                attributes["later_changes"] = list(st.later)
            alarm = Alarm(id=alarm_id or new_id(), agent=st.name, signal=signal, score=float(score),
                          timestamp=time.time(),
                          anchor_change_id=anchor.id if anchor is not None else None,
                          calls_since_anchor=st.calls_since_anchor if anchor is not None else mon.calls,
                          attributes=attributes)
            st.alarmed[signal] = alarm.id
        if self.on_alarm is not None:
            self.on_alarm(alarm, anchor)

    def export(self, st: _Agent) -> None:
        """Set the agent's drift gauges now."""
        sink = self.sink
        if sink is None:
            return
        with st.lock:
            scores = {**st.mon.scores(), **st.ops.scores()}
            alarmed = set(st.alarmed) | st.ops_alarmed
            ref = st.mon.reference_size if st.mon.armed else st.mon.ring_size
            st.exported_reference = ref
        sink.set_drift(st.name, scores, alarmed, ref)
