"""Memory and series over 1M watched calls: a new agent name on every call, against one agent (issue 11, item 2).

Run:  .venv/bin/python benchmarks/bench_memory.py [--calls 1000000] [--track]

Each mode runs in its own child process (same run, same settings: defaults, an SQLite ledger in a temporary
directory, a fresh Prometheus registry, no tracer provider):

- one-agent   every call under the same agent name
- new-agent   every call under a new agent name (``user-0``, ``user-1`` …), each through its own
              ``driftwatch.watch(fn, agent=name)`` wrapper, as a server that names agents per tenant would

``--track`` adds a ``driftwatch.track()`` of the agent's prompt to every call (a new baseline in the ledger for
every new agent: with an SQLite file that is one fsync'ed write per call, so use fewer calls, e.g. 100,000).
Reported: resident memory (VmRSS) after a warm-up of 20,000 calls and then every quarter, its growth over the run,
the Prometheus series at the end (samples of the registry), and the agents with state of their own. The goal:
growth under 20 MB with a new agent on every call; the ratio is against one agent.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WARMUP = 20_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(mode: str, calls: int, track: bool) -> dict:
    from prometheus_client import CollectorRegistry

    import driftwatch

    with tempfile.TemporaryDirectory() as tmp:
        registry = CollectorRegistry()
        rt = driftwatch.configure(ledger=str(Path(tmp) / "dw.db"), registry=registry)

        def answer(i: int) -> str:
            return "a short answer" if i % 3 else "a somewhat longer answer, with more words in it"

        one = driftwatch.watch(answer, agent="bot")
        samples: list[tuple[int, float]] = []
        checkpoints = {WARMUP, *(WARMUP + (calls - WARMUP) * q // 4 for q in (1, 2, 3, 4))}
        started = time.perf_counter()
        for i in range(calls):
            if mode == "one-agent":
                one(i)
                if track:
                    driftwatch.track("bot", "system_prompt", "You are a helpful assistant.")
            else:
                name = f"user-{i}"
                driftwatch.watch(answer, agent=name)(i)
                if track:
                    driftwatch.track(name, "system_prompt", f"You are the assistant of user {i}.")
            if i + 1 in checkpoints:
                gc.collect()
                samples.append((i + 1, rss_mb()))
        elapsed = time.perf_counter() - started
        series = sum(len(family.samples) for family in registry.collect())
        with_state = len(rt.drift.agents()) if rt.drift is not None else len(getattr(rt, "names", ()))
        out = {"mode": mode, "calls": calls, "samples": samples, "growth_mb": samples[-1][1] - samples[0][1],
               "series": series, "agents_with_state": with_state, "us_per_call": elapsed / calls * 1e6,
               "dropped_agents": registry.get_sample_value("driftwatch_dropped_total", {"what": "agent"}) or 0.0}
        rt.close()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--track", action="store_true", help="also track() a prompt on every call")
    parser.add_argument("--child", choices=("one-agent", "new-agent"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calls <= WARMUP:
        parser.error(f"--calls must be more than the warm-up ({WARMUP})")
    if args.child:
        print(json.dumps(child(args.child, args.calls, args.track)))
        return
    results = {}
    for mode in ("one-agent", "new-agent"):
        cmd = [sys.executable, __file__, "--child", mode, "--calls", str(args.calls)]
        cmd += ["--track"] if args.track else []
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{args.calls:,} watched calls{' + track()' if args.track else ''} per mode "
          f"(RSS after {WARMUP:,} warm-up calls, then each quarter)")
    for mode, r in results.items():
        trail = "  ".join(f"{n // 1000:,}k:{mb:.0f}" for n, mb in r["samples"])
        print(f"  {mode:10s} RSS MB {trail}  growth {r['growth_mb']:+.1f} MB  series {r['series']:,}  "
              f"agents with state {r['agents_with_state']}  folded {r['dropped_agents']:,.0f}  "
              f"{r['us_per_call']:.1f} µs/call")
    one, new = results["one-agent"], results["new-agent"]
    print(f"  new-agent / one-agent: growth {new['growth_mb'] - one['growth_mb']:+.1f} MB more, "
          f"series x{new['series'] / one['series']:.1f}, time per call x{new['us_per_call'] / one['us_per_call']:.2f}")
    print(f"  goal: growth < 20 MB with a new agent on every call: {'met' if new['growth_mb'] < 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
