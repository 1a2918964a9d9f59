"""Calls processed in batches (driftwatch/call_batch.py): nothing is late for a reader, lost, or counted twice."""

from __future__ import annotations

import math
import random
import threading
import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import driftwatch
from driftwatch.config import ConfigError, Settings
from driftwatch.observation import Call
from driftwatch.runtime import Runtime
from driftwatch.testing import capture


def _ok_calls(rt: Runtime, agent: str) -> float:
    """The agent's ``ok`` count in the metrics sink's own sums, read without a collect (which would flush)."""
    a = rt.metrics.call_series.agents.get(agent)
    return 0.0 if a is None else a.ok


def test_a_calls_metrics_are_in_the_next_scrape() -> None:
    """Calls kept for a batch are processed before a scrape: /metrics served over HTTP and a plain collect of the
    registry both count every call made before them."""
    registry = CollectorRegistry()
    rt = Runtime(Settings.from_env(ledger=":memory:", registry=registry, tracing=False, call_batch=64,
                                   call_batch_s=3600.0))
    server = rt.start_http_server(0, "127.0.0.1")
    try:
        for _ in range(5):
            rt.record_call(Call("bot", 0.01, output_chars=3))
        assert _ok_calls(rt, "bot") == 1.0  # control: the first call is processed at once, four are kept
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).read().decode()
        assert 'driftwatch_calls_total{agent="bot",status="ok"} 5.0' in body
        rt.record_call(Call("bot", 0.01, output_chars=3))
        assert _ok_calls(rt, "bot") == 5.0
        assert 'driftwatch_calls_total{agent="bot",status="ok"} 6.0' in generate_latest(registry).decode()
    finally:
        rt.close()


def _drift_run(call_batch: int) -> list[tuple[str, int, float]]:
    """A seeded agent whose answers double in length after a change: its alarms (signal, calls since the
    change, score)."""
    rng = random.Random(7)
    state = {"prompt": "be brief"}
    with capture(call_batch=call_batch, call_batch_s=3600.0) as cap:
        @driftwatch.watch(agent="writer")
        def answer() -> str:
            n = int(math.exp(rng.gauss(5.0, 0.4)))
            return "x" * (n * 2 if state["prompt"] == "be thorough" else n)

        driftwatch.track("writer", "system_prompt", state["prompt"])
        for _ in range(1200):
            answer()
        state["prompt"] = "be thorough"
        driftwatch.track("writer", "system_prompt", state["prompt"])
        for _ in range(200):
            answer()
        return [(a.signal, a.calls_since_anchor, round(a.score, 9)) for a in cap.ledger.alarms(agent="writer")]


@pytest.mark.parametrize("size", [16, 32, 64])
def test_an_alarm_is_raised_at_the_same_call_as_without_batches(size: int) -> None:
    """The drift engine sees the same calls in the same order: the same alarm, at the same call after the
    change, with the same score, as when every call is processed at once."""
    unbatched = _drift_run(1)
    assert unbatched and unbatched[0][0] == "output_chars"  # control: the change is detected
    assert _drift_run(size) == unbatched


def test_nothing_is_lost_or_counted_twice_with_eight_threads(tmp_path) -> None:
    """8 threads × 1500 calls through small batches: every call counted once in the metrics, the drift engine and
    the call windows."""
    path = str(tmp_path / "t.db")
    with capture(ledger=path, call_batch=16, call_batch_s=0.05) as cap:
        @driftwatch.watch(agent="bot")
        def answer(i: int) -> str:
            return "x" * (1 + i % 50)

        answer(0)
        driftwatch.track("bot", "prompt", "v1")
        driftwatch.track("bot", "prompt", "v2")  # the drift engine counts the calls after this change
        start = threading.Barrier(8)

        def work() -> None:
            start.wait()
            for i in range(1500):
                answer(i)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = 1 + 8 * 1500
        assert cap.value("driftwatch_calls_total", agent="bot", status="ok") == total
        assert cap.value("driftwatch_call_duration_seconds_count", agent="bot") == total
        status = driftwatch.drift.status("bot")  # 1000 calls make the new reference, the rest are tested
        assert status["reference_calls"] + status["calls_since_anchor"] == 8 * 1500
    from driftwatch.ledger.sqlite import SQLiteLedger

    windows = SQLiteLedger(path, readonly=True).windows(agent="bot")
    assert sum(w.calls for w in windows) == total


def test_errors_in_a_batch_are_counted_per_stage_and_the_host_returns(monkeypatch) -> None:
    """An evaluator that raises and a drift engine that raises, inside batches: each failing call is
    counted under its own stage, the other stages still see every call, and the agent gets its result."""
    with capture(call_batch=8, call_batch_s=3600.0) as cap:
        driftwatch.configure_agent("bot", evaluator=lambda text: 1 / 0)

        def boom(call: Call) -> None:
            raise RuntimeError("the drift engine is down")

        monkeypatch.setattr(cap.runtime.drift, "record_for", boom)  # how the engine reads each call

        @driftwatch.watch(agent="bot")
        def answer() -> str:
            return "the agent's answer"

        assert [answer() for _ in range(20)] == ["the agent's answer"] * 20
        assert cap.value("driftwatch_calls_total", agent="bot", status="ok") == 20
        assert cap.runtime.error_counts == {"signals": 20, "drift": 20}
        assert cap.value("driftwatch_internal_errors_total", stage="drift") == 20
        assert cap.value("driftwatch_internal_errors_total", stage="signals") == 20


def test_a_lone_call_is_processed_within_the_time_bound_and_at_close() -> None:
    """With no more traffic, a kept call is processed call_batch_s after it was made (a background thread), and
    one kept with a long bound is processed by close()."""
    rt = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), tracing=False, call_batch=64,
                                   call_batch_s=0.2))
    try:
        rt.record_call(Call("bot", 0.01, output_chars=3))
        made = time.monotonic()
        rt.record_call(Call("bot", 0.01, output_chars=3))
        assert _ok_calls(rt, "bot") == 1.0  # control: kept
        while _ok_calls(rt, "bot") < 2.0 and time.monotonic() - made < 10.0:
            time.sleep(0.01)
        assert _ok_calls(rt, "bot") == 2.0
        assert time.monotonic() - made >= 0.15  # not before the bound
    finally:
        rt.close()

    rt = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), tracing=False, call_batch=64,
                                   call_batch_s=3600.0))
    rt.record_call(Call("bot", 0.01, output_chars=3))
    rt.record_call(Call("bot", 0.01, output_chars=3))
    assert _ok_calls(rt, "bot") == 1.0  # control: kept
    rt.close()
    assert _ok_calls(rt, "bot") == 2.0
    rt.record_call(Call("bot", 0.01, output_chars=3))  # after close: at once
    assert _ok_calls(rt, "bot") == 3.0


@pytest.mark.parametrize(("setting", "value"), [("call_batch", 0), ("call_batch", 5000), ("call_batch_s", -1.0)])
def test_a_bad_batch_setting_is_named(setting: str, value: float) -> None:
    with pytest.raises(ConfigError, match=setting):
        Settings.from_env(**{setting: value})


def test_a_forked_child_processes_its_own_calls_not_the_parents() -> None:
    """After fork() (gunicorn's workers) the child drops the calls its parent kept (the parent processes them)
    and processes its own."""
    import os

    rt = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), tracing=False, call_batch=64,
                                   call_batch_s=3600.0))
    try:
        for _ in range(3):
            rt.record_call(Call("bot", 0.01, output_chars=3))  # the first at once, two kept
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            try:
                rt.record_call(Call("bot", 0.01, output_chars=3))
                rt.flush_calls()
                os.write(write, str(_ok_calls(rt, "bot")).encode())
            finally:
                os._exit(0)
        os.close(write)
        child = os.read(read, 100).decode()
        os.close(read)
        os.waitpid(pid, 0)
        assert float(child) == 2.0  # the parent's first call (copied at fork) and its own
        rt.flush_calls()
        assert _ok_calls(rt, "bot") == 3.0  # control: the parent's kept calls are the parent's
    finally:
        rt.close()


def _mixed_calls() -> list[Call]:
    """Three agents interleaved in runs of different lengths, with errors, tools, tokens, refusals, unknown sizes
    and a NaN duration, and one call no sink can sum (its duration is text)."""
    rng = random.Random(3)
    calls = []
    for k in range(300):
        agent = ("a", "b", "c")[(k // rng.choice((1, 3, 7))) % 3]
        text = "I'm sorry, but I can't help with that." if k % 11 == 0 else "x" * rng.randint(1, 3000)
        calls.append(Call(agent, rng.expovariate(20.0), k % 13 == 0, "ValueError" if k % 13 == 0 else None,
                          None if k % 17 == 0 else len(text), text, k % 5, rng.randint(0, 50),
                          ("search", "calc")[: k % 3], None, None, 1_000_000.0 + k * 0.01))
    calls[150].duration_s = math.nan
    calls[200].duration_s = "slow"  # type: ignore[assignment]  # a hook's bad value: every sink raises on it
    return calls


def _sums(call_batch: int) -> tuple[dict[str, float], dict[str, int], list[tuple], list[tuple]]:
    registry = CollectorRegistry()
    rt = Runtime(Settings.from_env(ledger=":memory:", registry=registry, tracing=False, call_batch=call_batch,
                                   call_batch_s=3600.0, drift_reference_calls=50))
    try:
        for call in _mixed_calls():
            rt.record_call(call)
        exposed = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                   for line in generate_latest(registry).decode().splitlines()
                   if "_created" not in line and "internal_errors" not in line and not line.startswith("#")}
        windows = sorted((w.agent, w.start, w.end, w.calls, w.errors, w.sized_calls, w.output_chars,
                          w.input_tokens, w.output_tokens, w.refusals, w.checked_calls, sorted(w.tools.items()))
                         for w in rt._windows._open.values())
        drift = [(a, s["collected_calls"], s["scores"], s["operational"])
                 for a in ("a", "b", "c") for s in [rt.drift.status(a)]]
        return exposed, rt.error_counts, windows, drift
    finally:
        rt.close()


def test_a_batch_of_mixed_agents_and_errors_counts_as_calls_one_by_one() -> None:
    """The same calls of three interleaved agents, processed in batches and one by one: the same exposed metrics
    (counts, histogram buckets and sums, tokens, tools, refusals), the same call windows, the same drift
    statistics, and the failing call counted once per stage while the rest of its batch is counted."""
    one_by_one = _sums(1)
    batched = _sums(64)
    exposed, errors, _, _ = one_by_one
    assert errors["metrics"] == errors["windows"] == 1  # control: the bad call fails in these sinks ...
    assert sum(v for k, v in exposed.items() if k.startswith("driftwatch_calls_total")) == 299.0  # ... alone
    assert exposed['driftwatch_tool_calls_total{agent="b",tool="calc"}'] > 0
    assert batched[1:] == one_by_one[1:]
    assert batched[0] == pytest.approx(exposed, rel=1e-12, nan_ok=True)  # duration sums: added in another order
