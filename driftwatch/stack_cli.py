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

Timing: the shipped rules are evaluated every minute and most alerts wait ``for:`` 1–15 minutes, so
by default the rules run every second with ``for: 0s`` (nothing else is changed) so that a half-minute
demo pages; ``--shipped-timing`` keeps them as shipped (expect nothing to fire for minutes). Alertmanager
sends no notification unless ``--webhook URL`` is given (a webhook receiver, ``group_wait: 0s``).
Missing binaries end in one line naming the packages to install, and exit status 1; Ctrl-C stops
cleanly (exit status 130).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["AlertWatcher", "check_rules", "register", "rule_files"]

RULE_NAMES = ("driftwatch_rules.yaml", "driftwatch_alerts.yaml")
JOB = "driftwatch"
DEFAULT_STACK_DURATION = 30.0
EXIT_INTERRUPTED = 130
_SHOWN_LABELS = ("agent", "signal", "stage", "instance")


def default_rules_dir() -> Path:
    """``grafana/alerts`` of the source tree (a checkout or an editable install), else the copy a wheel
    installs under ``<prefix>/share/driftwatch/alerts`` (setup.cfg ``data_files``)."""
    source = Path(__file__).resolve().parents[1] / "grafana" / "alerts"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "driftwatch" / "alerts"


def check_rules(rules_dir: Path) -> list[Path]:
    """The two shipped rule files in ``rules_dir`` (a one-line ``CLIError`` when one is missing)."""
    from driftwatch.cli import CLIError

    paths = [rules_dir / name for name in RULE_NAMES]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise CLIError(f"--rules {rules_dir}: no {missing[0].name} there (a source checkout has grafana/alerts/); "
                       "pass --rules DIR")
    return paths


def rule_files(rules_dir: Path, dest: Path, *, shipped_timing: bool) -> list[Path]:
    """The shipped rule files copied to ``dest`` (evaluated every 1 s with ``for: 0s`` unless ``shipped_timing``)."""
    from driftwatch.cli import CLIError

    paths = check_rules(rules_dir)
    try:
        import yaml
    except ImportError:
        raise CLIError("driftwatch stack needs PyYAML: pip install pyyaml") from None
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for path in paths:
        doc = yaml.safe_load(path.read_text())
        if not shipped_timing:
            for group in doc.get("groups", []):
                group["interval"] = "1s"
                for rule in group.get("rules", []):
                    if "alert" in rule:
                        rule["for"] = "0s"
        target = dest / path.name
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        out.append(target)
    return out


def alertmanager_config(webhook: str | None) -> dict[str, Any]:
    """Route every alert at once (``group_wait: 0s``) to a webhook, or to a receiver that sends nothing."""
    from driftwatch.stack import webhook_config

    if webhook:
        return webhook_config(webhook)
    return {"route": {"receiver": "none", "group_by": ["alertname", "agent"], "group_wait": "0s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "none"}]}


def _describe(labels: dict[str, str]) -> str:
    shown = [f"{k}={labels[k]}" for k in _SHOWN_LABELS if labels.get(k)]
    return f"{labels.get('alertname', '?')}" + (f" {{{', '.join(shown)}}}" if shown else "") + \
        (f" [{labels['severity']}]" if labels.get("severity") else "")


class AlertWatcher:
    """Polls Prometheus ``/api/v1/alerts`` and Alertmanager ``/api/v2/alerts``; reports each transition once."""

    def __init__(self, stack: Any, write: Callable[[str], None], *, interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, t0: float | None = None) -> None:
        self.stack = stack
        self.write = write
        self.interval = interval
        self.clock = clock
        self.t0 = clock() if t0 is None else t0
        self.states: dict[tuple[tuple[str, str], ...], str] = {}
        self.fired: dict[tuple[tuple[str, str], ...], float] = {}
        self.received: dict[str, tuple[float, tuple[str, str, str]]] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        """One round: print what changed since the last one."""
        import httpx

        from driftwatch.stack import StackError

        now = self.clock() - self.t0
        try:
            alerts = self.stack.prometheus.alerts()
            held = self.stack.alertmanager.alerts() if self.stack.alertmanager is not None else []
        except (httpx.HTTPError, StackError):
            self.errors += 1
            return
        current = {}
        for a in alerts:
            key = tuple(sorted(a["labels"].items()))
            current[key] = a["state"]
        for key, state in current.items():
            if self.states.get(key) != state:
                self.write(f"[{now:5.1f}s] prometheus   {state:<8} {_describe(dict(key))}")
                if state == "firing":
                    self.fired.setdefault(key, now)
        for key in self.states.keys() - current.keys():
            self.write(f"[{now:5.1f}s] prometheus   resolved {_describe(dict(key))}")
        self.states = current
        for a in held:
            fp = a.get("fingerprint", "")
            if fp and fp not in self.received and a.get("status", {}).get("state") in ("active", "suppressed"):
                labels = a["labels"]
                self.received[fp] = (now, (labels.get("alertname", ""), labels.get("agent", ""),
                                           labels.get("signal", "")))
                self.write(f"[{now:5.1f}s] alertmanager received {_describe(a['labels'])}")

    def firing(self) -> set[tuple[str, str, str]]:
        """``(alertname, agent, signal)`` of the alerts firing now (empty strings for missing labels)."""
        out = set()
        for key, state in self.states.items():
            labels = dict(key)
            if state == "firing":
                out.add((labels.get("alertname", ""), labels.get("agent", ""), labels.get("signal", "")))
        return out

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.poll()
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="driftwatch-stack-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _wait(condition: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _targets(values: list[str]) -> list[str]:
    from driftwatch.cli import CLIError

    for t in values:
        host, _, port = t.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise CLIError(f"--target {t!r}: expected host:port, such as 127.0.0.1:9464")
    return values


def cmd_stack(args: argparse.Namespace) -> int:
    from driftwatch.cli import CLIError
    from driftwatch.stack import ALERTMANAGER_BINARIES, PROMETHEUS_BINARIES, Stack, StackError, find_binary

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
    check_rules(rules_dir)

    def write(line: str) -> None:
        print(line, flush=True)

    demo = None
    if not targets:
        from driftwatch.demo import Demo, DemoError, check_port

        check_port(args.port)

        try:
            demo = Demo(duration=args.duration or DEFAULT_STACK_DURATION, ledger=args.ledger,
                        report=args.report or None)
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
        with tempfile.TemporaryDirectory(prefix="driftwatch-rules-") as tmp:  # the Stack keeps its own copies
            rules = rule_files(rules_dir, Path(tmp), shipped_timing=args.shipped_timing)
            stack = Stack(targets=targets, rule_files=rules, alertmanager_config=alertmanager_config(args.webhook),
                          job=JOB)
        try:
            stack.start()
            write(f"prometheus    {stack.prometheus.url}   (alerts: {stack.prometheus.url}/alerts)")
            assert stack.alertmanager is not None
            write(f"alertmanager  {stack.alertmanager.url}")
            if demo is not None:
                write(f"demo          {demo.metrics_url}, ledger {demo.ledger}")
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
            from driftwatch.demo import Display, print_summary

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
        if demo is not None:
            demo.close()
    return EXIT_INTERRUPTED if interrupted else 0


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


def _settle(demo: Any, watcher: AlertWatcher, shipped_timing: bool) -> None:
    """After the traffic: wait (up to 20 s) until each drift alarm of the ledger is a firing alert that
    Alertmanager received."""
    if shipped_timing:
        return
    from driftwatch.runtime import get_runtime

    alarms = {("DriftwatchBehaviorDrift", a.agent, a.signal) for a in get_runtime().ledger.alarms()}
    if not alarms:
        return

    def paged() -> bool:
        return alarms <= watcher.firing() and alarms <= {key for _, key in watcher.received.values()}

    _wait(paged, 20.0)


def _report_fired(watcher: AlertWatcher, write: Callable[[str], None]) -> None:
    write("")
    if not watcher.fired:
        write("no alert fired")
        return
    write("alerts that fired:")
    for key, at in sorted(watcher.fired.items(), key=lambda kv: kv[1]):
        write(f"  {at:5.1f}s  {_describe(dict(key))}")
    write(f"alertmanager received {len(watcher.received)} alert(s)")


def register(sub: Any, ledger_help: str) -> None:
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
    s.add_argument("--shipped-timing", action="store_true",
                   help="keep the rules' 1m evaluation and for: windows (nothing fires for minutes)")
    s.set_defaults(func=cmd_stack)

