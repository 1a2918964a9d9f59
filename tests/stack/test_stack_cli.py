"""`driftwatch stack`: real Prometheus and Alertmanager processes with the shipped rules, against the demo or a target.

The commands run in subprocesses; the servers are the Debian packages' binaries, on loopback ports picked at
run time and polled for readiness by the command itself. The language model of the demo is driftwatch's
scripted model (a hosted LLM cannot run here).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import driftwatch
from driftwatch.ledger import open_ledger
from driftwatch.testing import capture
from tests.helpers.servers import WebhookReceiver

STACK = [sys.executable, "-m", "driftwatch", "stack"]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STACK, *args], capture_output=True, text=True, timeout=180, cwd=cwd, env=env,
                          check=False)


def test_missing_prometheus_is_one_line_naming_the_packages(tmp_path: Path) -> None:
    """With no prometheus on PATH: exit 1 and one line saying which Debian packages to install."""
    proc = _run([], tmp_path, env={**os.environ, "PATH": str(tmp_path)})
    assert proc.returncode == 1
    assert proc.stderr == ("driftwatch: error: prometheus not found on PATH: install the Debian packages: "
                           "apt-get install prometheus prometheus-alertmanager\n")
    assert not (tmp_path / "driftwatch.db").exists()


def test_missing_alertmanager_is_named(tmp_path: Path) -> None:
    """With prometheus but no Alertmanager on PATH, the line names the Alertmanager binaries."""
    (tmp_path / "bin").mkdir()
    os.symlink(shutil.which("prometheus") or "/usr/bin/prometheus", tmp_path / "bin" / "prometheus")
    proc = _run([], tmp_path, env={**os.environ, "PATH": str(tmp_path / "bin")})
    assert proc.returncode == 1
    assert "prometheus-alertmanager or alertmanager not found on PATH" in proc.stderr
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "localhost"], "--target 'localhost': expected host:port, such as 127.0.0.1:9464"),
    (["--duration", "0"], "--duration 0: expected seconds > 0 (0 only with --target: until Ctrl-C)"),
    (["--webhook", "ftp://x"], "--webhook 'ftp://x': expected an http:// or https:// URL"),
    (["--rules", "{tmp}"], "no driftwatch_rules.yaml there"),
])
def test_bad_arguments_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    """A bad target, duration, webhook URL or rules directory: one line naming it, exit 1, no server left."""
    proc = _run([a.format(tmp=tmp_path) for a in args], tmp_path)
    assert proc.returncode == 1
    assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "driftwatch.db").exists()  # the demo did not start


@pytest.mark.slow
@pytest.mark.servers
def test_stack_runs_the_demo_and_prints_the_alerts_that_fire(tmp_path: Path, webhook: WebhookReceiver) -> None:
    """Each drift alarm of the demo becomes a firing DriftwatchBehaviorDrift alert, printed and sent to the webhook;
    qa-program's (guard policy on_alarm=rollback) also reaches the guard receiver, which rolls it back."""
    proc = _run(["--duration", "12", "--ledger", "s.db", "--report", "s.html", "--webhook", f"{webhook.url}/hook"],
                tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    prom = re.search(r"^prometheus    (http://127\.0\.0\.1:\d+)", out, re.M)
    am = re.search(r"^alertmanager  (http://127\.0\.0\.1:\d+)", out, re.M)
    assert prom and am, out[:2000]
    alarms = {(a.agent, a.signal) for a in open_ledger(str(tmp_path / "s.db"), readonly=True).alarms()}
    assert alarms
    for agent, signal in alarms:
        line = f"DriftwatchBehaviorDrift {{agent={agent}, signal={signal}}} [critical]"
        assert f"prometheus   firing   {line}" in out
        assert f"alertmanager received {line}" in out
        assert f"s  {line}" in out.split("alerts that fired:")[1]
        assert any(a["labels"].get("alertname") == "DriftwatchBehaviorDrift" and a["labels"].get("agent") == agent
                   and a["labels"].get("signal") == signal and a["status"] == "firing"
                   for _, a, _ in webhook.alerts("/hook"))
    assert "driftwatch demo finished after" in out and (tmp_path / "s.html").exists()
    # the guard: qa-program's drift alert rolled it back through the in-process receiver, then was confirmed
    assert re.search(r"^guard         http://127\.0\.0\.1:\d+/alerts \(qa-program: on_alarm=rollback\)$", out, re.M)
    led = open_ledger(str(tmp_path / "s.db"), readonly=True)
    if ("qa-program", "output_chars") in alarms:
        assert re.search(r"^driftwatch guard: agent qa-program rolled back \(drift alarm \w+ \(output_chars\)", out,
                         re.M)
        assert "qa-program   GUARD ROLLED BACK: serving the revisions of before" in out
        assert [a.action for a in led.guard_actions(agent="qa-program")][:1] == ["rolled_back"]
    assert [a.agent for a in led.guard_actions() if a.action == "rolled_back"] in ([], ["qa-program"])
    for url in (prom.group(1), am.group(1)):  # both servers were stopped
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/-/ready", timeout=2)


@pytest.mark.slow
@pytest.mark.servers
def test_stack_scrapes_a_given_target(tmp_path: Path) -> None:
    """--target: the stack scrapes a running process's /metrics and prints the alert its latched alarm raises."""
    with capture(drift=False) as cap:
        server = driftwatch.start_http_server(0, runtime=cap.runtime)
        try:
            assert cap.runtime.metrics is not None
            cap.runtime.metrics.drift_alarm.labels("billing-bot", "refusal").set(1.0)  # what the engine sets
            proc = _run(["--target", f"127.0.0.1:{server.server_port}", "--duration", "4"], tmp_path)
        finally:
            server.shutdown()
            server.server_close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "firing   DriftwatchBehaviorDrift {agent=billing-bot, signal=refusal} [critical]" in proc.stdout
    assert "alerts that fired:" in proc.stdout
    assert not (tmp_path / "driftwatch.db").exists()  # no demo ran


def test_rules_come_from_the_checkout_else_from_the_wheels_data_files(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """In a checkout the rules are grafana/alerts; installed from a wheel, <prefix>/share/driftwatch/alerts."""
    from driftwatch.stack import rules

    assert rules.default_rules_dir() == Path(__file__).resolve().parents[2] / "grafana" / "alerts"
    assert [p.name for p in rules.check_rules(rules.default_rules_dir())] == list(rules.RULE_NAMES)
    monkeypatch.setattr(rules, "__file__", str(tmp_path / "site-packages" / "driftwatch" / "stack" / "rules.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    assert rules.default_rules_dir() == tmp_path / "venv" / "share" / "driftwatch" / "alerts"
