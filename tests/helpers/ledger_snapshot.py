"""A snapshot of everything a guard command could write to a ledger (tests compare one before and after)."""

from __future__ import annotations

from typing import Any

from driftwatch.ledger import Ledger


def snapshot(led: Ledger) -> dict[str, Any]:
    """Changes and their statuses, heads, guard state, guard actions and queued commands."""
    changes = led.changes(baselines=True)
    return {"changes": [(c.id, c.status) for c in changes],
            "heads": {(c.agent, c.component): led.head(c.agent, c.component) for c in changes},
            "state": led.guard_state(), "actions": led.guard_actions(), "commands": led.commands()}
