"""What an operator (``driftwatch freeze|unfreeze|rollback|approve|reject``) or an alert (``driftwatch guard
--listen``) does to an agent: validate, write the facts to the ledger in one transaction, queue the command.

Each function takes a :class:`~driftwatch.ledger.Ledger` opened for writing and returns an :class:`Outcome`
(``command_id`` is ``None`` when nothing needed doing, e.g. freezing a frozen agent). Bad input — an unknown
agent, change or revision, another agent's revision, approving a change that is not held — raises
:class:`GuardError` (one line) before anything is written. Running processes act on the command at their next
poll (``drift_poll_s``); a process that starts later reads the same facts from ``guard_state``.

Rollback: the revisions in force before the change that anchored the agent's latest drift alarm (or
``--alarm``), for every component changed since, or one revision (``--to``) of one component. It is recorded
as one change per component (source ``guard``, heads moved back), the rolled-back revisions are *rejected*
(a change back to one of them is blocked), and the targets are *pinned* until the agent makes another change
that is allowed.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from driftwatch.change import Change, new_id
from driftwatch.guardrails.policy import GuardPolicy
from driftwatch.guardrails.records import GuardAction, GuardUpdate, StateRow
from driftwatch.revision import changed_paths, magnitude

if TYPE_CHECKING:
    from driftwatch.alarm import Alarm
    from driftwatch.ledger import Ledger

__all__ = ["GuardError", "Outcome", "apply_alert", "approve", "freeze", "origin_of", "policy_of", "reject",
           "rollback", "unfreeze"]


class GuardError(ValueError):
    """A guard command cannot be applied (bad input); one line, nothing was written."""


@dataclass
class Outcome:
    """What a command did: its queued id (``None``: nothing to do), a one-line message, and what it wrote."""

    agent: str
    command: str
    command_id: int | None
    message: str
    changes: list[Change] = field(default_factory=list)
    actions: list[GuardAction] = field(default_factory=list)

    @property
    def queued(self) -> bool:
        return self.command_id is not None


def origin_of(who: str) -> str:
    """``who`` (``cli``, ``alert``…) and where it ran: ``cli@host:pid``."""
    import os

    return f"{who}@{socket.gethostname()}:{os.getpid()}"


def _changes(led: Ledger, agent: str) -> list[Change]:
    found = led.changes(agent=agent, baselines=True)
    if not found:
        agents = sorted({c.agent for c in led.changes(baselines=True)})
        known = f" (agents: {', '.join(agents[:8])}{' …' if len(agents) > 8 else ''})" if agents else ""
        raise GuardError(f"no agent {agent!r} in ledger {led.location}{known}")
    return found


def _state(led: Ledger, agent: str, what: str) -> list[StateRow]:
    return [r for r in led.guard_state(agent) if r.what == what]


def freeze(led: Ledger, agent: str, *, note: str = "", origin: str = "cli") -> Outcome:
    """Freeze an agent's self-tuning: every process keeps serving its current revisions; further
    self-modifications are blocked (and recorded as blocked) until :func:`unfreeze`."""
    _changes(led, agent)
    if _state(led, agent, "frozen"):
        return Outcome(agent, "freeze", None, f"agent {agent} is already frozen")
    now = time.time()
    reason = note or "frozen"
    action = GuardAction(new_id(), agent, "frozen", now, reason=reason, origin=origin)
    cid = led.record_guard_update(GuardUpdate(agent, "freeze", note=json.dumps({"note": note}),
                                              put=[StateRow(agent, "frozen", note=reason, timestamp=now)],
                                              actions=[action]))
    return Outcome(agent, "freeze", cid, f"agent {agent} frozen", actions=[action])


def unfreeze(led: Ledger, agent: str, *, note: str = "", origin: str = "cli") -> Outcome:
    """Let an agent tune itself again (its current own state is judged again under its policy)."""
    _changes(led, agent)
    if not _state(led, agent, "frozen"):
        raise GuardError(f"agent {agent!r} is not frozen in {led.location}")
    now = time.time()
    action = GuardAction(new_id(), agent, "unfrozen", now, reason=note or "unfrozen", origin=origin)
    cid = led.record_guard_update(GuardUpdate(agent, "unfreeze", note=json.dumps({"note": note}),
                                              delete=[("frozen", None, None)], actions=[action]))
    return Outcome(agent, "unfreeze", cid, f"agent {agent} unfrozen", actions=[action])


def _target_revision(led: Ledger, agent: str, changes: list[Change], to: str,
                     component: str | None) -> tuple[dict[str, str], str]:
    rev = led.revision(to) if isinstance(to, str) and to else None
    if rev is None:
        raise GuardError(f"rollback --to {to!r}: no revision with that id (or a unique prefix of 6+ characters) in "
                         f"{led.location}")
    comps = sorted({c.component for c in changes if rev.id in (c.after_id, c.before_id)})
    if not comps:
        owners = sorted({c.agent for c in led.changes(baselines=True) if rev.id in (c.after_id, c.before_id)})
        if owners:
            raise GuardError(f"rollback --to {rev.id[:12]}: that revision belongs to agent "
                             f"{', '.join(owners)}, not {agent!r}")
        raise GuardError(f"rollback --to {rev.id[:12]}: no component of agent {agent!r} was ever at that revision "
                         "(an optimizer candidate? restore it with driftwatch.integrations.dspy.restore)")
    if component is not None:
        if component not in comps:
            raise GuardError(f"rollback --component {component!r}: revision {rev.id[:12]} is a revision of "
                             f"{', '.join(comps)}")
        comps = [component]
    if len(comps) > 1:
        raise GuardError(f"rollback --to {rev.id[:12]}: several components had that revision ({', '.join(comps)}): "
                         "pass --component")
    return {comps[0]: rev.id}, f"rolled back to revision {rev.id[:12]}"


def _alarm_targets(led: Ledger, agent: str, changes: list[Change],
                   alarm_id: str | None) -> tuple[dict[str, str], dict[str, set[str]], str, Alarm, Change]:
    if alarm_id is not None:
        try:
            alarm = led.alarm(alarm_id)
        except KeyError as exc:
            raise GuardError(f"rollback --alarm: {exc.args[0]}") from None
        if alarm.agent != agent:
            raise GuardError(f"rollback --alarm {alarm.id[:12]}: that alarm is agent {alarm.agent!r}'s, "
                             f"not {agent!r}'s")
    else:
        alarms = led.alarms(agent=agent, limit=1)
        if not alarms:
            raise GuardError(f"agent {agent!r} has no drift alarm to roll back from: name a revision with --to")
        alarm = alarms[0]
    if not alarm.anchor_change_id:
        raise GuardError(f"drift alarm {alarm.id[:12]} of {agent!r} is anchored at no change: name a revision "
                         "with --to")
    try:
        anchor = led.change(alarm.anchor_change_id)
    except KeyError as exc:
        raise GuardError(f"drift alarm {alarm.id[:12]}: its anchor {exc.args[0]}") from None
    targets: dict[str, str] = {}
    away: dict[str, set[str]] = {}
    start = (anchor.timestamp, anchor.id)
    for c in changes:
        if c.is_baseline or not c.in_effect or c.source == "guard" or (c.timestamp, c.id) < start:
            continue
        if c.before_id is not None:
            targets.setdefault(c.component, c.before_id)
            away.setdefault(c.component, set()).add(c.after_id)
    reason = f"drift alarm {alarm.id[:12]} ({alarm.signal}) anchored at change {anchor.id[:12]}"
    return targets, away, reason, alarm, anchor


def rollback(led: Ledger, agent: str, *, to: str | None = None, component: str | None = None,
             alarm_id: str | None = None, note: str = "", origin: str = "cli") -> Outcome:
    """Roll an agent back: to the revisions in force before the change that anchored its latest drift alarm
    (or ``alarm_id``'s), or one component to revision ``to``. See the module's docstring."""
    changes = _changes(led, agent)
    payload: dict[str, Any] = {"note": note}
    if to is not None:
        if alarm_id is not None:
            raise GuardError("rollback: give --to or --alarm, not both")
        targets, reason = _target_revision(led, agent, changes, to, component)
        away: dict[str, set[str]] = {}
    else:
        targets, away, reason, alarm, anchor = _alarm_targets(led, agent, changes, alarm_id)
        if component is not None:
            if component not in targets:
                raise GuardError(f"rollback --component {component!r}: not changed since change {anchor.id[:12]} "
                                 f"(changed: {', '.join(sorted(targets)) or 'none'})")
            targets = {component: targets[component]}
        payload.update(alarm=alarm.id, anchor=anchor.id, signal=alarm.signal)
    if note:
        reason = f"{reason}: {note}"
    now = time.time()
    update = GuardUpdate(agent, "rollback")
    out = Outcome(agent, "rollback", None, "")
    kinds = {c.component: c.kind for c in changes if not c.is_baseline}
    for comp, target in sorted(targets.items()):
        head = led.head(agent, comp)
        if head == target:
            continue
        after = led.revision(target)
        if after is None:
            raise GuardError(f"rollback: revision {target[:12]} of {comp} is missing from {led.location}")
        before = led.revision(head) if head else None
        before_state = before.state if before is not None else None
        change = Change(new_id(), agent, comp, kinds.get(comp, "custom"), "guard", head, target,
                        magnitude(before_state, after.state) if before is not None else 1.0,
                        changed_paths(before_state, after.state) if before is not None else (), now,
                        before_state, after.state, attributes={"guard": "rollback", "reason": reason})
        rejected = (away.get(comp, set()) | ({head} if head else set())) - {target}
        update.changes.append(change)
        update.delete.append(("pin", comp, None))
        update.delete += [("approved", comp, r) for r in sorted(rejected)]
        update.put.append(StateRow(agent, "pin", comp, target, reason, now))
        update.put += [StateRow(agent, "rejected", comp, r, reason, now) for r in sorted(rejected)]
        update.actions.append(GuardAction(new_id(), agent, "rolled_back", now, comp, change.id, target, reason, origin))
    if not update.changes:
        names = ", ".join(sorted(targets)) or "no component"
        return Outcome(agent, "rollback", None, f"nothing to roll back: agent {agent} already serves the target "
                                                f"revisions ({names})")
    payload["changes"] = [c.id for c in update.changes]
    payload["targets"] = {c.component: c.after_id for c in update.changes}
    update.note = json.dumps(payload, sort_keys=True)
    out.command_id = led.record_guard_update(update)
    out.changes, out.actions = update.changes, update.actions
    what = ", ".join(f"{c.component} {(c.before_id or '-')[:8]} -> {c.after_id[:8]}" for c in update.changes)
    out.message = f"agent {agent} rolled back ({reason}): {what}"
    return out


def _held(led: Ledger, change_id: str, verb: str) -> Change:
    if not isinstance(change_id, str) or not change_id:
        raise GuardError(f"{verb}: give a change id (or a unique prefix of 4+ characters)")
    try:
        change = led.change(change_id)
    except KeyError as exc:
        raise GuardError(f"{verb}: {exc.args[0]}") from None
    if change.status != "held":
        raise GuardError(f"{verb} {change.id[:12]}: that change is not held (its status is {change.status}): "
                         f"nothing to {verb}")
    return change


def _verdict(led: Ledger, change_id: str, verb: str, note: str, origin: str) -> Outcome:
    """Approve or reject a held change (every held change of the same transition, one per process that saw it)."""
    ch = _held(led, change_id, verb)
    now = time.time()
    done = "approved" if verb == "approve" else "rejected"
    reason = f"change {ch.id[:12]} {done}" + (f": {note}" if note else "")
    served = ch.after_id if verb == "approve" else ch.before_id
    action = GuardAction(new_id(), ch.agent, done, now, ch.component, ch.id, served, reason, origin)
    update = GuardUpdate(ch.agent, verb, json.dumps({"change": ch.id, "component": ch.component,
                                                     "revision": ch.after_id}),
                         delete=[("held", ch.component, ch.after_id)],
                         put=[StateRow(ch.agent, done, ch.component, ch.after_id, ch.id, now)],
                         statuses=[(ch.component, ch.after_id, "held", done)], actions=[action])
    if verb == "approve":  # in effect everywhere: the head moves, every process serves it
        update.delete += [("pin", ch.component, None), ("rejected", ch.component, ch.after_id)]
        update.put.append(StateRow(ch.agent, "pin", ch.component, ch.after_id, reason, now))
        update.heads.append((ch.component, ch.after_id))
    cid = led.record_guard_update(update)
    return Outcome(ch.agent, verb, cid, f"change {ch.id[:12]} of {ch.agent} ({ch.component}, {ch.kind}) {done}",
                   actions=[action])


def approve(led: Ledger, change_id: str, *, note: str = "", origin: str = "cli") -> Outcome:
    """Approve a held change: it takes effect in every process of the agent (its revision is pinned there)."""
    return _verdict(led, change_id, "approve", note, origin)


def reject(led: Ledger, change_id: str, *, note: str = "", origin: str = "cli") -> Outcome:
    """Reject a held change: the previous revision keeps serving; a change to that revision is blocked."""
    return _verdict(led, change_id, "reject", note, origin)


def policy_of(led: Ledger, agent: str) -> GuardPolicy | None:
    """The policy the agent's processes published to the ledger (the agent's, else ``*``'s), or ``None``."""
    for name in (agent, "*"):
        for row in _state(led, name, "policy"):
            try:
                return GuardPolicy.from_json(row.note)
            except ValueError:
                continue
    return None


def apply_alert(led: Ledger, agent: str, *, signal: str | None = None, alertname: str = "DriftwatchBehaviorDrift",
                origin: str = "alert") -> Outcome:
    """Apply the agent's published policy to a firing drift alert: ``freeze`` or ``rollback`` (from the latest
    alarm of ``signal``, or of any signal); ``page`` (or no policy) does nothing. Idempotent: an alert that
    fires again for the same alarm finds nothing left to do."""
    policy = policy_of(led, agent)
    if policy is None or not policy.acts_on_alarm:
        what = "no guard policy" if policy is None else "policy on_alarm=page"
        return Outcome(agent, "none", None, f"agent {agent}: {what}: nothing to do")
    note = f"alert {alertname}{f' ({signal})' if signal else ''}: policy on_alarm={policy.on_alarm}"
    if policy.on_alarm == "freeze":
        return freeze(led, agent, note=note, origin=origin)
    alarms = [a for a in led.alarms(agent=agent) if signal is None or a.signal == signal]
    if not alarms:
        raise GuardError(f"agent {agent!r} has no drift alarm{f' on {signal}' if signal else ''} in the ledger yet")
    alarm = alarms[-1]
    mark = f"alarm {alarm.id[:12]} "
    if any(a.action == "rolled_back" and mark in a.reason for a in led.guard_actions(agent=agent)):
        return Outcome(agent, "rollback", None,
                       f"agent {agent} was already rolled back for drift alarm {alarm.id[:12]}")
    return rollback(led, agent, alarm_id=alarm.id, note=note, origin=origin)
