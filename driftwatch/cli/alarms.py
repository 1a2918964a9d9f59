"""``driftwatch accept AGENT`` and ``driftwatch reset AGENT``: act on drift alarms of running processes.

A shell cannot call into a running agent, so the command is queued in the ledger
(``drift_commands``); every process watching the agent polls that table every
``DRIFTWATCH_DRIFT_POLL_S`` seconds (default 2) on its call path and applies new commands.
"""

from __future__ import annotations

import argparse
from typing import Any

from driftwatch.cli._common import LEDGER_HELP, CLIError, open_for_writing
from driftwatch.config import Settings

__all__ = ["cmd_accept_or_reset", "register"]

_HELP = {
    "accept": "accept an agent's current behaviour: unlatch its drift alarms and make its recent calls the reference",
    "reset": "unlatch an agent's drift alarms and restart its detector against the same reference",
}


def cmd_accept_or_reset(args: argparse.Namespace) -> int:
    agent = "*" if args.all else args.agent
    if not agent:
        raise CLIError(f"{args.command}: name an AGENT or pass --all")
    ledger = open_for_writing(args)
    try:
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
