"""``driftwatch demo``: two self-tuning agents on the scripted model, watched live (:mod:`driftwatch.demo`).

    driftwatch demo [--duration 25] [--port 9464] [--ledger driftwatch.db]
                    [--report driftwatch-report.html] [--non-interactive]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from driftwatch.cli._common import EXIT_INTERRUPTED, CLIError, check_port
from driftwatch.demo import Demo, DemoError, Display, LiveDisplay, print_summary
from driftwatch.demo.scenario import DEFAULT_DURATION, DEFAULT_LEDGER, DEFAULT_PORT, DEFAULT_REPORT, MIN_DURATION

__all__ = ["cmd_demo", "register"]


def cmd_demo(args: argparse.Namespace) -> int:
    check_port(args.port)
    try:
        demo = Demo(duration=args.duration, ledger=args.ledger, report=args.report or None)
        notes = demo.prepare()
    except DemoError as exc:
        raise CLIError(str(exc)) from None
    live = not args.non_interactive and sys.stdout.isatty()
    for line in notes:
        print(line, flush=True)
    try:
        moved = demo.serve_metrics(args.port)
    except (OSError, ValueError) as exc:
        raise CLIError(f"--port {args.port}: {exc}") from None
    if moved:
        print(moved, flush=True)
    print(f"driftwatch demo: {demo.duration:g} s, /metrics at {demo.metrics_url}, ledger {demo.ledger}"
          + ("" if live else " (Ctrl-C stops early)"), flush=True)
    display: Display = LiveDisplay() if live else Display()
    try:
        interrupted = demo.run(display)
        summary = demo.finish(interrupted)
    finally:
        demo.close()
    print_summary(summary, lambda line: print(line, flush=True))
    for problem in demo.errors:
        print(f"driftwatch demo: {problem}", file=sys.stderr)
    if demo.errors:
        return 1
    return EXIT_INTERRUPTED if interrupted else 0


def register(sub: Any) -> None:
    """Add ``driftwatch demo`` to the CLI's subcommands."""
    d = sub.add_parser("demo", help="run two self-tuning agents on a scripted model and watch them drift, live")
    d.add_argument("--duration", type=float, default=DEFAULT_DURATION,
                   help=f"seconds of traffic (default: {DEFAULT_DURATION:g}; at least {MIN_DURATION:g})")
    d.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port for /metrics on 127.0.0.1 (default: {DEFAULT_PORT}; a free one if busy; 0: any)")
    d.add_argument("--ledger", default=DEFAULT_LEDGER,
                   help=f"ledger file, started fresh (default: ./{DEFAULT_LEDGER}; a previous demo's is replaced)")
    d.add_argument("--report", default=DEFAULT_REPORT, help=f"HTML report to write (default: ./{DEFAULT_REPORT})")
    d.add_argument("--non-interactive", action="store_true",
                   help="plain lines instead of the live display (also when stdout is not a terminal)")
    d.set_defaults(func=cmd_demo)
