"""Drift benchmark on randomized agent profiles: driftwatch vs river ADWIN and windowed KS/χ² (issue 13).

    .venv/bin/python benchmarks/drift/bench_profiles.py --quick            # development seeds, ~10 minutes
    .venv/bin/python benchmarks/drift/bench_profiles.py --held-out         # the evaluation (≥ 200k null calls per set)
    .venv/bin/python benchmarks/drift/bench_profiles.py --speed            # µs per call only (repeated, min/median)

Every stream comes from a new random agent (``profiles.py``): 1000 reference calls, then 3000 monitored
calls with a change at call 0 (or 4000 without one). Seeds: ``--dev`` (default) are the profiles the
engine was developed on; ``--held-out`` the ones it is evaluated on (never used for tuning).

Sets, each of ``--nochange`` streams × 4000 monitored calls (50 → 200k calls):

* ``iid`` — independent calls: the false-alarm rate the goals are stated at;
* ``cycle`` — independent calls with a ±20% diurnal latency cycle;
* ``sessions`` — calls in sessions (runs of one topic and one user, mean 3–20 calls, random per stream)
  with the latency cycle;

and change trials (``--trials`` per kind × magnitude) on independent calls and on session traffic. All
methods see the same reference and the same calls. ADWIN (one detector per feature) and KS/χ² (every 50
calls, the last ≤ 500 against the reference) are tuned on the ``iid`` null set to ≤ 1 false alarm per 10k
calls (the most sensitive setting that stays within it), and again on the ``sessions`` set for the session
trials: an advantage for both (tuned in-sample). Detection: an alarm within the 3000 monitored calls;
delay: calls from the change to the first alarm.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import (  # local helper modules
    ADWIN_DELTAS,
    KS_TAUS,
    adwin_rows,
    ks_alarms,
    ks_pvalues,
    run_adwin,
    tune,
)
from profiles import DEV_SEEDS, HELD_OUT_SEEDS, KINDS, LEVELS, stream

from driftwatch.drift import DriftMonitor  # after the sys.path tweak

ALPHA = 1e-4
N_REF, N_POST, N_NULL = 1000, 3000, 4000
TARGET = 1.0  # false alarms per 10k calls the baselines are tuned to


def features(s, post: bool) -> tuple[np.ndarray, np.ndarray, list[int]]:
    cols, emb = (s.post_cols, s.post_emb) if post else (s.ref_cols, s.ref_emb)
    cont = np.column_stack([np.log1p(cols["chars"]), cols["score"], emb])
    cat = np.column_stack([cols["refused"], cols["fmt_fail"], cols["error"], cols["cat"]]).astype(int)
    return cont, cat, [2, 2, 2, len(s.profile.tools) + 1]


def run_ours(ref, post, *, count_all: bool, clock=time.perf_counter, **kw) -> tuple[list[tuple[int, tuple[str, ...]]],
                                                                                    float]:
    mon = DriftMonitor(ALPHA, **kw)
    mon.fit_reference(ref)
    alarms: list[tuple[int, tuple[str, ...]]] = []
    t0 = clock()
    for i, r in enumerate(post):
        st = mon.update(r)
        if st.fired:
            alarms.append((i + 1, st.fired))
            if not count_all:
                break
            mon.reset()
    return alarms, clock() - t0


class Baselines:
    """ADWIN and KS/χ² runs on one stream (p-values and per-δ alarms computed once)."""

    def __init__(self, s, *, count_all: bool, deltas=ADWIN_DELTAS) -> None:
        rc, rk, levels = features(s, False)
        pc, pk, _ = features(s, True)
        self.rrows, self.prows = adwin_rows(rc, rk, levels), adwin_rows(pc, pk, levels)
        self.adwin = {d: run_adwin(self.rrows, self.prows, d, count_all=count_all)[0] for d in deltas}
        self.points, self.pmins, _ = ks_pvalues(rc, rk, pc, pk, levels)

    def ks(self, tau: float, *, count_all: bool) -> list[int]:
        return ks_alarms(self.points, self.pmins, tau, count_all=count_all)


def null_set(name: str, base: int, count: int, baselines: bool) -> dict:
    """False alarms of every method on ``count`` no-change streams of set ``name``."""
    sessions, cycle = name == "sessions", (0.2 if name in ("cycle", "sessions") else 0.0)
    ours = 0
    by_signal: Counter = Counter()
    adwin = dict.fromkeys(ADWIN_DELTAS, 0)
    ks_streams = []
    ops = 0
    for k in range(count):
        s = stream(base + 500_000 + k, None, None, n_ref=N_REF, n_post=N_NULL, sessions=sessions,
                   latency_cycle=cycle)
        a, _ = run_ours(s.ref, s.post, count_all=True)
        ours += len(a)
        for _, fired in a:
            by_signal.update(fired)
        mon = DriftMonitor(ALPHA, signals=("latency", "cost"))
        mon.fit_reference(s.ref)
        for r in s.post:
            if mon.update(r).fired:
                ops += 1
                mon.reset()
        if baselines:
            b = Baselines(s, count_all=True)
            for d in ADWIN_DELTAS:
                adwin[d] += len(b.adwin[d])
            ks_streams.append((b.points, b.pmins))
    calls = count * N_NULL
    out = {"calls": calls, "driftwatch": ours, "by_signal": dict(by_signal), "operational": ops}
    if baselines:
        delta = tune(ADWIN_DELTAS, adwin, calls, TARGET)
        ks_count = {t: sum(len(ks_alarms(p, v, t, count_all=True)) for p, v in ks_streams) for t in KS_TAUS}
        tau = tune(KS_TAUS, ks_count, calls, TARGET)
        out.update({"adwin_delta": delta, "adwin": adwin[delta], "ks_tau": tau, "ks": ks_count[tau]})
    return out


def trials(base: int, n: int, sessions: bool, tuned: dict | None) -> dict[str, dict[str, list]]:
    """First alarm (or None) per method, kind and level."""
    res: dict[str, dict[str, list]] = {m: {} for m in ("driftwatch", "adwin", "ks")}
    fired_by: dict[str, Counter] = {}
    for ki, kind in enumerate(KINDS):
        for li, level in enumerate(LEVELS):
            key = f"{kind}/{level}"
            for m in res:
                res[m][key] = []
            fired_by[key] = Counter()
            for t in range(n):
                s = stream(base + 10_000 * ki + 1000 * li + t, kind, level, n_ref=N_REF, n_post=N_POST,
                           sessions=sessions)
                a, _ = run_ours(s.ref, s.post, count_all=False)
                res["driftwatch"][key].append(a[0][0] if a else None)
                if a:
                    fired_by[key].update(a[0][1])
                if tuned is not None:
                    b = Baselines(s, count_all=False, deltas=(tuned["adwin_delta"],))
                    a2 = b.adwin[tuned["adwin_delta"]]
                    res["adwin"][key].append(a2[0] if a2 else None)
                    a3 = b.ks(tuned["ks_tau"], count_all=False)
                    res["ks"][key].append(a3[0] if a3 else None)
        print(f"#   {kind} done ({time.perf_counter() - T0:.0f} s)", file=sys.stderr)
    res["fired_by"] = {k: dict(v) for k, v in fired_by.items()}
    return res


def summarize(vals: list) -> tuple[float, float]:
    hits = [v for v in vals if v is not None]
    return (len(hits) / len(vals) if vals else math.nan), (statistics.median(hits) if hits else math.nan)


def cell(vals: list) -> str:
    det, med = summarize(vals)
    return f"{det:.0%} {med:.0f}" if not math.isnan(med) else f"{det:.0%} –"


def median_all(vals: list) -> str:
    """The median delay over every trial, a miss counting as later than any detection (a method that detects
    more hard cases is not penalized, as it is by the median over detections): ``>N`` when half are missed."""
    if not vals:
        return "–"
    ranked = sorted(math.inf if v is None else v for v in vals)
    med = statistics.median(ranked)
    return f">{N_POST}" if math.isinf(med) else f"{med:.0f}"


def table(res: dict, methods: list[str], title: str,
          what: str = f"detected within {N_POST} calls, median delay (calls)", fmt=cell, total: bool = True) -> None:
    print(f"\n{title} — {what}: "
          + " \\| ".join({"driftwatch": "driftwatch", "adwin": "ADWIN", "ks": "KS/χ²"}[m] for m in methods) + "\n")
    print("| change | " + " | ".join(LEVELS) + " |")
    print("|---|---|---|---|")
    for kind in KINDS:
        cells = [" \\| ".join(fmt(res[m][f"{kind}/{level}"]) for m in methods) for level in LEVELS]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    if total:
        cells = [" \\| ".join(fmt([v for kind in KINDS for v in res[m][f"{kind}/{level}"]]) for m in methods)
                 for level in LEVELS]
        print("| **all** | " + " | ".join(cells) + " |")


def speed(repeats: int) -> dict[str, list[float]]:
    """µs per call on the same 10k no-change calls (one random profile), runs interleaved; driftwatch in CPU
    time of this process (other jobs on a shared machine inflate wall time, not this) and in wall time."""
    s = stream(HELD_OUT_SEEDS + 777, None, None, n_ref=N_REF, n_post=10_000)
    post_plain = [dataclasses.replace(r, embedding=None) for r in s.post]
    ref_plain = [dataclasses.replace(r, embedding=None) for r in s.ref]
    out: dict[str, list[float]] = {"driftwatch": [], "driftwatch_no_embedding": [], "driftwatch_wall": [],
                                   "driftwatch_no_embedding_wall": [], "adwin": [], "ks": []}
    b = None
    cpu = time.process_time
    for _ in range(repeats):
        out["driftwatch"].append(run_ours(s.ref, s.post, count_all=True, clock=cpu)[1] / len(s.post) * 1e6)
        out["driftwatch_no_embedding"].append(run_ours(ref_plain, post_plain, count_all=True, clock=cpu)[1]
                                              / len(s.post) * 1e6)
        out["driftwatch_wall"].append(run_ours(s.ref, s.post, count_all=True)[1] / len(s.post) * 1e6)
        out["driftwatch_no_embedding_wall"].append(run_ours(ref_plain, post_plain, count_all=True)[1]
                                                   / len(s.post) * 1e6)
        if b is None:
            rc, rk, levels = features(s, False)
            pc, pk, _ = features(s, True)
            b = (adwin_rows(rc, rk, levels), adwin_rows(pc, pk, levels), rc, rk, pc, pk, levels)
        out["adwin"].append(run_adwin(b[0], b[1], 1e-3, count_all=True)[1] / len(s.post) * 1e6)
        out["ks"].append(ks_pvalues(*b[2:])[2] / len(s.post) * 1e6)
    return out


def memory() -> list[int]:
    """Bytes held by driftwatch/drift after 10k and after 100k no-change calls (tracemalloc)."""
    s = stream(HELD_OUT_SEEDS + 778, None, None, n_ref=N_REF, n_post=10_000)
    gc.collect()
    tracemalloc.start()
    mon = DriftMonitor(ALPHA)
    mon.fit_reference(s.ref)
    out = []
    for rnd in range(10):
        for r in s.post:
            mon.update(r)
        if rnd in (0, 9):
            gc.collect()
            snap = tracemalloc.take_snapshot()
            out.append(sum(st.size for st in snap.statistics("filename")
                           if "driftwatch/drift" in st.traceback[0].filename))
    tracemalloc.stop()
    return out


def far(n: int, calls: int) -> float:
    return n / calls * 1e4


T0 = time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, help="trials per change kind and magnitude (default 30; --quick 8)")
    ap.add_argument("--nochange", type=int, help="no-change streams per set, 4000 calls each (default 50; --quick 12)")
    ap.add_argument("--quick", action="store_true", help="8 trials, 12 no-change streams per set")
    seeds = ap.add_mutually_exclusive_group()
    seeds.add_argument("--dev", action="store_true", help="development profiles (default)")
    seeds.add_argument("--held-out", action="store_true", help="held-out profiles (evaluation only)")
    ap.add_argument("--no-baselines", action="store_true", help="driftwatch only")
    ap.add_argument("--no-sessions", action="store_true", help="skip the session-traffic trials")
    ap.add_argument("--speed", action="store_true", help="only measure µs per call (and memory)")
    ap.add_argument("--repeats", type=int, default=7, help="speed: interleaved repeats")
    ap.add_argument("--json", help="also write the raw figures here")
    args = ap.parse_args()
    args.trials = args.trials or (8 if args.quick else 30)
    args.nochange = args.nochange or (12 if args.quick else 50)
    if args.speed:
        sp = speed(args.repeats)
        for m, v in sp.items():
            print(f"{m}: min {min(v):.2f} µs/call, median {statistics.median(v):.2f} (of {len(v)})")
        mem = memory()
        print(f"bank memory: {mem[0] / 1024:.0f} KiB after 10k calls, {mem[1] / 1024:.0f} KiB after 100k")
        if args.json:
            Path(args.json).write_text(json.dumps({"speed": sp, "memory": mem}, indent=1))
        return
    base = HELD_OUT_SEEDS if args.held_out else DEV_SEEDS
    bl = not args.no_baselines
    methods = ["driftwatch", "adwin", "ks"] if bl else ["driftwatch"]
    nulls = {}
    for name in ("iid", "cycle", "sessions"):
        nulls[name] = null_set(name, base + {"iid": 0, "cycle": 100_000, "sessions": 200_000}[name], args.nochange,
                               baselines=bl and name in ("iid", "sessions"))
        print(f"# null set {name} done ({time.perf_counter() - T0:.0f} s): {nulls[name]}", file=sys.stderr)
    tuned_iid = nulls["iid"] if bl else None
    res = trials(base + 1_000_000, args.trials, False, tuned_iid)
    res_s = None
    if not args.no_sessions:
        res_s = trials(base + 2_000_000, args.trials, True, nulls["sessions"] if bl else None)

    seedname = "held-out" if args.held_out else "development"
    print(f"\n{seedname} profiles; {N_REF} reference + {N_POST} monitored calls per change trial, {args.trials} "
          f"trials per kind × magnitude; no-change sets of {args.nochange} streams × {N_NULL} calls. "
          f"Run time {time.perf_counter() - T0:.0f} s.\n")
    print("| method | false alarms / 10k: independent / latency cycle / sessions | detected small / medium / "
          "large | median delay small / medium / large |")
    print("|---|---|---|---|")
    for m in methods:
        det, med = [], []
        for level in LEVELS:
            d, md = summarize([v for kind in KINDS for v in res[m][f"{kind}/{level}"]])
            det.append(d)
            med.append(md)
        if m == "driftwatch":
            fa = " / ".join(f"{far(nulls[k]['driftwatch'], nulls[k]['calls']):.2f}"
                            for k in ("iid", "cycle", "sessions"))
            name = "driftwatch"
        else:
            key, setting = {"adwin": ("adwin", "adwin_delta"), "ks": ("ks", "ks_tau")}[m]
            fa = (f"{far(nulls['iid'][key], nulls['iid']['calls']):.2f} / – / "
                  f"{far(nulls['sessions'][key], nulls['sessions']['calls']):.2f} (retuned)")
            name = (f"river ADWIN (δ={nulls['iid'][setting]:g}; sessions δ={nulls['sessions'][setting]:g})"
                    if m == "adwin"
                    else f"windowed KS/χ² (τ={nulls['iid'][setting]:.1e}; sessions τ={nulls['sessions'][setting]:.1e})")
        print(f"| {name} | {fa} | " + " / ".join(f"{d:.0%}" for d in det) + " | "
              + " / ".join(f"{x:.0f}" for x in med) + " |")
    comp = [v for v in res["driftwatch"]["compound/medium"]]
    print(f"\ncompound medium detected: {summarize(comp)[0]:.0%}; signals of the false alarms (sessions): "
          f"{nulls['sessions']['by_signal']}; (independent): {nulls['iid']['by_signal']}; operational "
          f"(latency/cost) alarms: independent {nulls['iid']['operational']}, cycle {nulls['cycle']['operational']}")
    table(res, methods, "Independent calls")
    table(res, methods, "Independent calls", f"median delay over all trials (misses count as later than {N_POST} "
          "calls)", median_all)
    if res_s is not None:
        table(res_s, methods, "Session traffic (runs of 3–20 calls)")
    print("\nFirst-alarm signals per change (independent calls):")
    for key, c in res["fired_by"].items():
        print(f"  {key}: {c}")
    if args.json:
        Path(args.json).write_text(json.dumps({"nulls": nulls, "independent": res, "sessions": res_s}, indent=1,
                                              default=str))


if __name__ == "__main__":
    main()
