"""The per-call metrics' collector (``metrics.CallSeries``): the samples prometheus_client's own Counter and
Histogram give for the same calls, no increment lost across threads, and an evicted agent's series gone."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.openmetrics.exposition import generate_latest

from driftwatch.metrics import CALL_METRICS, CHARS_BUCKETS, DURATION_BUCKETS, Metrics, spec
from driftwatch.observation import Call

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def _calls() -> Iterator[Call]:
    """Durations and sizes on, between and past the bucket bounds; errors; calls with a trace id."""
    durations = [0.0, 0.005, 0.0051, 0.3, 1.0, 59.9, 60.0, 61.0, float("inf"), -0.5]
    sizes = [None, 0, 16, 17, 4096, 65536, 65537, 10**9]
    for i in range(60):
        traced = i % 7 == 3
        yield Call(agent="bot" if i % 3 else "helper", duration_s=durations[i % len(durations)], error=i % 4 == 1,
                   output_chars=sizes[i % len(sizes)], trace_id=TRACE if traced else None,
                   span_id=SPAN if traced else None)


def _reference(calls: list[Call]) -> CollectorRegistry:
    """The same calls through prometheus_client's own objects, as the sink wrote them before CallSeries."""
    registry = CollectorRegistry()
    counter = Counter("driftwatch_calls", spec("driftwatch_calls_total").help, ("agent", "status"),
                      registry=registry)
    duration = Histogram("driftwatch_call_duration_seconds", spec("driftwatch_call_duration_seconds").help,
                         ("agent",), buckets=DURATION_BUCKETS, registry=registry)
    chars = Histogram("driftwatch_output_chars", spec("driftwatch_output_chars").help, ("agent",),
                      buckets=CHARS_BUCKETS, registry=registry)
    seen: set[str] = set()
    for c in calls:
        if c.agent not in seen:  # the sink starts all four series at an agent's first call
            seen.add(c.agent)
            counter.labels(c.agent, "ok"), counter.labels(c.agent, "error")
            duration.labels(c.agent), chars.labels(c.agent)
        ex = {"trace_id": c.trace_id, "span_id": c.span_id or ""} if c.trace_id else None
        counter.labels(c.agent, "error" if c.error else "ok").inc(exemplar=ex)
        duration.labels(c.agent).observe(c.duration_s, exemplar=ex)
        if c.output_chars is not None:
            chars.labels(c.agent).observe(c.output_chars)
    return registry


def _samples(registry: CollectorRegistry) -> list[tuple]:
    """The call metrics' samples, without the times prometheus_client stamps (``_created``, exemplar time)."""
    names = {n.removesuffix("_total") for n in CALL_METRICS}
    out = []
    for family in registry.collect():
        if family.name not in names:
            continue
        for s in family.samples:
            ex = (s.exemplar.labels, s.exemplar.value) if s.exemplar else None
            out.append((family.name, family.type, family.documentation, s.name, s.labels,
                        None if s.name.endswith("_created") else s.value, ex))
    return out


def test_the_collector_gives_prometheus_clients_samples_and_exemplars() -> None:
    """Counts, cumulative buckets (bounds, +Inf, negative and infinite durations), sums, exemplars and the
    ``_created`` series: sample for sample what prometheus_client's Counter and Histogram give."""
    calls = list(_calls())
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    assert metrics.call_series is not None  # the collector, not prometheus_client's objects
    for c in calls:
        metrics.on_call(c)
    reference = _reference(calls)
    ours = _samples(registry)
    assert ours == _samples(reference)
    assert any(ex is not None for *_, ex in ours)  # the comparison covers exemplars
    text = generate_latest(registry).decode()
    assert 'driftwatch_calls_total{agent="bot",status="error"} ' in text
    assert f'trace_id="{TRACE}"' in text


class _YieldingFloat(float):
    """A duration whose addition to a sum lets another thread run between the sum's read and its write (the
    interpreter alone rarely switches there, so a missing lock would pass unnoticed)."""

    def __radd__(self, other: float) -> float:
        time.sleep(0)
        return other + float(self)


def test_no_increment_is_lost_across_threads() -> None:
    """8 threads recording calls of one agent at once, switching as often as possible: every call is in the
    counter, the histograms' counts and their sums."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    threads, per_thread = 8, 2000
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        call = Call(agent="bot", duration_s=_YieldingFloat(0.5), output_chars=100)
        for _ in range(per_thread):
            metrics.on_call(call)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        sys.setswitchinterval(interval)
    n = threads * per_thread
    value = registry.get_sample_value
    assert value("driftwatch_calls_total", {"agent": "bot", "status": "ok"}) == n
    assert value("driftwatch_call_duration_seconds_count", {"agent": "bot"}) == n
    assert value("driftwatch_call_duration_seconds_sum", {"agent": "bot"}) == 0.5 * n
    assert value("driftwatch_call_duration_seconds_bucket", {"agent": "bot", "le": "0.25"}) == 0
    assert value("driftwatch_call_duration_seconds_bucket", {"agent": "bot", "le": "0.5"}) == n
    assert value("driftwatch_output_chars_count", {"agent": "bot"}) == n
    assert value("driftwatch_output_chars_sum", {"agent": "bot"}) == 100 * n


@pytest.mark.parametrize("name", ["driftwatch_calls_total", "driftwatch_call_duration_seconds_count",
                                  "driftwatch_output_chars_count"])
def test_an_evicted_agent_loses_its_call_series(name: str) -> None:
    """``forget_agent`` removes the agent's call series; another agent's stay (the positive control)."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for agent in ("old", "kept"):
        metrics.on_call(Call(agent=agent, duration_s=0.01, output_chars=3))
    labels = {"status": "ok"} if name == "driftwatch_calls_total" else {}
    assert registry.get_sample_value(name, {"agent": "old", **labels}) == 1
    metrics.forget_agent("old")
    assert registry.get_sample_value(name, {"agent": "old", **labels}) is None
    assert registry.get_sample_value(name, {"agent": "kept", **labels}) == 1
    metrics.on_call(Call(agent="old", duration_s=0.01))  # back: new series from zero
    assert registry.get_sample_value("driftwatch_calls_total", {"agent": "old", "status": "ok"}) == 1
