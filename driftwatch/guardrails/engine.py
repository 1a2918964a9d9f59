"""The guard of one watched process: its view of every agent's guard state, the decision on each change, and the
one poller of operator commands.

The runtime asks :meth:`Guard.decide` about every change it is about to record (not baselines, not the
guard's own): a change is **allowed**, **blocked** (the agent is frozen, the revision was rolled back from or
rejected, or the agent is past its ``max_rate``) or **held** (its kind needs approval and this revision was
not approved). The runtime records a blocked or held change with that status, leaves the component's head,
metrics and drift reference where they were, and tells the hook, which enforces (see the integrations):
the component keeps serving the change's *before* revision, which the guard *pins*.

What every process of an agent must agree on lives in the ledger's ``guard_state`` (written by
:mod:`driftwatch.guardrails.commands` when an operator or an alert acts) and is read here: frozen agents;
pinned revisions (a rollback's targets, an approved change's revision); approved, rejected and held
revisions. The state is read once, at the first poll, and again for an agent whenever a guard command for it
is queued (``drift_commands``; :data:`~driftwatch.guardrails.records.COMMANDS`). The same poll hands the drift
engine's ``accept`` / ``reset`` to the host (and, after it, lets the drift engine pool its fleet evidence),
so a process reads the command queue once per ``drift_poll_s`` whatever it watches. A process that cannot
reach the ledger keeps the state it last read (and what it decided itself), and tries again at the next poll.

The per-call cost: :meth:`tick` in the hooks that enforce (a clock comparison — is a poll due? — and a dict
lookup of the agent's serial; the runtime's call path does the clock comparison too), and :meth:`pins` (a
dict lookup). Nothing else runs per call unless a component is pinned.

The guard knows nothing of the runtime: it is given a :class:`GuardHost`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from driftwatch.guardrails.records import COMMANDS, StateRow

if TYPE_CHECKING:
    from driftwatch.change import Change
    from driftwatch.guardrails.policy import GuardPolicy
    from driftwatch.ledger import Ledger

__all__ = ["ALLOW", "ChangeBlocked", "Decision", "Guard", "GuardHost", "Pin"]

#: sources whose changes the guard never refuses: a person's (``restore()``), the guard's own
EXEMPT_SOURCES = frozenset({"manual", "guard"})


@dataclass(frozen=True, slots=True)
class Decision:
    """What the guard says about a change: ``allow``, ``block`` or ``hold``; ``serve`` is the revision the
    component keeps serving when it is not allowed. Truthy when allowed."""

    action: str
    reason: str = ""
    serve: str | None = None

    @property
    def allowed(self) -> bool:
        return self.action == "allow"

    @property
    def status(self) -> str:
        """The change's status (:data:`driftwatch.change.STATUSES`) under this decision."""
        return {"allow": "applied", "block": "blocked", "hold": "held"}[self.action]

    def __bool__(self) -> bool:
        return self.action == "allow"


ALLOW = Decision("allow")


class ChangeBlocked(Exception):  # noqa: N818  # reads as what happened: ``except ChangeBlocked``
    """Raised by ``driftwatch.track(..., enforce=True)`` when a guard blocked or held the reported change.

    ``change`` is the change as recorded (``status`` ``blocked`` or ``held``; ``None`` when the same attempt
    was recorded before), ``reason`` says why, ``serving`` is the revision the component keeps serving and
    ``serving_state`` its state (what the caller should go on using).
    """

    def __init__(self, agent: str, component: str, reason: str, serving: str | None, serving_state: Any,
                 change: Change | None = None) -> None:
        action = "held for approval" if change is not None and change.status == "held" else "blocked"
        super().__init__(f"driftwatch: change of {agent}/{component} {action}: {reason}; it keeps serving revision "
                         f"{(serving or '-')[:12]}")
        self.agent = agent
        self.component = component
        self.reason = reason
        self.serving = serving
        self.serving_state = serving_state
        self.change = change


@dataclass(frozen=True, slots=True)
class Pin:
    """A component must serve ``revision_id`` (its ``state``, as recorded). ``shared``: every process of the
    agent pins it (a rollback's or an approval's, from the ledger); otherwise this process pinned it when it
    blocked or held a change."""

    revision_id: str
    state: Any
    reason: str
    shared: bool = False


class GuardHost(Protocol):
    """What the guard needs from its owner (the runtime)."""

    def policy_of(self, agent: str) -> GuardPolicy | None:
        """The agent's guard policy (code, then ``DRIFTWATCH_GUARD``), or ``None``."""

    def guard_ledger(self) -> Ledger | None:
        """The ledger, or ``None`` while it is unavailable."""

    def revision_state(self, revision_id: str) -> Any:
        """A stored revision's state (``None`` when unknown or unavailable)."""

    def adopt(self, agent: str, component: str, revision_id: str, state: Any) -> None:
        """The component now serves ``revision_id`` by the guard's doing: no change to record."""

    def forget_keys(self, agent: str) -> None:
        """Make the agent's trackers fingerprint their next observation in full."""

    def guard_command(self, agent: str, action: str, payload: Mapping[str, Any]) -> None:
        """A guard command was applied here (count it; a rollback restarts the drift reference)."""

    def operator_command(self, agent: str, action: str) -> None:
        """A command that is not the guard's (the drift engine's ``accept`` / ``reset``)."""

    def polled(self, ledger: Ledger) -> None:
        """After each poll that reached the ledger (the drift engine pools its fleet evidence here)."""

    def publish_policies(self) -> None:
        """Write the agents' policies to the ledger (for the alert receiver), through the write queue."""

    def error(self, stage: str, exc: BaseException) -> None:
        """Count an error inside driftwatch."""


class _Agent:
    """One agent's guard state in this process."""

    __slots__ = ("approved", "frozen", "held", "pins", "recent", "rejected", "serial")

    def __init__(self) -> None:
        self.frozen = False
        self.pins: dict[str, Pin] = {}
        self.rejected: dict[str, set[str]] = {}
        self.approved: dict[str, set[str]] = {}
        self.held: dict[tuple[str, str], str] = {}  # (component, revision) -> change id
        self.recent: deque[tuple[float, str]] = deque()  # (time, run or change id) of allowed self-modifications
        self.serial = 0

    def empty(self) -> bool:
        return not (self.frozen or self.pins or self.rejected or self.approved or self.held or self.recent)


class Guard:
    """The guard state and decisions of one process (see the module's docstring). ``poll_s``: seconds between
    polls of the command queue (0: never poll)."""

    def __init__(self, host: GuardHost, *, poll_s: float = 2.0) -> None:
        self.host = host
        self.poll_s = poll_s
        #: agents with any guard state, by name (the hot path looks here)
        self._agents: dict[str, _Agent] = {}
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._started = time.time()
        self._cmd_after = 0
        self._loaded = False
        #: monotonic time of the next poll (the call path compares it with the clock)
        self.next_poll = 0.0 if poll_s > 0 else float("inf")

    # -- the hot path --------------------------------------------------------------------------------
    def pins(self, agent: str) -> Mapping[str, Pin] | None:
        """The agent's pinned components, or ``None`` (the usual case: nothing pinned)."""
        st = self._agents.get(agent)
        return st.pins if st is not None and st.pins else None

    def serial(self, agent: str) -> int:
        """A number that changes whenever the agent's pins change (hooks re-enforce when it moves)."""
        st = self._agents.get(agent)
        return 0 if st is None else st.serial

    def tick(self, agent: str) -> int:
        """A hook's per-call check: poll the command queue when a poll is due, then the agent's :meth:`serial`."""
        if time.monotonic() >= self.next_poll:
            self.poll()
        st = self._agents.get(agent)
        return 0 if st is None else st.serial

    def frozen(self, agent: str) -> bool:
        st = self._agents.get(agent)
        return st is not None and st.frozen

    def touch(self, agent: str) -> None:
        """Move the agent's :meth:`serial`: hooks drop what they cached and look again."""
        with self._lock:
            st = self._agents.get(agent)
            if st is None:
                st = self._agents[agent] = _Agent()
            st.serial += 1

    def poll_if_due(self) -> None:
        if time.monotonic() >= self.next_poll:
            self.poll()

    # -- decisions ----------------------------------------------------------------------------------
    def decide(self, change: Change) -> Decision:
        """Allow, block or hold a change (see the module's docstring); the state is not updated: call
        :meth:`note` with the decision once the change is recorded."""
        if change.is_baseline or change.source in EXEMPT_SOURCES:
            return ALLOW
        if not self._loaded:
            self.poll()
        return self.check(change.agent, change.component, change.after_id, kind=change.kind,
                          before=change.before_id)

    def check(self, agent: str, component: str, revision_id: str | None, *, kind: str | None = None,
              before: str | None = None) -> Decision:
        """What :meth:`decide` would say about ``component`` moving to ``revision_id`` (``None``: any new
        revision), without recording anything."""
        st = self._agents.get(agent)
        policy = self.host.policy_of(agent)
        if st is None and policy is None:
            return ALLOW
        serve = before
        if st is not None:
            pin = st.pins.get(component)
            if pin is not None and serve is None:
                serve = pin.revision_id
            if st.frozen:
                return Decision("block", "the agent is frozen", serve)
            if revision_id is not None and revision_id in st.rejected.get(component, ()):
                return Decision("block", f"revision {revision_id[:12]} was rolled back or rejected", serve)
        if policy is None:
            return ALLOW
        if kind is not None and kind in policy.approve and (
                revision_id is None or st is None or revision_id not in st.approved.get(component, ())):
            return Decision("hold", f"a {kind} change needs approval (driftwatch approve)", serve)
        if policy.max_changes is not None and st is not None:
            with self._lock:
                recent = self._recent(st, policy.window_s)
            if recent >= policy.max_changes:
                return Decision("block", f"past the rate limit of {policy.rate} self-modifications", serve)
        return ALLOW

    @staticmethod
    def _recent(st: _Agent, window_s: float) -> int:
        horizon = time.time() - window_s
        while st.recent and st.recent[0][0] < horizon:
            st.recent.popleft()
        return len(st.recent)

    def note(self, change: Change, decision: Decision) -> bool:
        """Update the state with a recorded change and its decision; returns whether a shared pin of the
        component was released (the caller clears it in the ledger too)."""
        if change.is_baseline:
            return False
        agent = change.agent
        with self._lock:
            st = self._agents.get(agent)
            if decision.allowed:
                if change.source == "guard":
                    return False
                policy = self.host.policy_of(agent)
                if st is None and (policy is None or policy.max_changes is None):
                    return False
                if st is None:
                    st = self._agents[agent] = _Agent()
                if change.source not in EXEMPT_SOURCES:
                    key = change.run_id or change.id
                    if not st.recent or st.recent[-1][1] != key:
                        st.recent.append((change.timestamp or time.time(), key))
                pin = st.pins.pop(change.component, None)  # the agent moved on, allowed: nothing to enforce
                if pin is not None:
                    st.serial += 1
                return pin is not None and pin.shared
            if st is None:
                st = self._agents[agent] = _Agent()
            serve = decision.serve or change.before_id
            if serve is not None and change.component not in st.pins:
                st.pins[change.component] = Pin(serve, change.before_state, decision.reason)
                st.serial += 1
            if decision.action == "hold":
                st.held[(change.component, change.after_id)] = change.id
            return False

    def held(self, agent: str) -> dict[tuple[str, str], str]:
        """The agent's held revisions known here: ``{(component, revision): change id}``."""
        st = self._agents.get(agent)
        return dict(st.held) if st is not None else {}

    @property
    def loaded(self) -> bool:
        """Whether the ledger's guard state was read (at the first poll that reached the ledger)."""
        return self._loaded

    def agents(self) -> list[str]:
        """Agents with guard state in this process."""
        return sorted(a for a, st in self._agents.items() if not st.empty())

    # -- the poller -----------------------------------------------------------------------------------
    def poll(self) -> int:
        """Read the command queue (and, the first time, every agent's guard state); apply what is new.
        Returns the number of commands read. Never raises (errors are counted, retried at the next poll)."""
        if not self._poll_lock.acquire(blocking=False):
            return 0
        try:
            self.next_poll = time.monotonic() + self.poll_s if self.poll_s > 0 else float("inf")
            led = self.host.guard_ledger()
            if led is None:
                return 0
            if not self._loaded:
                try:
                    self.host.publish_policies()
                except Exception as exc:  # noqa: BLE001  # the alert receiver lacks the policy: counted
                    self.host.error("guard", exc)
            try:
                if not self._loaded:
                    rows = led.guard_state()
                    self._apply_rows(rows, {r.agent for r in rows})
                    self._loaded = True
                commands = led.commands(after=self._cmd_after, since=self._started)
            except Exception as exc:  # noqa: BLE001  # a ledger hiccup: retried at the next poll
                self.host.error("guard", exc)
                return 0
            guard_commands: dict[str, list[tuple[int, str]]] = {}
            for cid, agent, action, _ts in commands:
                self._cmd_after = max(self._cmd_after, cid)
                if action in COMMANDS:
                    guard_commands.setdefault(agent, []).append((cid, action))
                else:
                    try:
                        self.host.operator_command(agent, action)
                    except Exception as exc:  # noqa: BLE001  # the other commands still apply
                        self.host.error("guard", exc)
            for agent, todo in guard_commands.items():
                try:
                    self._apply_rows(led.guard_state(agent), {agent})
                    for cid, action in todo:
                        payload = _payload(led.command_note(cid))
                        self._after_command(agent, action, payload)
                except Exception as exc:  # noqa: BLE001  # the state is read again at the next command
                    self.host.error("guard", exc)
            try:
                self.host.polled(led)
            except Exception as exc:  # noqa: BLE001  # retried at the next poll
                self.host.error("drift", exc)
            return len(commands)
        finally:
            self._poll_lock.release()

    def _apply_rows(self, rows: list[StateRow], agents: set[str]) -> None:
        """Replace the shared part of ``agents``' state with the ledger's ``rows``; adopt new shared pins."""
        by_agent: dict[str, list[StateRow]] = {a: [] for a in agents}
        for row in rows:
            by_agent.setdefault(row.agent, []).append(row)
        adopted: list[tuple[str, str, str, Any]] = []
        released: set[str] = set()
        with self._lock:
            for agent, agent_rows in by_agent.items():
                st = self._agents.get(agent) or _Agent()
                frozen = False
                shared: dict[str, tuple[str, str]] = {}
                rejected: dict[str, set[str]] = {}
                approved: dict[str, set[str]] = {}
                held: dict[tuple[str, str], str] = {}
                for row in agent_rows:
                    if row.what == "frozen":
                        frozen = True
                    elif row.what == "pin":
                        shared[row.component] = (row.revision_id, row.note)
                    elif row.what == "rejected":
                        rejected.setdefault(row.component, set()).add(row.revision_id)
                    elif row.what == "approved":
                        approved.setdefault(row.component, set()).add(row.revision_id)
                    elif row.what == "held":
                        held[(row.component, row.revision_id)] = row.note
                # a hold decided here whose ledger row is not written yet stays, unless decided since
                for (component, revision), change_id in st.held.items():
                    if (component, revision) not in held and revision not in approved.get(component, ()) \
                            and revision not in rejected.get(component, ()):
                        held[(component, revision)] = change_id
                moved = frozen != st.frozen
                for component, pin in list(st.pins.items()):
                    if pin.shared and component not in shared:  # released (by an allowed change somewhere)
                        del st.pins[component]
                        released.add(agent)
                        moved = True
                for component, (revision, reason) in shared.items():
                    old = st.pins.get(component)
                    if old is not None and old.shared and old.revision_id == revision:
                        continue
                    state = self.host.revision_state(revision)
                    st.pins[component] = Pin(revision, state, reason or "pinned", shared=True)
                    adopted.append((agent, component, revision, state))
                    moved = True
                st.frozen, st.rejected, st.approved, st.held = frozen, rejected, approved, held
                if moved:
                    st.serial += 1
                self._agents[agent] = st
        for agent, component, revision, state in adopted:
            self.host.adopt(agent, component, revision, state)
        for agent in released:  # what the agent serves on its own is judged again
            self.host.forget_keys(agent)

    def _after_command(self, agent: str, action: str, payload: Mapping[str, Any]) -> None:
        if action == "unfreeze":
            with self._lock:
                st = self._agents.get(agent)
                if st is not None:
                    kept = {c: p for c, p in st.pins.items() if p.shared}
                    if len(kept) != len(st.pins):
                        st.pins = kept
                        st.serial += 1
            self.host.forget_keys(agent)  # the agent's own state is judged again, now unfrozen
        elif action == "approve":
            self.host.forget_keys(agent)
        self.host.guard_command(agent, action, payload)


def _payload(note: str) -> dict[str, Any]:
    try:
        data = json.loads(note) if note else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
