"""Fleet benchmark: N replicas of one agent, each alone with 1/N of the budget vs pooling their evidence.

    .venv/bin/python benchmarks/drift/bench_fleet.py --quick
    .venv/bin/python benchmarks/drift/bench_fleet.py --held-out

For N = 1, 3 and 10 replicas of one random agent (``profiles.py``): each replica freezes its own reference
(its last 1000 calls before the change), then the fleet's monitored calls are spread at random over the
replicas. Two designs, at the same fleet-wide budget (1 false alarm per 10k fleet calls):

* **split** (``drift_replicas=N``, today's default): each replica's bank at ``1e-4 / N``, alone; the fleet
  alarms at the first replica alarm;
* **pooled** (``drift_pool=True``): each replica's own bank at ``(1e-4 / 2) / N`` plus the fleet's pooled
  statistics (:mod:`driftwatch.drift.fleet`) at ``1e-4 / 2``, evaluated at every poll — here every
  ``--poll`` calls per replica (e.g. every 2 s at 10 calls per second) — on the evidence every replica
  published at that poll.

Reported: false alarms per 10k fleet calls on no-change streams, and per change kind (medium) the share
detected within ``--horizon`` fleet calls and the median delay in fleet calls.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profiles import DEV_SEEDS, HELD_OUT_SEEDS, KINDS, Change, make_change, make_profile, records  # local module

from driftwatch.drift import DriftMonitor  # after the sys.path tweak
from driftwatch.drift.fleet import FleetPool, replay

ALPHA = 1e-4
N_REF = 1000


def fleet_stream(seed: int, kind: str | None, level: str, n_replicas: int, n_post: int):
    rng = np.random.default_rng(seed)
    prof = make_profile(seed)
    ch = make_change(prof, kind, level, rng)
    refs = [records(prof, Change(), N_REF, rng)[0] for _ in range(n_replicas)]
    post = records(prof, ch, n_post, rng, start=N_REF)[0]
    who = rng.integers(0, n_replicas, size=n_post)
    return refs, post, who


def run(refs, post, who, mode: str, poll: int, *, count_all: bool) -> list[int]:
    """Fleet alarm positions (1-based fleet calls since the change)."""
    n = len(refs)
    if mode == "split":
        mons = [DriftMonitor(ALPHA, replicas=n) for _ in range(n)]
    else:
        mons = [DriftMonitor(ALPHA, replicas=n, pool_rate=ALPHA / 2) for _ in range(n)]
    for m, ref in zip(mons, refs, strict=True):
        m.fit_reference(ref)
    pool = FleetPool(ALPHA / 2) if mode == "pooled" else None
    return replay(mons, zip((int(k) for k in who), post, strict=True), pool, poll * n, count_all=count_all)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer streams and trials")
    ap.add_argument("--held-out", action="store_true", help="held-out profiles (default: development)")
    ap.add_argument("--replicas", default="1,3,10")
    ap.add_argument("--trials", type=int, help="trials per kind and fleet size (default 20; --quick 5)")
    ap.add_argument("--null-calls", type=int, help="no-change fleet calls per fleet size (default 200k; --quick 60k)")
    ap.add_argument("--poll", type=int, default=20, help="calls per replica between polls")
    ap.add_argument("--horizon", type=int, default=6000, help="monitored fleet calls per change trial")
    args = ap.parse_args()
    trials = args.trials or (5 if args.quick else 20)
    null_calls = args.null_calls or (60_000 if args.quick else 200_000)
    base = (HELD_OUT_SEEDS if args.held_out else DEV_SEEDS) + 3_000_000
    t0 = time.perf_counter()
    sizes = [int(x) for x in args.replicas.split(",")]
    rows = []
    for n in sizes:
        per_stream = 8000
        streams = math.ceil(null_calls / per_stream)
        fa = {"split": 0, "pooled": 0}
        for k in range(streams):
            refs, post, who = fleet_stream(base + 100 * n + k, None, "medium", n, per_stream)
            for mode in fa:
                fa[mode] += len(run(refs, post, who, mode, args.poll, count_all=True))
        calls = streams * per_stream
        delays: dict[str, dict[str, list]] = {"split": {}, "pooled": {}}
        for ki, kind in enumerate(KINDS):
            for mode in delays:
                delays[mode][kind] = []
            for t in range(trials):
                refs, post, who = fleet_stream(base + 500_000 + 10_000 * ki + 100 * n + t, kind, "medium", n,
                                               args.horizon)
                for mode in delays:
                    a = run(refs, post, who, mode, args.poll, count_all=False)
                    delays[mode][kind].append(a[0] if a else None)
        rows.append((n, calls, fa, delays))
        print(f"# {n} replicas done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    print(f"\n{'held-out' if args.held_out else 'development'} profiles; medium changes, {trials} trials per kind; "
          f"poll every {args.poll} calls per replica; detection within {args.horizon} fleet calls. "
          f"Run time {time.perf_counter() - t0:.0f} s.\n")
    print("| replicas | design | false alarms / 10k fleet calls | detected (medium) | median delay, fleet calls |"
          + "".join(f" {k} |" for k in KINDS))
    print("|---|---|---|---|---|" + "---|" * len(KINDS))
    for n, calls, fa, delays in rows:
        for mode in ("split", "pooled"):
            allv = [v for kind in KINDS for v in delays[mode][kind]]
            hits = [v for v in allv if v is not None]
            cells = []
            for kind in KINDS:
                h = [v for v in delays[mode][kind] if v is not None]
                cells.append(f"{statistics.median(h):.0f}" if h else "–")
            print(f"| {n} | {mode} | {fa[mode] / calls * 1e4:.2f} ({fa[mode]} in {calls}) | "
                  f"{len(hits) / len(allv):.0%} | {statistics.median(hits) if hits else math.nan:.0f} |"
                  + "".join(f" {c} |" for c in cells))


if __name__ == "__main__":
    main()
