"""``driftwatch report``: write the self-contained HTML report (:mod:`driftwatch.report`) of a ledger.

    driftwatch report --out report.html [--ledger driftwatch.db] [--agent bot] [--since 2h]
                      [--prometheus http://127.0.0.1:9090] [--no-diffs]
"""

from __future__ import annotations

import argparse
from typing import Any

from driftwatch.cli._common import LEDGER_HELP, CLIError, open_for_reading, parse_time
from driftwatch.config import Settings
from driftwatch.report import DEFAULT_LIMIT, PrometheusSource, ReportError, write_report

__all__ = ["cmd_report", "register"]


def cmd_report(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise CLIError(f"--limit {args.limit}: expected a whole number >= 0")
    since = parse_time(args.since) if args.since else None
    prometheus = None
    if args.prometheus:
        try:
            prometheus = PrometheusSource(args.prometheus, rate_window=args.rate_window)
            prometheus.check()
        except ReportError as exc:
            raise CLIError(str(exc)) from None
    ledger = open_for_reading(args)
    try:
        size = write_report(args.out, ledger, agent=args.agent, since=since, prometheus=prometheus,
                            diffs=not args.no_diffs, limit=args.limit, file_mode=Settings.from_env().file_mode)
    except ReportError as exc:
        raise CLIError(str(exc)) from None
    finally:
        ledger.close()
        if prometheus is not None:
            prometheus.close()
    print(f"wrote {args.out} ({size:,} bytes)")
    return 0


def register(sub: Any) -> None:
    """Add ``driftwatch report`` to the CLI's subcommands."""
    r = sub.add_parser("report", help="write a self-contained HTML report of changes, alarms and behaviour")
    r.add_argument("--out", default="report.html", help="output file (default: report.html)")
    r.add_argument("--ledger", help=LEDGER_HELP)
    r.add_argument("--agent", help="only this agent")
    r.add_argument("--since", help="only entries since a duration ago (30m, 2h, 7d) or a date")
    r.add_argument("--prometheus", metavar="URL", help="also plot signals queried from this Prometheus server")
    r.add_argument("--rate-window", default="1m", help="PromQL rate() window for --prometheus (default: 1m)")
    r.add_argument("--no-diffs", action="store_true", help="leave the diffs (prompt text) out of the page")
    r.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                   help=f"detailed sections for the last N changes (default: {DEFAULT_LIMIT})")
    r.set_defaults(func=cmd_report)
