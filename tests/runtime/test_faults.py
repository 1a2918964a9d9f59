"""Never break the host: failures inside driftwatch are counted, and the agent's call returns normally."""

from __future__ import annotations

import os
import stat
import time

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import driftwatch
import driftwatch.ledger.buffered as buffered_mod
from driftwatch.testing import Captured, capture
from driftwatch.tracing import CountingExporter
from tests.helpers.servers import free_port


def _agent(prompts: list[str]):
    state = {"i": 0}

    @driftwatch.watch(agent="host")
    def run() -> str:
        driftwatch.track("host", "prompt", prompts[min(state["i"], len(prompts) - 1)])
        state["i"] += 1
        return "normal result"

    return run


@pytest.mark.parametrize("sink", ["metrics", "audit", "tracing"])
def test_a_raising_sink_is_counted_and_the_host_returns(cap: Captured, monkeypatch, sink: str) -> None:
    """A sink whose every method raises does not reach the host; each failure is counted under its stage."""
    target = getattr(cap.runtime, sink)

    def boom(*args, **kwargs):
        raise RuntimeError(f"{sink} is down")

    method = {"metrics": "on_change", "audit": "on_change", "tracing": "start_change"}[sink]
    monkeypatch.setattr(target, method, boom)
    run = _agent(["a", "b", "c"])
    assert [run() for _ in range(3)] == ["normal result"] * 3
    assert cap.runtime.error_counts[sink] == (3 if sink == "audit" else 2)  # audit also logs the baseline
    assert cap.value("driftwatch_internal_errors_total", stage=sink) == cap.runtime.error_counts[sink]
    assert len(cap.changes()) == 2  # the ledger still has every change


def test_host_exception_passes_through_unchanged(cap: Captured) -> None:
    """An exception raised by the watched function reaches the caller as the same object, and is counted as error."""
    error = KeyError("the agent's own error")

    @driftwatch.watch(agent="host")
    def run() -> None:
        raise error

    with pytest.raises(KeyError) as info:
        run()
    assert info.value is error
    assert cap.value("driftwatch_calls_total", agent="host", status="error") == 1.0
    (span,) = cap.spans("invoke_agent host")
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "KeyError"


def test_read_only_ledger_path_keeps_the_host_running(tmp_path) -> None:
    """With the ledger on a read-only path, calls return normally, errors are counted, nothing else is lost."""
    if os.geteuid() == 0:
        # root ignores file modes; a path under /proc is read-only for everyone
        ledger = "/proc/driftwatch-test/dw.db"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        ledger = str(ro / "dw.db")
    with capture(ledger=ledger) as cap:
        run = _agent(["a", "b", "c"])
        started = time.perf_counter()
        assert [run() for _ in range(3)] == ["normal result"] * 3
        assert time.perf_counter() - started < 1.0
        assert cap.runtime.error_counts["ledger"] >= 1
        assert cap.value("driftwatch_internal_errors_total", stage="ledger") >= 1
        assert cap.runtime.pending_writes == 3  # baseline + 2 changes kept for a later retry
        assert cap.value("driftwatch_changes_total", agent="host", component="prompt", kind="custom",
                         source="runtime") == 2.0
        assert len(cap.spans("driftwatch.change")) == 2


def test_pending_writes_are_flushed_when_the_ledger_comes_back(tmp_path, monkeypatch) -> None:
    """Writes kept while the ledger was unavailable are stored once it can be opened."""
    monkeypatch.setattr(buffered_mod, "RETRY_S", 0.0)
    missing_dir = tmp_path / "later"
    with capture(ledger=str(missing_dir / "dw.db")) as cap:
        driftwatch.track("bot", "p", "one")
        driftwatch.track("bot", "p", "two")
        assert cap.runtime.pending_writes == 2
        missing_dir.mkdir()
        driftwatch.track("bot", "p", "three")
        assert cap.runtime.ledger.flush(timeout=30)  # the background writer's next attempt
        assert cap.runtime.pending_writes == 0
        entries = cap.ledger.changes(baselines=True)
        assert [cap.ledger.change(c.id).after_state for c in entries] == ["one", "two", "three"]


def test_an_idle_agents_kept_writes_go_out_without_new_calls(tmp_path, monkeypatch) -> None:
    """No new change, no new call after the outage: the background writer retries the kept writes on its own
    (every retry interval), not only at the next write."""
    monkeypatch.setattr(buffered_mod, "RETRY_S", 0.0)
    missing_dir = tmp_path / "later"
    with capture(ledger=str(missing_dir / "dw.db")) as cap:
        run = _agent(["one", "two"])
        run()
        run()
        assert cap.runtime.pending_writes == 2  # baseline + change
        missing_dir.mkdir()
        deadline = time.monotonic() + 30
        while cap.runtime.pending_writes and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cap.runtime.pending_writes == 0
        assert [cap.ledger.change(c.id).after_state for c in cap.ledger.changes(baselines=True)] == ["one", "two"]


def test_kept_writes_are_tried_once_more_at_exit(tmp_path) -> None:
    """A process whose ledger came back after its last change, and that never called close(): at exit."""
    import subprocess
    import sys

    ledger = tmp_path / "later" / "dw.db"
    code = (
        "import driftwatch, os, driftwatch.ledger.buffered as b\n"
        "b.RETRY_S = 3600.0\n"  # no retry from calls: only the exit hook can write them
        f"driftwatch.configure(ledger={str(ledger)!r}, metrics=False, tracing=False)\n"
        "driftwatch.track('bot', 'p', 'one'); driftwatch.track('bot', 'p', 'two')\n"
        "assert driftwatch.runtime.get_runtime().pending_writes == 2\n"
        f"os.mkdir({str(ledger.parent)!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    from driftwatch.ledger import open_ledger

    led = open_ledger(str(ledger), readonly=True)
    assert [led.change(c.id).after_state for c in led.changes(baselines=True)] == ["one", "two"]


def test_a_full_queue_of_kept_writes_drops_the_oldest_and_says_so(tmp_path) -> None:
    """Kept writes are bounded; when the bound is hit the drop is counted and logged, never silent."""
    with capture(ledger=str(tmp_path / "missing" / "dw.db"), ledger_queue=3) as cap:
        errors = []
        for i in range(5):
            driftwatch.track("bot", "p", f"v{i}")
            errors.append(cap.runtime.error_counts.get("ledger", 0))
        assert cap.runtime.pending_writes == 3
        assert errors[3] > errors[2] and errors[4] > errors[3]  # each drop counted


def test_refusing_otlp_endpoint_is_counted_and_does_not_block(tmp_path) -> None:
    """Spans exported to an OTLP endpoint that refuses connections: calls return promptly, failures are counted."""
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{free_port()}/v1/traces", timeout=2)
    provider.add_span_processor(BatchSpanProcessor(CountingExporter(exporter), schedule_delay_millis=50))
    with capture(tracer_provider=provider) as cap:
        run = _agent(["a", "b"])
        started = time.perf_counter()
        for _ in range(20):
            assert run() == "normal result"
        assert time.perf_counter() - started < 1.0
        provider.force_flush(timeout_millis=10_000)
        assert cap.value("driftwatch_internal_errors_total", stage="span_export") >= 1
    provider.shutdown()


def test_bad_environment_does_not_break_the_host(monkeypatch) -> None:
    """A bad DRIFTWATCH_* value at first use is counted under stage 'config'; defaults are used."""
    from driftwatch.runtime import get_runtime, set_runtime

    monkeypatch.setenv("DRIFTWATCH_CAPTURE_CONTENT", "maybe")
    monkeypatch.setenv("DRIFTWATCH_LEDGER", ":memory:")
    old = set_runtime(None)
    try:
        rt = get_runtime()
        assert rt.error_counts == {"config": 1}
        assert rt.settings.capture_content is False
    finally:
        set_runtime(old)
        rt.close()
