"""The ``driftwatch`` command: read the ledger (history, show, report), act on drift alarms (accept, reset), guard
self-tuning (freeze, unfreeze, rollback, approve, reject, and the alert receiver ``guard``), and run the demo and a
local Prometheus + Alertmanager stack.

Every failure a user can cause — a missing or corrupt ledger, an unknown change id, a bad option or
``DRIFTWATCH_*`` value — ends in one line on stderr and a non-zero exit, never a traceback.

Each command group is a module here with a ``register(subparsers)`` function (listed in
:data:`COMMAND_MODULES`); what they share (``CLIError``, opening the ledger, time parsing) is in
``driftwatch.cli._common``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from driftwatch._version import __version__
from driftwatch.cli import alarms, demo, guard, history, report, stack, webhook
from driftwatch.cli._common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, CLIError
from driftwatch.config import ConfigError, Settings
from driftwatch.ledger import LedgerError, scrub

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

#: the command groups, in the order ``driftwatch --help`` lists them
COMMAND_MODULES = (history, report, alarms, guard, webhook, demo, stack)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # argparse's own signature
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="driftwatch", description="Inspect the self-modifications recorded by driftwatch.")
    parser.add_argument("--version", action="version", version=f"driftwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        Settings.from_env()  # a bad DRIFTWATCH_* value is reported before anything runs
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `driftwatch history | head`
        return 0
    except (CLIError, LedgerError, ConfigError, OSError) as exc:
        # any URL in the message masked, and the ledger's password wherever a driver quoted it
        text = scrub(str(exc), getattr(args, "ledger", None), os.environ.get("DRIFTWATCH_LEDGER"))
        print(f"driftwatch: error: {text}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("driftwatch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
