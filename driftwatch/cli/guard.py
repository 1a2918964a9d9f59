"""``driftwatch freeze|unfreeze AGENT``, ``driftwatch rollback AGENT [--to REVISION]``, ``driftwatch approve|reject
CHANGE_ID``: act on the self-tuning of running agents (:mod:`driftwatch.guardrails.commands`).

Like ``accept``/``reset``, a command is written to the ledger (the facts in ``guard_state``, the action in
``guard_actions``, the command in ``drift_commands``) and every process watching the agent applies it at its
next call after at most ``DRIFTWATCH_DRIFT_POLL_S`` seconds (default 2). Bad input (an unknown agent, change or
revision, another agent's revision, a change that is not held) is one line and changes nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from driftwatch.cli._common import LEDGER_HELP, CLIError, open_for_writing
from driftwatch.config import Settings
from driftwatch.guardrails.commands import GuardError, Outcome, approve, freeze, origin_of, reject, rollback, unfreeze

__all__ = ["cmd_guard_command", "register"]

_HELP = {
    "freeze": "freeze an agent's self-tuning: it keeps serving its current revisions, further self-modifications "
              "are blocked",
    "unfreeze": "let a frozen agent tune itself again",
    "rollback": "roll an agent back to the revisions before the change behind its latest drift alarm "
                "(or to --to REVISION)",
    "approve": "approve a change held for approval: every process of its agent switches to it",
    "reject": "reject a change held for approval: the previous revision keeps serving",
}


def _report(outcome: Outcome) -> int:
    if not outcome.queued:
        print(outcome.message)
        return 0
    poll = Settings.from_env().drift_poll_s
    print(f"{outcome.message} (command {outcome.command_id}); running processes apply it at their next call after "
          f"at most {poll:g} s")
    return 0


def cmd_guard_command(args: argparse.Namespace) -> int:
    note = args.note or ""
    origin = origin_of("cli")
    ledger = open_for_writing(args)
    try:
        if args.command == "freeze":
            outcome = freeze(ledger, args.agent, note=note, origin=origin)
        elif args.command == "unfreeze":
            outcome = unfreeze(ledger, args.agent, note=note, origin=origin)
        elif args.command == "rollback":
            outcome = rollback(ledger, args.agent, to=args.to, component=args.component, alarm_id=args.alarm,
                               note=note, origin=origin)
        elif args.command == "approve":
            outcome = approve(ledger, args.change_id, note=note, origin=origin)
        else:
            outcome = reject(ledger, args.change_id, note=note, origin=origin)
    except GuardError as exc:
        raise CLIError(str(exc)) from None
    finally:
        ledger.close()
    return _report(outcome)


def register(sub: Any) -> None:
    """Add ``freeze``, ``unfreeze``, ``rollback``, ``approve`` and ``reject`` to the CLI's subcommands."""
    for name in ("freeze", "unfreeze", "rollback", "approve", "reject"):
        p = sub.add_parser(name, help=_HELP[name], description=_HELP[name] + ".")
        if name in ("approve", "reject"):
            p.add_argument("change_id", metavar="CHANGE_ID", help="the held change's id or a unique prefix (4+ "
                                                                  "characters; driftwatch history --held)")
        else:
            p.add_argument("agent", metavar="AGENT", help="the agent name")
        if name == "rollback":
            p.add_argument("--to", metavar="REVISION", help="roll back to this revision of one component (an id or "
                                                            "a unique prefix of 6+ characters)")
            p.add_argument("--component", help="only this component")
            p.add_argument("--alarm", metavar="ALARM_ID", help="roll back from this drift alarm (default: the "
                                                                "agent's latest)")
        p.add_argument("--note", help="a note stored with the action")
        p.add_argument("--ledger", help=LEDGER_HELP)
        p.set_defaults(func=cmd_guard_command)
