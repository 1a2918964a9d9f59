"""`driftwatch demo` (what `make demo` runs): real DSPy and LangGraph agents tuning themselves on the scripted model.

The command runs in a subprocess, as a newcomer would run it. Nothing is mocked: the language model is
driftwatch's offline scripted model (a hosted LLM cannot run here), the optimizer is a real dspy.COPRO.
"""

from __future__ import annotations

import os
import pty
import queue
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from driftwatch.ledger import open_ledger
from driftwatch.testing import capture
from driftwatch.windows import CallWindow
from tests.helpers.chromium import chromium, console_errors

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("driftwatch")  # the console script `make demo` runs
DEMO = [str(_SCRIPT), "demo"] if _SCRIPT.exists() else [sys.executable, "-m", "driftwatch", "demo"]
DURATION = "12"


@dataclass
class DemoRun:
    returncode: int
    stdout: str
    stderr: str
    cwd: Path
    metrics_body: str
    busy_port: int
    old_revision: str


def _lines(stream: object, out: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]  # a text pipe
        out.put(line)
    out.put(None)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """One 12 s non-interactive run, with a busy --port, a previous demo ledger in the way, /metrics scraped mid-run."""
    cwd = tmp_path_factory.mktemp("demo")
    with capture(ledger=str(cwd / "demo.db"), drift=False) as cap:  # a previous demo's ledger (its agent only)
        old = cap.runtime.observe("support-bot", "agent.system_prompt", "an old prompt")
    assert old is not None
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.Popen([*DEMO, "--non-interactive", "--duration", DURATION, "--port", str(port),
                                 "--ledger", "demo.db", "--report", "demo.html"],
                                cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
        seen: list[str] = []
        body = ""
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                if line is None:
                    break
                seen.append(line)
                m = re.search(r"/metrics at (http://\S+/metrics)", line)
                if m and not body:
                    url = m.group(1)
                if "CHANGE" in line and not body:  # mid-run: the agents are serving
                    body = httpx.get(url, timeout=10).text
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr = proc.stderr.read() if proc.stderr else ""
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    yield DemoRun(proc.returncode, "".join(seen), stderr, cwd, body, port, old.after_id)


def test_demo_exits_0_and_leaves_runs_changes_and_alarms(demo_run: DemoRun) -> None:
    """Exit 0; the ledger holds a COPRO run, its change, the agent's own rewrites and drift alarms anchored at them."""
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    led = open_ledger(str(demo_run.cwd / "demo.db"), readonly=True)
    runs, changes, alarms = led.runs(), led.changes(), led.alarms()
    assert [(r.agent, r.optimizer, r.outcome) for r in runs] == [("qa-program", "COPRO", "ok")]
    assert len(changes) >= 3
    copro = [c for c in changes if c.source == "COPRO"]
    assert len(copro) == 1 and copro[0].run_id == runs[0].id and copro[0].kind == "instructions"
    assert not [c for c in changes if c.agent == "qa-program" and c.source == "runtime"]  # the swap is clean
    rewrites = [c for c in changes if c.agent == "support-bot"]
    assert len(rewrites) >= 2 and {(c.kind, c.source, c.node) for c in rewrites} == {("system_prompt", "agent",
                                                                                       "reflect")}
    assert alarms, "no drift alarm"
    ids = {c.id for c in changes}
    assert all(a.anchor_change_id in ids for a in alarms)


def test_the_drift_follows_the_rewritten_prompts(demo_run: DemoRun) -> None:
    """The reflect node's first rewrite (asking for detail) makes answers several times longer in the call windows."""
    led = open_ledger(str(demo_run.cwd / "demo.db"), readonly=True)
    rewrites = led.changes(agent="support-bot")
    start, end = rewrites[0].timestamp, rewrites[1].timestamp if len(rewrites) > 1 else float("inf")
    windows = led.windows(agent="support-bot")
    before = [w for w in windows if w.end <= start]
    after = [w for w in windows if start <= w.start and w.end <= end]
    assert before and after

    def mean_chars(ws: list[CallWindow]) -> float:
        return sum(w.output_chars for w in ws) / sum(w.sized_calls for w in ws)

    assert mean_chars(after) > 3 * mean_chars(before)


def test_demo_prints_changes_alarms_and_a_summary_with_the_paths(demo_run: DemoRun) -> None:
    """Plain lines for each change and alarm, the busy port's replacement, and the ledger and report paths."""
    out = demo_run.stdout
    assert "replaced the previous demo ledger demo.db" in out
    assert f"port {demo_run.busy_port} is busy: serving /metrics on port" in out
    assert "CHANGE" in out and "DRIFT ALARM" in out and "optimizer run COPRO ok" in out
    assert "driftwatch demo finished after" in out
    assert "ledger:  demo.db" in out and "report:  demo.html" in out


def test_the_previous_demo_ledger_was_replaced(demo_run: DemoRun) -> None:
    """The revision the old ledger held is gone: the run started from a fresh file."""
    led = open_ledger(str(demo_run.cwd / "demo.db"), readonly=True)
    assert led.revision(demo_run.old_revision) is None


def test_metrics_were_served_while_the_agents_ran(demo_run: DemoRun) -> None:
    """/metrics, scraped mid-run, counts both agents' calls and the changes so far."""
    body = demo_run.metrics_body
    assert re.search(r'driftwatch_calls_total\{agent="qa-program",status="ok"\} [1-9]', body)
    assert re.search(r'driftwatch_calls_total\{agent="support-bot",status="ok"\} [1-9]', body)
    assert "driftwatch_changes_total{" in body


def test_the_demo_report_renders_in_chromium_without_console_errors(demo_run: DemoRun) -> None:
    """The report the demo wrote renders in headless Chromium, with a section per change, and logs nothing."""
    page = demo_run.cwd / "demo.html"
    dom = chromium(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_errors(dom.stderr) == []
    led = open_ledger(str(demo_run.cwd / "demo.db"), readonly=True)
    for change in led.changes():
        assert f'id="c-{change.id[:12]}"' in dom.stdout
    assert 'class="timeline"' in dom.stdout and "COPRO (ok" in dom.stdout


def test_make_demo_runs_the_demo_non_interactively() -> None:
    """`make -n demo` (a dry run) shows that `make demo` runs this command with --non-interactive."""
    # Under `make test` this runs inside another make: drop the parent's MAKEFLAGS/MAKELEVEL so the dry run
    # prints only recipes, not "make[1]: Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"}}
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    recipes = [line.strip() for line in proc.stdout.strip().splitlines() if not line.startswith("make")]
    assert recipes[-1] == ".venv/bin/driftwatch demo --non-interactive"


def test_make_demo_itself_leaves_a_run_changes_and_an_alarm(tmp_path: Path) -> None:
    """`make demo` (its real recipe, on the installed driftwatch, never reinstalling) leaves a ledger with an
    optimizer run, at least three changes and at least one drift alarm, and writes the report."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"}}
    ledger, report = tmp_path / "make-demo.db", tmp_path / "make-demo.html"
    args = f"--duration {DURATION} --port 0 --ledger {ledger} --report {report}"
    proc = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "demo", f"BIN={Path(sys.executable).parent}",
         f"DEMO_ARGS={args}"],
        capture_output=True, text=True, timeout=180, cwd=ROOT, check=False, env=env,
    )
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    led = open_ledger(str(ledger), readonly=True)
    assert len(led.runs()) >= 1 and len(led.changes()) >= 3 and len(led.alarms()) >= 1
    assert report.stat().st_size > 10_000 and "driftwatch demo finished" in proc.stdout


def test_a_ledger_of_other_agents_is_never_replaced(tmp_path: Path) -> None:
    """A ledger that holds another agent is refused with one line naming --ledger, and left as it was."""
    path = tmp_path / "prod.db"
    with capture(ledger=str(path), drift=False) as cap:
        cap.runtime.observe("billing-bot", "system_prompt", "keep me")
    before = path.read_bytes()
    proc = subprocess.run([*DEMO, "--ledger", str(path), "--port", "0"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and f"--ledger {path}: holds other agents (billing-bot)" in proc.stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize(("args", "message"), [
    (["--duration", "3"], "--duration 3: expected at least 10 seconds"),
    (["--port", "70000"], "--port 70000: expected a port number from 0 to 65535"),
    (["--ledger", ":memory:"], "--ledger ':memory:': expected a file path"),
])
def test_bad_options_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    """A too-short duration, a bad port or a non-file ledger: one line on stderr, exit 1, before anything runs."""
    proc = subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 1 and message in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "driftwatch.db").exists()


def test_ctrl_c_in_the_live_display_stops_cleanly(tmp_path: Path) -> None:
    """In a terminal: the rich live table shows; Ctrl-C after the first change exits 130 with summary and report."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "150", "LINES": "50"}
    proc = subprocess.Popen([*DEMO, "--duration", "15", "--port", "0"], cwd=tmp_path, env=env,
                            stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    out = b""
    sent = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the demo exited and closed its terminal
                    break
                if not data:
                    break
                out += data
            if not sent and b"CHANGE" in out:
                proc.send_signal(signal.SIGINT)
                sent = True
        returncode = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.decode(errors="replace"))
    assert sent, text[-2000:]
    assert returncode == 130, text[-2000:]
    assert "what tunes it" in text and "calls/s" in text  # the live table's header
    assert "driftwatch demo stopped early (Ctrl-C)" in text and "report:  driftwatch-report.html" in text
    assert (tmp_path / "driftwatch-report.html").read_text().startswith("<!DOCTYPE html>")
    assert open_ledger(str(tmp_path / "driftwatch.db"), readonly=True).changes()
