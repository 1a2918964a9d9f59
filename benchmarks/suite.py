"""The benchmark suite: every benchmark in one run, and docs/performance.md written from it (``make bench``).

Run:  .venv/bin/python benchmarks/suite.py [--quick] [--only NAME,...] [--out docs/performance.md]

Each benchmark runs in its own process (the peers patch framework classes), one after the other, so that they do
not compete for the machine's cores; the machine (CPU, cores, load before and after) and the versions that matter
are written beside the figures. Every figure is a ratio to (or a difference from) a baseline measured in the same
run. ``--quick`` runs each with fewer rounds and calls (a few minutes in all; noisier, and the drift quality
benchmarks on a small sample: the doc says so); without it the suite takes ~30-40 minutes on 2 cores.

The drift evaluation on held-out profiles (``benchmarks/drift/bench_profiles.py --held-out``, ≥ 200k no-change
calls per set) takes over an hour: the suite runs it on fewer streams (``--trials``/``--nochange`` below) and
names the full command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the versions the figures depend on (peers: not installed is said so)
PACKAGES = ("langgraph", "langchain-core", "langchain", "dspy", "opentelemetry-sdk", "prometheus-client",
            "openinference-instrumentation-langchain", "openinference-instrumentation-dspy",
            "opentelemetry-instrumentation-langchain")


@dataclass
class Bench:
    name: str
    script: str
    full: list[str]
    quick: list[str]
    what: str
    output: str = ""
    seconds: float = 0.0
    failed: bool = False
    args: list[str] = field(default_factory=list)

    def command(self) -> str:
        return " ".join([".venv/bin/python", self.script, *map(shlex.quote, self.args)])


BENCHES = [
    Bench("langgraph-batch", "benchmarks/bench_langgraph.py", ["--processor", "batch"],
          ["--processor", "batch", "--rounds", "8", "--invokes", "50"],
          "3-node LangGraph graph, spans through a BatchSpanProcessor (production), beside OpenInference and "
          "OpenLLMetry"),
    Bench("langgraph-simple", "benchmarks/bench_langgraph.py", ["--processor", "simple"],
          ["--processor", "simple", "--rounds", "8", "--invokes", "50"],
          "the same graph, spans through a SimpleSpanProcessor (its export where the call's batch is processed)"),
    Bench("dspy", "benchmarks/bench_dspy.py", [], ["--rounds", "8", "--calls", "50"],
          "3-predictor DSPy program on DummyLM, beside OpenInference's DSPy instrumentor"),
    Bench("processes", "benchmarks/bench_processes.py", [], ["--rounds", "2", "--calls", "500", "--warmup", "100"],
          "LangGraph and DSPy with each mode in a process of its own (the interleaved benchmarks' design checked from "
          "the other side: no goal is read from it)"),
    Bench("decorator", "benchmarks/bench_decorator.py", [], ["--calls", "5000", "--rounds", "3"],
          "@driftwatch.watch on a trivial sync and async function"),
    Bench("instructions", "benchmarks/bench_instructions.py", [], ["--quick"],
          "machine instructions per call (valgrind callgrind, every thread, C work included): LangGraph, DSPy and the "
          "decorator, each mode against bare — deterministic, load does not move it"),
    Bench("guard", "benchmarks/bench_guard.py", [], ["--calls", "50000", "--rounds", "3"],
          "the guard's per-call check"),
    Bench("windows", "benchmarks/bench_windows.py", [], ["--calls", "5000", "--rounds", "3"],
          "the call windows (ledger aggregates for reports) per call, and a report"),
    Bench("throughput", "benchmarks/bench_throughput.py", [], ["--seconds", "1", "--changes", "5"],
          "one process with every sink on, 1 and 8 threads; one change event of a 4 KB and a 1 MB prompt"),
    Bench("memory", "benchmarks/bench_memory.py", [], ["--calls", "400000"],
          "RSS over 1M watched calls: one agent, one agent changing every 10k calls, 200 agents, a new agent "
          "per call; ledger bytes per change"),
    Bench("ledger", "benchmarks/bench_ledger.py", [], ["--changes", "60", "--rounds", "2"],
          "a change's durable commit: SQLite file vs PostgreSQL on loopback"),
    Bench("ledger-faults", "benchmarks/bench_ledger_faults.py", ["--seconds", "20", "--healthy-seconds", "5"],
          ["--seconds", "3", "--healthy-seconds", "2"],
          "host wait per call while the ledger is locked or black-holed"),
    Bench("drift-engine", "benchmarks/drift/bench_engine.py", [], [],
          "what the drift engine adds to a watched call"),
    Bench("drift-quality", "benchmarks/drift/bench_drift.py", [], ["--quick"],
          "detection and false alarms on synthetic streams (CUSUM bank vs ADWIN vs KS/χ²)"),
    Bench("drift-profiles", "benchmarks/drift/bench_profiles.py",
          ["--held-out", "--trials", "8", "--nochange", "12"],
          ["--held-out", "--trials", "2", "--nochange", "3", "--no-sessions"],
          "detection on randomized held-out agent profiles (reduced: the full evaluation is "
          "`benchmarks/drift/bench_profiles.py --held-out`, over an hour)"),
    Bench("drift-fleet", "benchmarks/drift/bench_fleet.py", ["--quick"],
          ["--quick", "--trials", "2", "--null-calls", "20000"],
          "a fleet's replicas alone vs pooled evidence"),
]

_ROW = re.compile(r"^(?P<name>\S+(?: \(\d\))?)\s+(?P<us>[\d.]+)\s+(?P<added>-?[\d.]+)\s+(?P<ratio>[\d.]+)x"
                  r"(?:\s+\((?P<q1>[\d.]+)\.\.(?P<q3>[\d.]+)\))?(?:\s+(?P<best>[\d.]+)\s+(?P<best_ratio>[\d.]+)x)?")


def rows(output: str) -> dict[str, dict[str, float]]:
    """The ``mode µs added ratio`` rows of a benchmark's table, by mode."""
    out: dict[str, dict[str, float]] = {}
    for line in output.splitlines():
        m = _ROW.match(line.strip())
        if m:
            out[m["name"]] = {k: float(v) for k, v in m.groupdict().items() if k != "name" and v is not None}
    return out


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        uptime = "n/a"
    return {"cpu": cpu, "cores": str(os.cpu_count()), "os": platform.platform(), "uptime": uptime,
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed (its rows are left out)"
    return out


def run(bench: Bench, quick: bool) -> None:
    bench.args = bench.quick if quick else bench.full
    print(f"== {bench.name}: {bench.command()}", flush=True)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, bench.script, *bench.args], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    bench.seconds = time.monotonic() - started
    bench.output = proc.stdout.rstrip()
    if proc.returncode != 0:
        bench.failed = True
        bench.output += f"\n[exit {proc.returncode}]\n" + "\n".join(proc.stderr.rstrip().splitlines()[-15:])
    print(bench.output, flush=True)
    print(f"   ({bench.seconds:.0f} s)", flush=True)


def _fmt_ratio(row: dict[str, float] | None) -> str:
    if row is None:
        return "n/a"
    spread = f" ({row['q1']:.2f}–{row['q3']:.2f})" if "q1" in row else ""
    return f"{row['ratio']:.2f}x{spread}, +{row['added']:.0f} µs"


def summary(benches: dict[str, Bench]) -> list[str]:
    """The goals of issue 15 against the figures of this run."""
    lines = ["| goal (issue 15) | measured in this run | met | rerun |", "|---|---|---|---|"]

    def add(goal: str, measured: str, met: bool | None, bench: Bench | None) -> None:
        verdict = "n/a" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {goal} | {measured} | {verdict} | `{bench.command() if bench else ''}` |")

    lg = benches.get("langgraph-batch")
    if lg is not None:
        r = rows(lg.output)
        w = r.get("watched")
        add("LangGraph watched, SDK tracing (Batch) ≤ 1.10x bare", _fmt_ratio(w),
            None if w is None else w["ratio"] <= 1.10, lg)
        peers = [r[p]["added"] for p in ("openinference", "openllmetry") if p in r]
        if w is not None and peers:
            share = w["added"] / min(peers)
            add("LangGraph added time ≤ 1/10 of the lighter of OpenInference / OpenLLMetry",
                f"{w['added']:.0f} µs = {share:.2f} of {min(peers):.0f} µs", share <= 0.10, lg)
        floor, span = r.get("decorated"), r.get("sdk-span")
        if floor is not None and span is not None:
            add("(the floor, no goal: `graph.invoke` inside the generic decorator, a call recorded with its span and "
                "no model request observed; a plain SDK span alone)", f"{_fmt_ratio(floor)}; {_fmt_ratio(span)}",
                None, lg)
    lgs = benches.get("langgraph-simple")
    if lgs is not None:
        w = rows(lgs.output).get("watched")
        add("(LangGraph watched, SimpleSpanProcessor: no goal)", _fmt_ratio(w), None, lgs)
    ds = benches.get("dspy")
    if ds is not None:
        r = rows(ds.output)
        for mode, processor in (("watched+batch", "BatchSpanProcessor, production's"),
                                ("watched+otel", "SimpleSpanProcessor")):
            w = r.get(mode)
            add(f"DSPy watched ≤ 1.05x bare with tracing ({processor})",
                "n/a" if w is None else f"{w['ratio']:.2f}x (best rounds {w.get('best_ratio', 0):.2f}x), "
                                        f"+{w['added']:.0f} µs", None if w is None else w["ratio"] <= 1.05, ds)
    ins = benches.get("instructions")
    if ins is not None:
        r = rows(ins.output)
        for label, mode, span in (
                ("LangGraph watched, Batch, per invoke", "langgraph/watched", "langgraph/sdk-span"),
                ("LangGraph watched, no tracing, per invoke", "langgraph/watched-notrace", None),
                ("DSPy watched, Batch, per call", "dspy/watched+batch", "dspy/sdk-span"),
                ("DSPy watched, no SDK, per call", "dspy/watched", None)):
            w = r.get(mode)
            if w is None:
                continue
            plain = r.get(span) if span else None
            add(f"({label}, in machine instructions: load-independent; no goal, beside the time ratio)",
                f"{w['ratio']:.3f}x, {w['added']:+,.0f}" + (f" (a plain SDK span alone: {plain['ratio']:.3f}x, "
                                                           f"{plain['added']:+,.0f})" if plain else ""), None, ins)
    dec = benches.get("decorator")
    if dec is not None:
        w = rows(dec.output).get("watched")
        add("decorator ≤ 5 µs added per call without tracing (drift on)",
            "n/a" if w is None else f"{w['added']:.1f} µs", None if w is None else w["added"] <= 5.0, dec)
    mem = benches.get("memory")
    if mem is not None:
        warmups = {m[1]: (m[2], m[3]) for m in re.finditer(
            r"^\s+(\S+)\s+RSS MB .*?warm-up (\S+)\s+growth [+-][\d.]+ MB(?: \(from 20k: ([+-][\d.]+) MB\))?",
            mem.output, re.M)}
        for m in re.finditer(r"goal: (\S+) growth < (\d+) MB after warm-up: (met|NOT met) \(([+-][\d.]+) MB\)",
                             mem.output):
            warm, since = warmups.get(m[1], ("?", None))
            note = f" after {warm} calls" + (f" (from 20k: {since} MB: each agent's drift reference filling)"
                                              if since else "")
            add(f"RSS flat, {m[1]}: < {m[2]} MB growth after warm-up", f"{m[4]} MB{note}", m[3] == "met", mem)
        per_change = re.search(r"ledger ([\d.]+) KiB/change", mem.output)
        if per_change:
            add("(ledger bytes per change, ~4 KB prompt: no goal)", f"{per_change[1]} KiB", None, mem)
    return lines


#: the doc's notes under the table of what each feature costs (static text; the figures are the run's)
COSTS_NOTES = (Path(__file__).with_name("performance_costs.md")).read_text()


def _added(benches: dict[str, Bench], bench: str, mode: str, base: str | None = None) -> float | None:
    b = benches.get(bench)
    r = rows(b.output) if b is not None else {}
    if mode not in r or (base is not None and base not in r):
        return None
    return r[mode]["added"] - (r[base]["added"] if base is not None else 0.0)


def _us(*figures: tuple[str, float | None]) -> str:
    shown = [f"{label} {value:+.1f} µs" for label, value in figures if value is not None]
    return "; ".join(shown) or "n/a"


def costs(benches: dict[str, Bench]) -> list[str]:
    """What each feature cost per call in this run, and how to switch it off."""
    lg, dec = "langgraph-batch", "decorator"
    change = re.search(r"^\s+4,\d{3}\s+([\d.]+)\s+([\d.]+)", benches["throughput"].output, re.M) \
        if "throughput" in benches else None
    table = [
        ("the hook (call recorded: metrics, call windows, per-call signals)",
         _us(("LangGraph", _added(benches, lg, "watched-nodrift")),
             ("decorator", _added(benches, dec, "watched-nodrift"))),
         "`DRIFTWATCH_ENABLED=0` / `configure(enabled=False)` (everything off), or do not watch the object"),
        ("drift engine (per-call CUSUM update)",
         _us(("LangGraph", _added(benches, lg, "watched-notrace", "watched-nodrift")),
             ("decorator", _added(benches, dec, "watched", "watched-nodrift"))),
         "`DRIFTWATCH_DRIFT=0` / `configure(drift=False)`"),
        ("an `invoke_agent` span per call (SDK, BatchSpanProcessor; the SDK span made with the call's batch: "
         "`driftwatch/deferred_span.py`)",
         _us(("LangGraph", _added(benches, lg, "watched", "watched-notrace")),
             ("a plain SDK span alone", _added(benches, lg, "sdk-span")),
             ("DSPy", _added(benches, "dspy", "watched+batch", "watched")),
             ("a plain SDK span alone", _added(benches, "dspy", "sdk-span")),
             ("decorator", _added(benches, dec, "watched+batch", "watched"))),
         "`DRIFTWATCH_TRACING=0` / `configure(tracing=False)`, or head sampling in the SDK "
         "(`ParentBased(TraceIdRatioBased(0.1))`: an unsampled span does not record; `bench_langgraph.py "
         "--sample-ratio 0.1`)"),
        ("`track()` of an unchanged 4 KB prompt", _us(("decorator", _added(benches, dec, "watched+track",
                                                                          "watched+otel"))),
         "call it where the prompt can change, not on every call (the integrations compare cached hashes)"),
        ("a change event (4 KB prompt: fingerprint, diff, guard, sinks, ledger commit)",
         f"{change[1]} ms the host waits" if change else "n/a",
         "none: once per change; the host waits at most `ledger_wait_s` (50 ms) for the ledger"),
        ("audit log", "a line per change, not per call", "`DRIFTWATCH_AUDIT=0` / `configure(audit=False)`"),
        ("metrics", "in the hook's row", "`DRIFTWATCH_METRICS=0` / `configure(metrics=False)`"),
    ]
    lines = ["## What each feature costs, and how to switch it off", "",
             "| feature | cost per call in this run | switch it off |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in table]
    return [*lines, "", COSTS_NOTES]


def write_doc(path: Path, benches: list[Bench], quick: bool, before: dict[str, str], after: str,
              started: dt.datetime, argv: list[str]) -> None:
    by_name = {b.name: b for b in benches}
    vers = versions()
    lines = [
        "# Performance",
        "",
        f"Generated by `{' '.join(['make bench'] + (['QUICK=1'] if quick else []))}` "
        f"(`{' '.join(['.venv/bin/python', 'benchmarks/suite.py', *argv])}`) on {started:%Y-%m-%d %H:%M} UTC; "
        "do not edit by hand: rerun it. Every figure is measured against a baseline taken in the same run "
        "(interleaved rounds in one process unless the benchmark says otherwise); the machine is shared, so read "
        "the spreads, and rerun a benchmark alone (its command is beside it) before trusting a small difference.",
        "",
    ]
    if quick:
        lines += ["**Quick run** (`--quick`): fewer rounds and calls than the full suite, and the drift quality "
                  "benchmarks on small samples; figures are noisier than `make bench`'s.", ""]
    lines += ["## Machine", "", "| | |", "|---|---|", f"| CPU | {before['cpu']} |", f"| cores | {before['cores']} |",
              f"| OS | {before['os']} |", f"| load before (1/5/15 min) | {before['load']} |",
              f"| load after | {after} |", f"| uptime before | `{before['uptime']}` |", "",
              "## Versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in vers.items()]
    lines += ["", "## Goals", "", *summary(by_name), ""]
    lines += costs(by_name)
    lines += ["## The benchmarks", ""]
    for b in benches:
        status = " — **failed**" if b.failed else ""
        lines += [f"### {b.name}{status}", "", f"{b.what}. Command: `{b.command()}` ({b.seconds:.0f} s).", "",
                  "```", b.output or "(no output)", "```", ""]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls: a few minutes in all")
    parser.add_argument("--only", help="comma-separated benchmark names (" + ", ".join(b.name for b in BENCHES) + ")")
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"), help="the doc to write ('-': none)")
    args = parser.parse_args()
    chosen = BENCHES
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {b.name for b in BENCHES})
        if unknown:
            parser.error(f"--only: unknown {', '.join(unknown)}")
        chosen = [b for b in BENCHES if b.name in names]
    started = dt.datetime.now(dt.timezone.utc)
    before = machine()
    print(f"machine: {before['cpu']}, {before['cores']} cores, load {before['load']}", flush=True)
    for bench in chosen:
        run(bench, args.quick)
    after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.out != "-":
        write_doc(Path(args.out), chosen, args.quick, before, after, started, sys.argv[1:])
        print(f"wrote {args.out}")
    failed = [b.name for b in chosen if b.failed]
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
