"""Throughput with every sink on (1 thread and 8 threads), and the cost of one change event for a 4 KB and a 1 MB
prompt (issue 15).

Run:  .venv/bin/python benchmarks/bench_throughput.py [--seconds 5] [--changes 20]

One process, everything on: Prometheus metrics (a fresh registry), spans through an SDK ``TracerProvider`` with a
``BatchSpanProcessor`` (its exporter drops the spans: the export itself is not measured), the JSON audit log to a
file, the drift engine, an SQLite ledger file (WAL, fsync per commit). The watched agent is a trivial function,
so the figures are driftwatch's own ceiling per process; CPython runs one thread at a time, so 8 threads share it.

- throughput: calls per second (wall) through ``@driftwatch.watch`` for ``--seconds``, from 1 thread and from
  8 threads (each calling in a loop), with a bare loop in the same run for scale;
- change event: ``driftwatch.track()`` of a prompt that differs from the last one (an edit in its middle), ~4 KB
  and ~1 MB, each ``--changes`` times: the time the host waits (fingerprint, diff, guard, spans, metrics, audit,
  and the ledger commit within ``ledger_wait_s``), then the time until the ledger has committed it
  (``flush``), and its parts timed apart: the fingerprint (canonical JSON + blake2b) and the diff
  (``magnitude`` + changed paths).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

import driftwatch
from driftwatch.revision import changed_paths, fingerprint, magnitude

SENTENCE = "You are a careful support assistant. Answer briefly, cite the knowledge base and never guess. "


class DropExporter(SpanExporter):
    """Accepts spans and keeps none (the processor's work is measured, not an export)."""

    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def prompt_of(size: int, version: int) -> str:
    """A prompt of ~``size`` characters whose middle carries ``version`` (each version is a change)."""
    body = (SENTENCE * (size // len(SENTENCE) + 1))[:size]
    half = len(body) // 2
    return f"{body[:half]} [rule {version}: answer in at most {version % 7 + 2} sentences] {body[half:]}"


def throughput(fn: Any, threads: int, seconds: float) -> float:
    """Calls per second of ``fn`` from ``threads`` threads calling it in a loop for ``seconds``."""
    stop = threading.Event()
    counts = [0] * threads

    def loop(k: int) -> None:
        n = 0
        while not stop.is_set():
            for i in range(100):
                fn(i)
            n += 100
        counts[k] = n

    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - started)


def change_costs(rt: Any, size: int, changes: int) -> dict[str, float]:
    agent = f"prompt-{size}"
    driftwatch.track(agent, "system_prompt", prompt_of(size, 0))  # the baseline
    rt.ledger.flush(30)
    host, durable, fp, diff = [], [], [], []
    for v in range(1, changes + 1):
        before, after = prompt_of(size, v - 1), prompt_of(size, v)
        t0 = time.perf_counter()
        change = driftwatch.track(agent, "system_prompt", after)
        t1 = time.perf_counter()
        rt.ledger.flush(60)
        t2 = time.perf_counter()
        assert change is not None, "every version is a change"
        host.append(t1 - t0)
        durable.append(t2 - t0)
        t3 = time.perf_counter()
        fingerprint(after)
        t4 = time.perf_counter()
        magnitude(before, after)
        changed_paths(before, after)
        t5 = time.perf_counter()
        fp.append(t4 - t3)
        diff.append(t5 - t4)
    ms = 1e3
    return {"chars": len(prompt_of(size, 1)), "host_ms": statistics.median(host) * ms,
            "durable_ms": statistics.median(durable) * ms, "fingerprint_ms": statistics.median(fp) * ms,
            "diff_ms": statistics.median(diff) * ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput mode")
    parser.add_argument("--changes", type=int, default=20, help="change events per prompt size")
    args = parser.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    with tempfile.TemporaryDirectory() as tmp:
        rt = driftwatch.configure(ledger=str(Path(tmp) / "dw.db"), registry=CollectorRegistry(),
                                  tracer_provider=provider, audit_log=str(Path(tmp) / "audit.jsonl"))

        def answer(i: int) -> str:
            return "a short answer" if i % 3 else "a somewhat longer answer, with more words in it"

        watched = driftwatch.watch(answer, agent="bot")
        throughput(watched, 1, min(1.0, args.seconds))  # warm-up
        rates = {"bare, 1 thread": throughput(answer, 1, args.seconds),
                 "watched, 1 thread": throughput(watched, 1, args.seconds),
                 "watched, 8 threads": throughput(watched, 8, args.seconds)}
        print(f"throughput, all sinks on (metrics, SDK spans via BatchSpanProcessor, audit log file, drift, "
              f"SQLite ledger), {args.seconds:g} s per mode, wall clock")
        print(f"{'mode':<20} {'calls/s':>12} {'µs/call':>9}")
        for name, rate in rates.items():
            print(f"{name:<20} {rate:12,.0f} {1e6 / rate:9.2f}")
        print(f"8 threads / 1 thread: x{rates['watched, 8 threads'] / rates['watched, 1 thread']:.2f} "
              "(one interpreter lock: the threads share one core's worth of Python)")
        errors = dict(rt.error_counts)

        print(f"\nchange event (track() of an edited prompt), median of {args.changes} per size")
        print(f"{'prompt':>10} {'host waits ms':>14} {'durable ms':>11} {'fingerprint ms':>15} {'diff ms':>8}")
        for size in (4 * 1024, 1024 * 1024):
            c = change_costs(rt, size, args.changes)
            print(f"{c['chars']:>10,} {c['host_ms']:14.2f} {c['durable_ms']:11.2f} {c['fingerprint_ms']:15.2f} "
                  f"{c['diff_ms']:8.2f}")
        print(f"(the host waits at most ledger_wait_s = {rt.settings.ledger_wait_s * 1e3:.0f} ms for the ledger; "
              "a longer commit goes on in the background)")
        errors = {k: v for k, v in rt.error_counts.items() if v} or errors
        if errors:
            print(f"internal errors counted (driftwatch_internal_errors_total, by stage): {errors}")
        rt.close()
        provider.shutdown()


if __name__ == "__main__":
    main()
