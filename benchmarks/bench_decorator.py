"""Added cost of @driftwatch.watch per call on a trivial function, sync and async.

Run:  .venv/bin/python benchmarks/bench_decorator.py [--calls 20000] [--rounds 7]

Modes, interleaved in rounds within one process (medians reported; added µs and ratio against the bare
function of the same kind measured in the same run):
- bare            the undecorated function
- watched         @watch with tracing off (metrics, per-call signals, drift engine, no spans)
- watched-nodrift the same with the drift engine off (metrics and per-call signals only)
- watched+otel    @watch with an SDK TracerProvider, SimpleSpanProcessor, in-memory exporter
- watched+batch   the same with a BatchSpanProcessor (what production uses)
- watched+track   watched+otel, plus a driftwatch.track() of an unchanged 4 KB prompt in the body
- bare-async      an ``async def`` awaited in a loop on one event loop
- watched-async   the same under @watch, tracing off (against bare-async)

Goal (issue 15): the decorator adds ≤ 5 µs per call without tracing (``watched``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import driftwatch
from driftwatch.config import Settings
from driftwatch.runtime import Runtime, set_runtime

PROMPT = "You are a careful assistant. " * 140  # ~4 KB


def trivial(x: int) -> str:
    return "ok"


async def atrivial(x: int) -> str:
    return "ok"


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls * 1e6


def per_acall_us(fn, calls: int) -> float:
    async def loop() -> float:
        start = time.perf_counter()
        for i in range(calls):
            await fn(i)
        return (time.perf_counter() - start) / calls * 1e6

    return asyncio.run(loop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rt_plain = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), tracing=False, audit=False))
    rt_nodrift = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), tracing=False,
                                           audit=False, drift=False))
    rt_otel = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), tracer_provider=provider,
                                        audit=False))
    batch_provider = TracerProvider()
    batch_provider.add_span_processor(BatchSpanProcessor(exporter))
    rt_batch = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(),
                                         tracer_provider=batch_provider, audit=False))

    watched = driftwatch.watch(trivial, agent="bench")
    awatched = driftwatch.watch(atrivial, agent="bench-async")

    @driftwatch.watch(agent="bench-track")
    def tracked(x: int) -> str:
        driftwatch.track("bench-track", "system_prompt", PROMPT)
        return "ok"

    modes = {
        "bare": (None, trivial, per_call_us),
        "watched": (rt_plain, watched, per_call_us),
        "watched-nodrift": (rt_nodrift, watched, per_call_us),
        "watched+otel": (rt_otel, watched, per_call_us),
        "watched+batch": (rt_batch, watched, per_call_us),
        "watched+track": (rt_otel, tracked, per_call_us),
        "bare-async": (None, atrivial, per_acall_us),
        "watched-async": (rt_plain, awatched, per_acall_us),
    }
    results: dict[str, list[float]] = {m: [] for m in modes}
    names = list(modes)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            rt, fn, timer = modes[name]
            set_runtime(rt or rt_plain)
            results[name].append(timer(fn, args.calls))
            exporter.clear()
    batch_provider.force_flush()
    exporter.clear()
    print(f"trivial function, {args.rounds} rounds x {args.calls} calls per mode, interleaved, wall clock")
    print(f"{'mode':<16} {'µs/call':>9} {'added µs':>9} {'ratio':>8}")
    for name in modes:
        med = statistics.median(results[name])
        bare = statistics.median(results["bare-async" if name.endswith("-async") else "bare"])
        print(f"{name:<16} {med:9.2f} {med - bare:9.2f} {med / bare:7.1f}x")


if __name__ == "__main__":
    main()
