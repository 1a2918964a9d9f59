"""``driftwatch accept AGENT`` and ``driftwatch reset AGENT``: act on drift alarms of running processes.

A shell cannot call into a running agent, so the command is queued in the ledger
(``drift_commands``); every process watching the agent polls that table every
``DRIFTWATCH_DRIFT_POLL_S`` seconds (default 2) on its call path and applies new commands.

An agent the ledger knows nothing of (no change or baseline, run, alarm or call window: most likely a typo)
gets nothing queued: one line on stderr names the agents it knows, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from driftwatch.cli._common import LEDGER_HELP, CLIError, open_for_writing
from driftwatch.config import Settings
from driftwatch.ledger import Ledger

__all__ = ["cmd_accept_or_reset", "register"]

_HELP = {
    "accept": "accept an agent's current behaviour: unlatch its drift alarms and make its recent calls the reference",
    "reset": "unlatch an agent's drift alarms and restart its detector against the same reference",
}


#: how far back call windows are searched for an agent that has no change, run or alarm
_WINDOWS_LOOKBACK_S = 30 * 86400.0
_NAMES_SHOWN = 8


def _knows(ledger: Ledger, agent: str) -> bool:
    """Whether the ledger holds anything of ``agent`` (the cheap reads first)."""
    return bool(ledger.changes(agent=agent, baselines=True, limit=1) or ledger.runs(agent=agent, limit=1)
                or ledger.alarms(agent=agent, limit=1)
                or ledger.windows(agent=agent, since=time.time() - _WINDOWS_LOOKBACK_S))


def _known_agents(ledger: Ledger) -> list[str]:
    return sorted({c.agent for c in ledger.changes(baselines=True)} | {r.agent for r in ledger.runs()})


def cmd_accept_or_reset(args: argparse.Namespace) -> int:
    agent = "*" if args.all else args.agent
    if not agent:
        raise CLIError(f"{args.command}: name an AGENT or pass --all")
    ledger = open_for_writing(args)
    try:
        if agent != "*" and not _knows(ledger, agent):
            known = _known_agents(ledger)
            listed = ", ".join(known[:_NAMES_SHOWN]) + (f" (+{len(known) - _NAMES_SHOWN} more)"
                                                         if len(known) > _NAMES_SHOWN else "")
            raise CLIError(f"{args.command}: no agent {agent!r} in the ledger {ledger.location}"
                           f" (agents: {listed or 'none yet'}); nothing queued")
        cid = ledger.record_command(agent, args.command, args.note or "")
    finally:
        ledger.close()
    poll = Settings.from_env().drift_poll_s
    who = "every agent" if agent == "*" else f"agent {agent}"
    print(f"{args.command} queued for {who} (command {cid}); running processes apply it at their next call "
          f"after at most {poll:g} s")
    return 0


def register(sub: Any) -> None:
    """Add ``driftwatch accept`` and ``driftwatch reset`` to the CLI's subcommands."""
    for name in ("accept", "reset"):
        p = sub.add_parser(name, help=_HELP[name], description=_HELP[name] + ".")
        p.add_argument("agent", metavar="AGENT", nargs="?", help="the agent name")
        p.add_argument("--all", action="store_true", help="every agent")
        p.add_argument("--note", help="a note stored with the command")
        p.add_argument("--ledger", help=LEDGER_HELP)
        p.set_defaults(func=cmd_accept_or_reset)
