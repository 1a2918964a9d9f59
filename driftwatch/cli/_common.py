"""What the commands share: :class:`CLIError`, exit codes, the ``--ledger`` option and opening the ledger,
``--since`` parsing, time formatting and ``--port`` checking."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import time

from driftwatch.config import Settings
from driftwatch.ledger import DEFAULT_PATH, Ledger, open_ledger, parse_location

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "LEDGER_HELP",
    "CLIError",
    "check_port",
    "fmt_time",
    "ledger_location",
    "open_for_reading",
    "open_for_writing",
    "parse_time",
]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: the help of every command's ``--ledger`` option
LEDGER_HELP = f"ledger path or URL (default: $DRIFTWATCH_LEDGER or ./{DEFAULT_PATH})"

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class CLIError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def ledger_location(args: argparse.Namespace) -> str:
    """``--ledger``, else ``DRIFTWATCH_LEDGER``, else the default path."""
    return args.ledger or Settings.from_env().ledger


def open_for_reading(args: argparse.Namespace) -> Ledger:
    """The ledger ``--ledger`` names, opened read-only (a missing file is an error, never created)."""
    return open_ledger(ledger_location(args), readonly=True)


def open_for_writing(args: argparse.Namespace) -> Ledger:
    """The ledger of the watched processes, for writing; a SQLite file must exist already (a typo in
    ``--ledger`` must not queue commands in a new, empty ledger nobody reads)."""
    location = ledger_location(args)
    where = parse_location(location)
    if where.is_file and not os.path.exists(where.target):
        raise CLIError(f"no ledger at {where.target} (set --ledger or DRIFTWATCH_LEDGER to the watched processes' "
                       "ledger)")
    return open_ledger(location)


def parse_time(text: str) -> float:
    """``30m``/``2h``/``7d`` ago, or an ISO date/time (local time unless it names a zone)."""
    m = _DURATION.match(text.strip())
    if m:
        return time.time() - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return dt.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise CLIError(
            f"--since {text!r}: expected a duration like 30m, 2h, 7d or a date like 2026-11-25T10:00") from None


def fmt_time(ts: float) -> str:
    """A timestamp as local ``YYYY-MM-DD HH:MM:SS``."""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def check_port(port: int) -> None:
    """``--port`` must be a TCP port number (0: any free port)."""
    if not 0 <= port <= 65535:
        raise CLIError(f"--port {port}: expected a port number from 0 to 65535")
