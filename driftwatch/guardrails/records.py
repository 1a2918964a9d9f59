"""The guard's records: what the ledger keeps of it.

- :class:`GuardAction` — one thing a guard did (a change blocked or held, a change approved or rejected, an
  agent frozen, unfrozen or rolled back, the rolled-back behaviour confirmed): a row of ``guard_actions``,
  a line in ``driftwatch history``;
- :class:`StateRow` — one fact of an agent's guard state (``guard_state``), which every watched process reads:
  ``frozen``; ``pin`` (a component must serve this revision); ``approved`` / ``rejected`` (a revision a
  change may / may not move a component to); ``held`` (a revision waiting for approval; ``note`` is the change
  id); ``policy`` (the agent's policy, published by its processes for the alert receiver);
- :class:`GuardUpdate` — everything one operator command writes, in one transaction, ending with the command
  queued for the running processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from driftwatch.change import Change

__all__ = ["ACTIONS", "COMMANDS", "STATE_KINDS", "GuardAction", "GuardUpdate", "StateRow"]

#: the bounded values of the ``action`` label of ``driftwatch_guard_actions_total``
ACTIONS: tuple[str, ...] = ("blocked", "held", "approved", "rejected", "rolled_back", "frozen", "unfrozen",
                            "confirmed")
#: the operator commands queued for running processes (beside the drift engine's ``accept`` / ``reset``)
COMMANDS: tuple[str, ...] = ("freeze", "unfreeze", "rollback", "approve", "reject")
#: what a :class:`StateRow` may say
STATE_KINDS: tuple[str, ...] = ("frozen", "pin", "approved", "rejected", "held", "policy")


@dataclass(frozen=True, slots=True)
class GuardAction:
    """One thing a guard did. ``origin``: who asked (``cli``, ``alert``, ``policy``, or the process that
    decided, ``host:pid``)."""

    id: str
    agent: str
    action: str
    timestamp: float
    component: str = ""
    change_id: str | None = None
    revision_id: str | None = None
    reason: str = ""
    origin: str = ""


@dataclass(frozen=True, slots=True)
class StateRow:
    """One fact of an agent's guard state (see the module's docstring)."""

    agent: str
    what: str
    component: str = ""
    revision_id: str = ""
    note: str = ""
    timestamp: float = 0.0


@dataclass
class GuardUpdate:
    """One operator command's facts, written in one transaction (``Ledger.record_guard_update``), the command
    queued last: a process that reads the command finds the state it announces.

    ``delete``: ``(what, component or None for all, revision id or None for all)`` of the agent's state rows;
    ``statuses``: ``(component, after revision, from status, to status)`` of the agent's changes;
    ``heads``: ``(component, revision)`` moved without a change row (an approved change's).
    """

    agent: str
    command: str
    note: str = ""
    put: list[StateRow] = field(default_factory=list)
    delete: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    statuses: list[tuple[str, str, str, str]] = field(default_factory=list)
    heads: list[tuple[str, str]] = field(default_factory=list)
    actions: list[GuardAction] = field(default_factory=list)
