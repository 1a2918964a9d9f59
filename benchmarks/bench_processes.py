"""Added cost per call with each mode in a process of its own (LangGraph and DSPy, spans through a BatchSpanProcessor).

Run:  .venv/bin/python benchmarks/bench_processes.py [--rounds 4] [--calls 1500] [--warmup 300] [--only langgraph,dspy]

``bench_langgraph.py`` and ``bench_dspy.py`` interleave their modes in one process (paired rounds: load hits every
mode alike). This one checks that design from the other side: every mode runs in a fresh process of its own — the
program built, driftwatch configured and watching (or not) once, ``--warmup`` calls, then ``--calls`` calls timed
on the process's CPU clock (all its threads) — and the modes alternate, round after round, in a rotated order.
Reported per mode: the median over rounds of µs per call, its difference from bare's median, the ratio of the
medians, the spread of the per-round ratios to that round's bare (min..max), and the median of voluntary context
switches per call (all the process's threads: a background thread woken while the host thread runs shows here; see
``driftwatch/call_batch.py``, "The hand-over"). A fresh process differs from
the next in memory layout and hash seed, so expect wider spreads than the interleaved benchmarks'; read the
medians. Modes (the same programs and settings as the interleaved benchmarks):

- ``langgraph/bare``, ``langgraph/sdk-span`` (one plain SDK span per invoke), ``langgraph/watched`` (Batch spans),
  ``langgraph/watched-notrace`` (no tracing)
- ``dspy/bare``, ``dspy/sdk-span``, ``dspy/watched+batch``, ``dspy/watched`` (no SDK)

Every process builds the same TracerProvider with a BatchSpanProcessor and an in-memory exporter, used or not, so
only the mode differs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODES = {
    "langgraph": ("bare", "sdk-span", "watched", "watched-notrace"),
    "dspy": ("bare", "sdk-span", "watched+batch", "watched"),
}


def _provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    return provider


def _runtime(provider: Any, *, tracing: bool) -> None:
    from prometheus_client import CollectorRegistry

    from driftwatch.config import Settings
    from driftwatch.runtime import Runtime, set_runtime

    kw: dict[str, Any] = {"tracer_provider": provider} if tracing else {"tracing": False}
    set_runtime(Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), audit=False, **kw)))


def _langgraph(mode: str, provider: Any) -> Any:
    from bench_langgraph import PROMPT, Spanned, build

    import driftwatch

    graph = build()
    if mode in ("watched", "watched-notrace"):
        _runtime(provider, tracing=mode == "watched")
        graph = driftwatch.watch(graph, agent="bench")
    elif mode == "sdk-span":
        graph = Spanned(graph, provider)
    state = {"system_prompt": PROMPT, "question": "How do I reset my password?"}
    return lambda i: graph.invoke(state)


def _dspy(mode: str, provider: Any) -> Any:
    import itertools

    import dspy
    from bench_dspy import ANSWER, Pipeline, in_span
    from dspy.utils import DummyLM

    import driftwatch

    dspy.configure(lm=DummyLM(itertools.repeat(ANSWER)))
    program = Pipeline()
    if mode in ("watched", "watched+batch"):
        _runtime(provider, tracing=mode == "watched+batch")
        driftwatch.watch(program, agent="bench")
    if mode == "sdk-span":
        return in_span(program, provider.get_tracer("bench"))
    return lambda i: program(question=f"What is the capital of France? ({i % 7})")


def child(workload: str, mode: str, calls: int, warmup: int) -> tuple[float, float]:
    """µs per call on the process's CPU clock, and voluntary context switches per call (all threads)."""
    import resource

    sys.path.insert(0, str(HERE))
    provider = _provider()
    call = (_langgraph if workload == "langgraph" else _dspy)(mode, provider)
    for i in range(warmup):
        call(i)
    switches = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    start = time.process_time()
    for i in range(calls):
        call(i)
    spent = time.process_time() - start
    switches = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - switches
    return spent / calls * 1e6, switches / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=1500, help="timed calls per process")
    parser.add_argument("--warmup", type=int, default=300, help="calls before the timed ones")
    parser.add_argument("--only", default="langgraph,dspy", help="comma-separated, of langgraph, dspy")
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name, value in (("--rounds", args.rounds), ("--calls", args.calls)):
        if value < 1:
            parser.error(f"{name} must be at least 1 (got {value})")
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more (got {args.warmup})")
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.calls, args.warmup)))
        return
    workloads = [w for w in args.only.split(",") if w]
    unknown = sorted(set(workloads) - set(MODES))
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; expected {', '.join(MODES)}")
    print(f"each mode in a process of its own: {args.rounds} rounds, {args.warmup} warm-up + {args.calls} timed calls "
          "per process, cpu clock, batch span processor")
    for workload in workloads:
        modes = MODES[workload]
        us: dict[str, list[float]] = {m: [] for m in modes}
        switched: dict[str, list[float]] = {m: [] for m in modes}
        for r in range(args.rounds):
            for mode in modes[r % len(modes):] + modes[:r % len(modes)]:
                cmd = [sys.executable, __file__, "--child", workload, mode, "--calls", str(args.calls),
                       "--warmup", str(args.warmup)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode:
                    sys.exit(f"{workload}/{mode} failed:\n{proc.stderr[-2000:]}")
                spent, switches = json.loads(proc.stdout.strip().splitlines()[-1])
                us[mode].append(spent)
                switched[mode].append(switches)
            print(f"  ({workload} round {r + 1}/{args.rounds} done)", file=sys.stderr, flush=True)
        base = statistics.median(us["bare"])
        print(f"{workload}: mode            µs/call  added µs   ratio   (per-round ratios min..max)   switches/call")
        for mode in modes:
            ratios = [u / b for u, b in zip(us[mode], us["bare"], strict=True)]
            med = statistics.median(us[mode])
            print(f"{workload + '/' + mode:24s} {med:9.1f} {med - base:9.1f}   {med / base:.2f}x   "
                  f"({min(ratios):.2f}..{max(ratios):.2f})          {statistics.median(switched[mode]):.3f}")


if __name__ == "__main__":
    main()
