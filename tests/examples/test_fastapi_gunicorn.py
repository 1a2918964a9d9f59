"""examples/fastapi_gunicorn: real gunicorn workers, metrics aggregated across processes, one shared ledger."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from driftwatch.ledger import open_ledger
from tests.helpers.servers import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_gunicorn"


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gunicorn exited early"
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling interval, not a fixed wait for readiness
    raise AssertionError(f"{url} not ready after {timeout}s")


def _sample(body: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(prefix))


def test_two_workers_aggregate_calls_and_share_the_ledger(tmp_path) -> None:
    """40 requests over two gunicorn workers: /metrics sums them; every worker's rewrites reach the ledger."""
    mpdir = tmp_path / "prom"
    mpdir.mkdir()
    ledger = tmp_path / "dw.db"
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mpdir), "DRIFTWATCH_LEDGER": str(ledger),
           "DRIFTWATCH_TRACING": "false"}
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    proc = subprocess.Popen([gunicorn, "-c", "gunicorn.conf.py", "app:app", "--bind", f"127.0.0.1:{port}",
                             "--workers", "2", "--log-level", "warning"], cwd=EXAMPLE, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(f"{base}/metrics", proc)
        with httpx.Client(base_url=base) as client:
            answers = [client.get("/ask", params={"q": f"q{i}"}).json()["answer"] for i in range(40)]
            body = client.get("/metrics").text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert len(answers) == 40 and all(answers)
    assert _sample(body, 'driftwatch_calls_total{agent="api-bot",status="ok"}') == 40.0
    assert _sample(body, 'driftwatch_call_duration_seconds_count{agent="api-bot"}') == 40.0
    assert "Traceback" not in out
    changes = open_ledger(str(ledger), readonly=True).changes()
    assert changes and {c.kind for c in changes} == {"system_prompt"}
    assert _sample(body, 'driftwatch_changes_total{agent="api-bot"') == len(changes)
    promtool = shutil.which("promtool")
    assert promtool, "make test installs promtool (Debian package prometheus)"
    lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
