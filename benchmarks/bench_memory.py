"""Memory and series over 1M watched calls: one agent, one agent changing, 200 agents, a new agent on every call
(issue 11, item 2; issue 15).

Run:  .venv/bin/python benchmarks/bench_memory.py [--calls 1000000] [--track] [--modes one-agent,changes,...]

Each mode runs in its own child process (same run, same settings: defaults, an SQLite ledger in a temporary
directory, a fresh Prometheus registry, no tracer provider):

- one-agent   every call under the same agent name
- changes     one agent that ``driftwatch.track()``s its ~4 KB prompt on every call; the prompt changes every
              10,000 calls (a change event: fingerprint, diff, ledger row, span-less sinks, a new drift reference);
              also reported: ledger bytes per change (the pages of the ``revisions`` and ``changes`` tables and
              their indexes in the SQLite file at the end, from SQLite's ``dbstat``, divided by the changes)
- 200-agents  calls spread round-robin over 200 agents, each its own ``driftwatch.watch`` wrapper
- new-agent   every call under a new agent name (``user-0``, ``user-1`` …), each through its own
              ``driftwatch.watch(fn, agent=name)`` wrapper, as a server that names agents per tenant would

``--track`` adds a ``driftwatch.track()`` of the agent's prompt to every call (a new baseline in the ledger for
every new agent: with an SQLite file that is one fsync'ed write per call, so use fewer calls, e.g. 100,000).
Reported: resident memory (VmRSS) after a warm-up of 20,000 calls and then every quarter, its growth over the run,
the Prometheus series at the end (samples of the registry), and the agents with state of their own. The goal:
growth under 20 MB with a new agent on every call (issue 11); under 5 MB for one-agent, changes and 200-agents
(issue 15); the ratio is against one agent.
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
CHANGE_EVERY = 10_000
AGENTS = 200
MODES = ("one-agent", "changes", "200-agents", "new-agent")
PROMPT = "You are a careful support assistant. Answer briefly and cite the knowledge base. " * 50  # ~4 KB


def change_bytes(path: Path) -> int:
    """Bytes of the pages that hold revisions and changes (tables and indexes) in a closed SQLite ledger."""
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT SUM(s.pgsize) FROM dbstat s JOIN sqlite_master m ON m.name = s.name "
                          "WHERE m.tbl_name IN ('revisions', 'changes')").fetchone()
    finally:
        con.close()
    return int(row[0] or 0)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def warmup_of(mode: str, calls: int, reference_calls: int) -> int:
    """Calls before RSS is expected flat: 20,000; with 200 agents, until each agent's drift reference is full
    (200 × ``drift_reference_calls``: its bounded per-agent state), at most half the run."""
    if mode != "200-agents":
        return WARMUP
    return max(WARMUP, min(AGENTS * reference_calls, calls // 2))


def child(mode: str, calls: int, track: bool) -> dict:
    from prometheus_client import CollectorRegistry

    import driftwatch

    with tempfile.TemporaryDirectory() as tmp:
        registry = CollectorRegistry()
        rt = driftwatch.configure(ledger=str(Path(tmp) / "dw.db"), registry=registry)

        def answer(i: int) -> str:
            return "a short answer" if i % 3 else "a somewhat longer answer, with more words in it"

        one = driftwatch.watch(answer, agent="bot")
        many = [driftwatch.watch(answer, agent=f"agent-{n}") for n in range(AGENTS)]
        db = Path(tmp) / "dw.db"
        samples: list[tuple[int, float]] = []
        warmup = warmup_of(mode, calls, rt.settings.drift_reference_calls)
        checkpoints = {WARMUP, warmup, *(warmup + (calls - warmup) * q // 4 for q in (1, 2, 3, 4))}
        started = time.perf_counter()
        for i in range(calls):
            if mode == "one-agent":
                one(i)
                if track:
                    driftwatch.track("bot", "system_prompt", "You are a helpful assistant.")
            elif mode == "changes":
                driftwatch.track("bot", "system_prompt", f"{PROMPT} (revision {i // CHANGE_EVERY})")
                one(i)
            elif mode == "200-agents":
                many[i % AGENTS](i)
                if track:
                    driftwatch.track(f"agent-{i % AGENTS}", "system_prompt", "You are a helpful assistant.")
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
        at_warmup = next(mb for n, mb in samples if n == warmup)
        out = {"mode": mode, "calls": calls, "samples": samples, "growth_mb": samples[-1][1] - at_warmup,
               "warmup": warmup, "growth_from_first_mb": samples[-1][1] - samples[0][1],
               "series": series, "agents_with_state": with_state, "us_per_call": elapsed / calls * 1e6,
               "dropped_agents": registry.get_sample_value("driftwatch_dropped_total", {"what": "agent"}) or 0.0}
        if mode == "changes":
            rt.ledger.flush(30)
            out["changes"] = len(rt.ledger.changes(agent="bot"))
        rt.close()
        if mode == "changes":
            out["bytes_per_change"] = change_bytes(db) / max(1, out["changes"])
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--track", action="store_true", help="also track() a prompt on every call")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calls <= WARMUP:
        parser.error(f"--calls must be more than the warm-up ({WARMUP})")
    if args.child:
        print(json.dumps(child(args.child, args.calls, args.track)))
        return
    modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"--modes: unknown {', '.join(unknown)}; expected {', '.join(MODES)}")
    results = {}
    for mode in modes:
        cmd = [sys.executable, __file__, "--child", mode, "--calls", str(args.calls)]
        cmd += ["--track"] if args.track else []
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{args.calls:,} watched calls{' + track()' if args.track else ''} per mode "
          f"(RSS after {WARMUP:,} calls, after the warm-up, then each quarter; growth: from the warm-up)")
    for mode, r in results.items():
        trail = "  ".join(f"{n // 1000:,}k:{mb:.0f}" for n, mb in r["samples"])
        extra = (f"  changes {r['changes']}  ledger {r['bytes_per_change'] / 1024:.1f} KiB/change"
                 if "changes" in r else "")
        since = f" (from 20k: {r['growth_from_first_mb']:+.1f} MB)" if r["warmup"] != WARMUP else ""
        print(f"  {mode:10s} RSS MB {trail}  warm-up {r['warmup'] // 1000:,}k  growth {r['growth_mb']:+.1f} MB{since}  "
              f"series {r['series']:,}  "
              f"agents with state {r['agents_with_state']}  folded {r['dropped_agents']:,.0f}  "
              f"{r['us_per_call']:.1f} µs/call{extra}")
    one = results.get("one-agent")
    for mode in ("changes", "200-agents", "new-agent"):
        if one is not None and mode in results:
            r = results[mode]
            print(f"  {mode} / one-agent: growth {r['growth_mb'] - one['growth_mb']:+.1f} MB more, "
                  f"series x{r['series'] / one['series']:.1f}, "
                  f"time per call x{r['us_per_call'] / one['us_per_call']:.2f}")
    for mode, limit in (("one-agent", 5), ("changes", 5), ("200-agents", 5), ("new-agent", 20)):
        if mode in results:
            ok = results[mode]["growth_mb"] < limit
            print(f"  goal: {mode} growth < {limit} MB after warm-up: {'met' if ok else 'NOT met'} "
                  f"({results[mode]['growth_mb']:+.1f} MB)")


if __name__ == "__main__":
    main()
