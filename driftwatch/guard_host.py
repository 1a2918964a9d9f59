"""The runtime's side of the guard: what :class:`~driftwatch.runtime.Runtime` does for its
:class:`~driftwatch.guardrails.engine.Guard` (the :class:`~driftwatch.guardrails.engine.GuardHost` protocol:
agent policies, bounded ledger reads, adopting a revision the guard put back, applying guard and operator
commands) and what it does with the guard's decisions (the records of a refused change, the guard's
metrics, span events and audit events).

:class:`GuardHostMixin` is a part of ``Runtime``, kept in its own module: it uses the runtime's collaborators
(``guard``, ``ledger``, ``metrics``, ``tracing``, ``audit``, ``drift``, ``names``, ``settings``) and its
per-agent state, and is not used on its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from driftwatch.change import Change, new_id
from driftwatch.guardrails.engine import Decision
from driftwatch.guardrails.policy import GuardPolicy
from driftwatch.guardrails.records import GuardAction, StateRow
from driftwatch.ledger import Ledger
from driftwatch.limits import OTHER

__all__ = ["GuardHostMixin"]


class GuardHostMixin:
    """The guard's host methods and the guard's records, mixed into :class:`~driftwatch.runtime.Runtime`."""

    # the runtime's own attributes this part uses (set by Runtime.__init__)
    guard: Any
    ledger: Any
    metrics: Any
    tracing: Any
    audit: Any
    drift: Any
    names: Any
    settings: Any
    _origin: str
    _options: dict[str, Any]
    _trackers: dict[str, Any]
    _revisions: dict[str, Any]
    safe: Any
    tracker: Any
    note_revision: Any

    def _noted(self, change: Change, decision: Decision, span: Any) -> None:
        """The guard's side of a recorded change: its state, and for a refused change the action's records."""
        released = self.guard.note(change, decision)
        agent, component = change.agent, change.component
        if released:  # a pinned component moved on, allowed: the pin goes for every process
            self.ledger.record_guard_state(delete=[(agent, "pin", component, None)])
        if decision.allowed:
            return
        action = "blocked" if decision.action == "block" else "held"
        record = GuardAction(new_id(), agent, action, change.timestamp or time.time(), component, change.id,
                             decision.serve or change.before_id, decision.reason, self._origin)
        if action == "held":
            self.ledger.record_guard_state(put=[StateRow(agent, "held", component, change.after_id, change.id,
                                                         record.timestamp)])
        self._guard_action(record, span)

    def _guard_metrics(self, agent: str, action: str) -> None:
        """Count a guard action and set the agent's guard gauges (an agent past the limit: ``other``)."""
        if self.metrics is None:
            return
        entry = self.names.get(agent)
        label = entry.name if entry is not None else OTHER
        self.safe("metrics", self.metrics.on_guard, label, action)
        if entry is not None:
            self.safe("metrics", self.metrics.set_guard, label, self.guard.frozen(agent), len(self.guard.held(agent)))

    def _guard_action(self, record: GuardAction, span: Any = None) -> None:
        """One guard action: ledger row, ``driftwatch_guard_actions_total``, span event, audit event, gauges."""
        self.ledger.record_guard_action(record)
        self._guard_metrics(record.agent, record.action)
        if self.tracing is not None:
            self.safe("tracing", self.tracing.on_guard, record, span)
        if self.audit is not None:
            self.safe("audit", self.audit.on_guard, record)

    # -- the guard's host (driftwatch.guardrails.engine.GuardHost) ---------------------------------------
    def policy_of(self, agent: str) -> GuardPolicy | None:
        """The agent's guard policy: ``configure_agent``'s, else ``DRIFTWATCH_GUARD``'s (the agent's, then ``*``)."""
        opts = self._options.get(agent)
        if opts is not None and opts.guard is not None:
            return opts.guard
        policies = self.settings.guard
        if not policies:
            return None
        return policies.get(agent) or policies.get("*")

    def guard_ledger(self) -> Ledger | None:
        return self.ledger.available()

    def revision_state(self, revision_id: str) -> Any:
        return self.ledger.state_or_none(revision_id)

    def adopt(self, agent: str, component: str, revision_id: str, state: Any) -> None:
        """A component serves ``revision_id`` by the guard's doing (a rollback, an approval): no change."""
        self.tracker(agent, component).serve(revision_id, state)
        self.note_revision(agent, component, revision_id, changed=True)  # what serves moved: so does the version

    def forget_keys(self, agent: str) -> None:
        for tracker in list(self._trackers.get(agent, {}).values()):
            tracker.reset()
        self.guard.touch(agent)

    def _serves(self, agent: str) -> bool:
        return agent in self._revisions or (self.drift is not None and agent in self.drift.agents())

    def guard_command(self, agent: str, action: str, payload: Mapping[str, Any]) -> None:
        """A guard command applied here: counted (once per process that serves the agent); a rollback restarts
        the drift reference, to be confirmed by the calls that follow."""
        if not self._serves(agent):
            return
        done = {"freeze": "frozen", "unfreeze": "unfrozen", "rollback": "rolled_back", "approve": "approved",
                "reject": "rejected"}[action]
        self._guard_metrics(agent, done)
        if action == "rollback" and self.drift is not None:
            self.safe("drift", self.drift.rollback, agent)
        if self.audit is not None:
            self.safe("audit", self.audit.on_guard, GuardAction(
                "", agent, done, time.time(), reason=_applied(action, payload), origin=self._origin))

    def operator_command(self, agent: str, action: str) -> None:
        """The drift engine's ``accept`` / ``reset`` (``driftwatch accept``), for the agents it watches."""
        drift = self.drift
        if drift is None or action not in ("accept", "reset"):
            return
        if agent != "*" and agent not in drift.agents():
            return
        (drift.accept if action == "accept" else drift.reset)(agent)

    def polled(self, ledger: Ledger) -> None:
        """After each poll of the command queue: the drift engine's fleet evidence (``drift_pool``)."""
        if self.drift is not None and self.drift.pool:
            self.drift.pool_evidence(ledger)

    def publish_policies(self) -> None:
        """Write every known agent's policy to the ledger (what ``driftwatch guard --listen`` applies), queued like
        every other write."""
        names = set(self._options) | set(self.settings.guard)
        rows, gone = self._policy_rows(names)
        if rows or gone:
            self.ledger.record_guard_state(put=rows, delete=gone)

    def _publish_policy(self, agent: str) -> None:
        rows, gone = self._policy_rows({agent})
        self.ledger.record_guard_state(put=rows, delete=gone)

    def _policy_rows(self, agents: set[str]) -> tuple[list[StateRow], list[tuple[str, str, str | None, str | None]]]:
        rows, gone = [], []
        now = time.time()
        for agent in sorted(agents):
            policy = self.policy_of(agent) if agent != "*" else self.settings.guard.get("*")
            if policy is None:
                gone.append((agent, "policy", None, None))
                continue
            rows.append(StateRow(agent, "policy", "", "", policy.to_json(), now))
        return rows, gone

    def _confirmed(self, agent: str, calls: int) -> None:
        """The drift engine confirmed an agent's rolled-back behaviour: a guard action ``confirmed``."""
        self._guard_action(GuardAction(new_id(), agent, "confirmed", time.time(),
                                       reason=f"rolled-back behaviour matches the reference over {calls} calls: "
                                              "alarm cleared, new reference", origin=self._origin))


def _applied(action: str, payload: Mapping[str, Any]) -> str:
    """What a guard command did in this process, for its audit event."""
    if action == "rollback":
        targets = payload.get("targets") or {}
        what = ", ".join(f"{c} -> {str(r)[:8]}" for c, r in sorted(targets.items())) or "its components"
        why = f" (drift alarm {str(payload['alarm'])[:12]} on {payload.get('signal')})" if payload.get("alarm") else ""
        return f"serving the revisions of before: {what}{why}"
    if action in ("approve", "reject") and payload.get("change"):
        return f"change {str(payload['change'])[:12]} {'approved' if action == 'approve' else 'rejected'}"
    return f"{action} applied"
