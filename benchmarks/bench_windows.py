"""Added cost of the call windows (driftwatch.windows) per watched call, and of the report.

Run:  .venv/bin/python benchmarks/bench_windows.py [--calls 20000] [--rounds 7]

Modes, interleaved in rounds within one process (medians reported, ratio to bare):
- bare              the undecorated function
- watched-nowindows @watch with tracing and drift off, and the window aggregator replaced by a no-op
- watched           the same with the call windows on (a file ledger: each closed window is one SQLite write)
Then: the time to build a report from a ledger of 20 changes and 2,000 call windows.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

import driftwatch
from driftwatch.config import Settings
from driftwatch.ledger import open_ledger
from driftwatch.observation import Call
from driftwatch.report import build_report
from driftwatch.runtime import Runtime, set_runtime
from driftwatch.windows import CallWindow


class _NoWindows:
    def on_call(self, call: Call) -> None:
        pass

    def flush(self, agent: str | None = None) -> None:
        pass


def trivial(x: int) -> str:
    return "ok"


def per_call_us(fn, calls: int) -> float:  # any one-argument callable
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls * 1e6


def report_ms(tmp: Path) -> float:
    path = str(tmp / "report.db")
    led = open_ledger(path)
    with_rt = Runtime(Settings.from_env(ledger=path, registry=CollectorRegistry(), tracing=False, audit=False,
                                        drift=False), ledger=led)
    t = time.time() - 10_000
    for i in range(2000):
        if i % 100 == 0:
            with_rt.observe("bench", "prompt", f"prompt {i // 100}", source="agent")
        led.record_window(CallWindow("bench", t + i, t + i + 1, calls=100, sized_calls=100, output_chars=100 * i,
                                     checked_calls=100, refusals=i % 7, input_tokens=500, output_tokens=900))
    start = time.perf_counter()
    page = build_report(led)
    elapsed = (time.perf_counter() - start) * 1e3
    print(f"report: 20 changes, 2,000 windows -> {len(page):,} bytes in {elapsed:.0f} ms")
    with_rt.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        def runtime(name: str) -> Runtime:
            return Runtime(Settings.from_env(ledger=str(Path(tmp) / name), registry=CollectorRegistry(),
                                             tracing=False, audit=False, drift=False))

        rt_on, rt_off = runtime("on.db"), runtime("off.db")
        rt_off.windows = _NoWindows()  # type: ignore[assignment]  # the no-op stand-in measured against
        watched = driftwatch.watch(trivial, agent="bench")
        results: dict[str, list[float]] = {"bare": [], "watched-nowindows": [], "watched": []}
        for _ in range(args.rounds):
            results["bare"].append(per_call_us(trivial, args.calls))
            set_runtime(rt_off)
            results["watched-nowindows"].append(per_call_us(watched, args.calls))
            set_runtime(rt_on)
            results["watched"].append(per_call_us(watched, args.calls))
        set_runtime(None)
        bare = statistics.median(results["bare"])
        print(f"{args.rounds} rounds x {args.calls} calls, medians:")
        for mode, values in results.items():
            med = statistics.median(values)
            print(f"  {mode:18s} {med:8.2f} us/call  {med / bare:6.2f}x bare")
        off, on = statistics.median(results["watched-nowindows"]), statistics.median(results["watched"])
        print(f"call windows add {on - off:.2f} us/call ({on / off:.3f}x watched without them); "
              f"{len(open_ledger(str(Path(tmp) / 'on.db'), readonly=True).windows())} windows written")
        rt_on.close()
        rt_off.close()
        report_ms(Path(tmp))


if __name__ == "__main__":
    main()
