"""The report in a real headless Chromium, and its Prometheus plots from a real Prometheus server."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import driftwatch
from driftwatch.ledger import open_ledger
from driftwatch.report import PrometheusSource, build_report
from driftwatch.testing import capture
from tests.helpers.chromium import chromium, console_errors
from tests.helpers.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

def test_the_console_check_catches_errors(tmp_path: Path) -> None:
    """Control: a page that logs an error and throws is caught by the same console check."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom'); missing();</script></body></html>")
    lines = console_errors(chromium(bad, "--dump-dom").stderr)
    assert any("boom" in line for line in lines) and any("missing is not defined" in line for line in lines)


def test_report_renders_in_chromium_without_console_errors(sample_ledger: Path) -> None:
    """Chromium renders the report (timeline, plots, diffs in the DOM), logs nothing, and a screenshot is saved."""
    ARTIFACTS.mkdir(exist_ok=True)
    page = ARTIFACTS / "report.html"
    page.write_text(build_report(open_ledger(str(sample_ledger), readonly=True)))
    dom = chromium(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_errors(dom.stderr) == []
    assert dom.stdout.count("<svg") >= 10 and 'class="timeline"' in dom.stdout and 'class="diff"' in dom.stdout
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    run = chromium(page, f"--screenshot={shot}", "--window-size=1280,2600")
    assert run.returncode == 0 and console_errors(run.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 2600)
    assert len(data) > 50_000  # a blank page compresses to a few kB


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.servers
def test_prometheus_plots_come_from_a_real_prometheus(tmp_path: Path) -> None:
    """With a Prometheus scraping the agent, the report's Prometheus plots show output length jump at the change."""
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail("prometheus is missing: `make test` installs the Debian package prometheus")
    ledger = str(tmp_path / "p.db")
    with capture(ledger=ledger) as cap:
        exporter = driftwatch.start_http_server(0, runtime=cap.runtime)
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
                          f"  - job_name: agent\n    static_configs:\n"
                          f"      - targets: ['127.0.0.1:{exporter.server_port}']\n")
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200, "Prometheus ready")
            _wait(lambda: [r["value"][1] for r in httpx.get(f"{url}/api/v1/query", params={"query": "up"},
                                                            timeout=2).json()["data"]["result"]] == ["1"],
                  "the first scrape")
            prompt = {"text": "Answer briefly."}

            @driftwatch.watch(agent="bot")
            def answer(i: int) -> str:
                driftwatch.track("bot", "system_prompt", prompt["text"], kind="system_prompt", source="agent")
                return "short." if prompt["text"] == "Answer briefly." else "a much longer answer " * 20

            def traffic(seconds: float) -> None:
                end = time.monotonic() + seconds
                i = 0
                while time.monotonic() < end:
                    answer(i)
                    i += 1
                    time.sleep(0.005)

            traffic(4.0)
            prompt["text"] = "Explain everything in detail."
            traffic(4.0)
            change_ts = cap.changes()[-1].timestamp

            def scraped_after_change() -> bool:
                r = httpx.get(f"{url}/api/v1/query", params={"query": "driftwatch_calls_total", "time": time.time()},
                              timeout=2).json()["data"]["result"]
                return bool(r) and float(r[0]["value"][0]) > change_ts + 3
            _wait(scraped_after_change, "scrapes after the change")
            source = PrometheusSource(url, rate_window="3s")
            try:
                source.check()
                series = source.signals("bot", change_ts - 6, time.time())
                page = build_report(cap.ledger, prometheus=source)
            finally:
                source.close()
        finally:
            prom.terminate()
            prom.wait(timeout=10)
            exporter.shutdown()
            exporter.server_close()
    points = series["output_chars"][0][1]
    before = [v for t, v in points if t < change_ts - 1]
    after = [v for t, v in points if t > change_ts + 3]
    assert before and after and min(after) > 10 * max(before)
    assert "output length (Prometheus)" in page and "latency (Prometheus)" in page
