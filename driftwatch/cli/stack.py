"""``driftwatch stack``: real Prometheus and Alertmanager with the shipped alert rules, against the demo.

    driftwatch stack [--duration 30] [--port 0] [--ledger driftwatch.db] [--report driftwatch-report.html]
    driftwatch stack --target 127.0.0.1:9464 [--target ...] [--duration 0]
                     [--rules grafana/alerts] [--webhook URL] [--shipped-timing]

Starts Prometheus and Alertmanager (the Debian packages ``prometheus`` and ``prometheus-alertmanager``;
see :mod:`driftwatch.stack`) on free loopback ports, with the shipped recording and alert rules
(``grafana/alerts/driftwatch_rules.yaml`` and ``driftwatch_alerts.yaml``), and prints their URLs.
Without ``--target`` it runs ``driftwatch demo`` in this process (plain lines) and Prometheus scrapes
its ``/metrics``; with ``--target`` it scrapes the given ``host:port`` endpoints (job ``driftwatch``)
for ``--duration`` seconds (0: until Ctrl-C). Every alert's state as Prometheus sees it (pending,
firing, resolved) and every alert Alertmanager receives is printed as it happens, then a list of the
alerts that fired.

With the demo, its ``qa-program`` (the DSPy program COPRO tunes) has the guard policy ``on_alarm="rollback"`` and
Alertmanager routes ``DriftwatchBehaviorDrift`` to an in-process guard receiver (``driftwatch guard``, on a loopback
port with a random token): when the tuned program drifts, the alert rolls it back and the alarm clears once the
rolled-back behaviour is confirmed (``--no-guard``: page only).

Timing: the shipped rules are evaluated every minute and most alerts wait ``for:`` 1–15 minutes, so
by default the rules run every second with ``for: 0s`` (nothing else is changed) so that a half-minute
demo pages; ``--shipped-timing`` keeps them as shipped (expect nothing to fire for minutes). Alertmanager
sends no notification unless ``--webhook URL`` is given (a webhook receiver, ``group_wait: 0s``).
Missing binaries end in one line naming the packages to install, and exit status 1; Ctrl-C stops
cleanly (exit status 130).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driftwatch.cli._common import EXIT_INTERRUPTED, CLIError, check_port
from driftwatch.cli.webhook import GuardReceiver, serve
from driftwatch.demo import Demo, DemoError, Display, print_summary
from driftwatch.ledger import open_ledger
from driftwatch.stack import (
    ALERTMANAGER_BINARIES,
    PROMETHEUS_BINARIES,
    AlertWatcher,
    Stack,
    StackError,
    alertmanager_config,
    check_rules,
    default_rules_dir,
    describe,
    find_binary,
    poll,
    rule_files,
    with_guard,
)

__all__ = ["cmd_stack", "register"]

JOB = "driftwatch"
DEFAULT_STACK_DURATION = 30.0


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for ``condition`` (best effort: the command goes on either way)."""
    with contextlib.suppress(StackError):
        poll(condition, timeout=timeout, what="a condition", interval=0.25)


def _targets(values: list[str]) -> list[str]:
    for t in values:
        host, _, port = t.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise CLIError(f"--target {t!r}: expected host:port, such as 127.0.0.1:9464")
    return values


def cmd_stack(args: argparse.Namespace) -> int:
    targets = _targets(args.target or [])
    if args.duration < 0 or (not targets and args.duration == 0):
        raise CLIError(f"--duration {args.duration:g}: expected seconds > 0 (0 only with --target: until Ctrl-C)")
    if args.webhook and not args.webhook.startswith(("http://", "https://")):
        raise CLIError(f"--webhook {args.webhook!r}: expected an http:// or https:// URL")
    try:
        find_binary(PROMETHEUS_BINARIES)
        find_binary(ALERTMANAGER_BINARIES)
    except StackError as exc:
        raise CLIError(str(exc)) from None
    rules_dir = Path(args.rules) if args.rules else default_rules_dir()
    try:
        check_rules(rules_dir)
    except StackError as exc:
        raise CLIError(str(exc)) from None

    def write(line: str) -> None:
        print(line, flush=True)

    demo = None
    guard = None
    if not targets:
        check_port(args.port)

        try:
            demo = Demo(duration=args.duration or DEFAULT_STACK_DURATION, ledger=args.ledger,
                        report=args.report or None, guard=not args.no_guard)
            for line in demo.prepare():
                write(line)
            moved = demo.serve_metrics(args.port)
        except DemoError as exc:
            raise CLIError(str(exc)) from None
        if moved:
            write(moved)
        targets = [f"127.0.0.1:{demo.metrics_port}"]

    stack = None
    watcher = None
    interrupted = False
    try:
        try:
            routing = alertmanager_config(args.webhook)
            if demo is not None and demo.guard:
                guard = _Guard(demo.ledger, write)
                routing = with_guard(routing, guard.url, guard.token_file)
            with tempfile.TemporaryDirectory(prefix="driftwatch-rules-") as tmp:  # the Stack keeps its own copies
                rules = rule_files(rules_dir, Path(tmp), shipped_timing=args.shipped_timing)
                stack = Stack(targets=targets, rule_files=rules, alertmanager_config=routing, job=JOB)
            stack.start()
            write(f"prometheus    {stack.prometheus.url}   (alerts: {stack.prometheus.url}/alerts)")
            assert stack.alertmanager is not None
            write(f"alertmanager  {stack.alertmanager.url}")
            if demo is not None:
                write(f"demo          {demo.metrics_url}, ledger {demo.ledger}")
            if guard is not None:
                write(f"guard         {guard.url} (qa-program: on_alarm=rollback)")
            write(f"scraping      {', '.join(targets)} as job {JOB}; rules from {rules_dir}"
                  + (" as shipped" if args.shipped_timing else ", evaluated every 1 s with for: 0s"))
            stack.wait_until_scraping(timeout=30)
        except StackError as exc:
            raise CLIError(str(exc)) from None
        absent = stack.prometheus

        def scraped() -> bool:  # the rules saw the first scrape: DriftwatchMetricsAbsent has cleared
            return not any(a["labels"].get("alertname") == "DriftwatchMetricsAbsent" for a in absent.alerts())

        _wait(scraped, 15.0)
        watcher = AlertWatcher(stack, write)
        if demo is not None:
            interrupted = demo.run(_Started(watcher, Display(write)))
            if not interrupted:
                _settle(demo, watcher, args.shipped_timing)
            watcher.stop()
            summary = demo.finish(interrupted)
            print_summary(summary, write)
        else:
            watcher.start()
            try:
                if args.duration:
                    time.sleep(args.duration)
                else:
                    threading.Event().wait()
            except KeyboardInterrupt:
                interrupted = True
            watcher.stop()
        _report_fired(watcher, write)
    finally:
        if watcher is not None:
            watcher.stop()
        if stack is not None:
            stack.stop()
        if guard is not None:
            guard.close()
        if demo is not None:
            demo.close()
    return EXIT_INTERRUPTED if interrupted else 0


class _Guard:
    """The demo's guard receiver (``driftwatch guard``) on a loopback port, with a random token in a private file."""

    def __init__(self, ledger: str, write: Callable[[str], None]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="driftwatch-guard-")
        token = secrets.token_urlsafe(32)
        self.token_file = str(Path(self._dir.name) / "token")
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        self.ledger = open_ledger(ledger)
        self.server = serve(GuardReceiver(self.ledger, token, log=write))
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.ledger.close()
        self._dir.cleanup()


class _Started:
    """The demo's display, with the alert watcher started when the demo's traffic starts."""

    def __init__(self, watcher: AlertWatcher, display: Any) -> None:
        self.watcher = watcher
        self.display = display

    def __enter__(self) -> _Started:
        self.watcher.t0 = time.monotonic()
        self.watcher.start()
        self.display.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.display.__exit__(*exc)

    def event(self, e: Any) -> None:
        self.display.event(e)

    def update(self, demo: Any) -> None:
        self.display.update(demo)

    def close(self, demo: Any) -> None:
        self.display.close(demo)


def _settle(demo: Demo, watcher: AlertWatcher, shipped_timing: bool) -> None:
    """After the traffic: wait (up to 20 s) until each drift alarm of the ledger is a firing alert that
    Alertmanager received."""
    if shipped_timing:
        return
    from driftwatch.runtime import get_runtime

    alarms = {("DriftwatchBehaviorDrift", a.agent, a.signal) for a in get_runtime().ledger.alarms()}
    if not alarms:
        return

    def paged() -> bool:  # fired at some point (a rolled-back agent's alert resolves again), and received
        fired = {(d.get("alertname", ""), d.get("agent", ""), d.get("signal", "")) for d in map(dict, watcher.fired)}
        return alarms <= fired and alarms <= {key for _, key in watcher.received.values()}

    _wait(paged, 20.0)


def _report_fired(watcher: AlertWatcher, write: Callable[[str], None]) -> None:
    write("")
    if not watcher.fired:
        write("no alert fired")
        return
    write("alerts that fired:")
    for key, at in sorted(watcher.fired.items(), key=lambda kv: kv[1]):
        write(f"  {at:5.1f}s  {describe(dict(key))}")
    write(f"alertmanager received {len(watcher.received)} alert(s)")


def register(sub: Any) -> None:
    """Add ``driftwatch stack`` to the CLI's subcommands."""
    s = sub.add_parser("stack", help="run local Prometheus and Alertmanager with the shipped rules against the demo "
                                     "(or --target) and print the alerts that fire")
    s.add_argument("--target", action="append", metavar="HOST:PORT",
                   help="scrape this /metrics endpoint instead of running the demo (repeatable)")
    s.add_argument("--duration", type=float, default=DEFAULT_STACK_DURATION,
                   help=f"seconds of demo traffic, or of watching --target (default: {DEFAULT_STACK_DURATION:g}; "
                        "0 with --target: until Ctrl-C)")
    s.add_argument("--port", type=int, default=0, help="port for the demo's /metrics (default: any free port)")
    s.add_argument("--ledger", default="driftwatch.db", help="the demo's ledger file (default: ./driftwatch.db)")
    s.add_argument("--report", default="driftwatch-report.html",
                   help="the demo's HTML report (default: ./driftwatch-report.html)")
    s.add_argument("--rules", metavar="DIR", help="directory with driftwatch_rules.yaml and driftwatch_alerts.yaml "
                                                  "(default: grafana/alerts of this source tree)")
    s.add_argument("--webhook", metavar="URL", help="Alertmanager sends each alert to this webhook")
    s.add_argument("--no-guard", action="store_true",
                   help="the demo's alerts only page (default: qa-program's drift alert rolls it back)")
    s.add_argument("--shipped-timing", action="store_true",
                   help="keep the rules' 1m evaluation and for: windows (nothing fires for minutes)")
    s.set_defaults(func=cmd_stack)

