"""Added cost of @driftwatch.watch per call on a trivial function.

Run:  .venv/bin/python benchmarks/bench_decorator.py [--calls 20000] [--rounds 7]

Modes, interleaved in rounds within one process (medians reported, ratio to bare):
- bare            the undecorated function
- watched         @watch with tracing off (metrics, per-call signals, drift engine, no spans)
- watched-nodrift the same with the drift engine off (metrics and per-call signals only)
- watched+otel    @watch with an SDK TracerProvider, SimpleSpanProcessor, in-memory exporter
- watched+track   watched+otel, plus a driftwatch.track() of an unchanged 4 KB prompt in the body
"""

from __future__ import annotations

import argparse
import statistics
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import driftwatch
from driftwatch.config import Settings
from driftwatch.runtime import Runtime, set_runtime

PROMPT = "You are a careful assistant. " * 140  # ~4 KB


def trivial(x: int) -> str:
    return "ok"


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls * 1e6


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

    watched = driftwatch.watch(trivial, agent="bench")

    @driftwatch.watch(agent="bench-track")
    def tracked(x: int) -> str:
        driftwatch.track("bench-track", "system_prompt", PROMPT)
        return "ok"

    modes = {
        "bare": (None, trivial),
        "watched": (rt_plain, watched),
        "watched-nodrift": (rt_nodrift, watched),
        "watched+otel": (rt_otel, watched),
        "watched+track": (rt_otel, tracked),
    }
    results: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for name, (rt, fn) in modes.items():
            set_runtime(rt or rt_plain)
            results[name].append(per_call_us(fn, args.calls))
            exporter.clear()
    bare = statistics.median(results["bare"])
    print(f"{'mode':<16} {'µs/call':>9} {'added µs':>9} {'ratio':>8}")
    for name in modes:
        med = statistics.median(results[name])
        print(f"{name:<16} {med:9.2f} {med - bare:9.2f} {med / bare:7.1f}x")


if __name__ == "__main__":
    main()
