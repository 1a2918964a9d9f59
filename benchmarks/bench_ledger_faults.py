"""Host wait per watched call while the ledger is locked or black-holed, against the same agent on a healthy
ledger in the same run (issue 11, item 1).

Run:  .venv/bin/python benchmarks/bench_ledger_faults.py [--seconds 60] [--healthy-seconds 10] [--interval-ms 10]

The agent is a watched function that rewrites its tracked prompt on every call, so every call makes a ledger
write (the worst case: real agents change far less often). It is called every ``--interval-ms`` for:

- ``sqlite healthy``: an SQLite file ledger;
- ``sqlite locked``: the same file while another process holds ``BEGIN EXCLUSIVE`` on it for ``--seconds``;
- ``postgres healthy``: a PostgreSQL ledger (a throwaway server from tests/helpers/pg_server.py, fsync on);
- ``postgres black-holed``: a PostgreSQL URL whose host accepts connections and never answers, for ``--seconds``
  (the writer thread's connects time out; the host never waits for them);
- ``postgres hung mid-run``: the healthy server behind a proxy that stops forwarding (connections stay open, no
  byte comes back) for ``--seconds``, then resumes.

For each: the time each watched call spent in the ledger (in the BufferedLedger's write/read methods: the
wait for the writer included) and its whole wall time (median, p99, max, in ms; the wall time also holds
driftwatch's own work and whatever the interpreter does meanwhile, e.g. a garbage collection), the ratio of the
wall times to the healthy run of the same backend, how many writes were kept while the fault lasted, and whether
every change reached the ledger in order afterwards. The wait budget is DRIFTWATCH_LEDGER_WAIT_S (50 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests/helpers/

from prometheus_client import CollectorRegistry

import driftwatch
from driftwatch.ledger import open_ledger
from tests.helpers.ledger_faults import BlackHole, TCPProxy, hold_exclusive_lock, rewriting_agent
from tests.helpers.pg_server import PostgresServer

_in_ledger = [0.0]  # seconds the current call spent in the ledger's methods


def _measure(rt: driftwatch.runtime.Runtime) -> None:
    """Time the host's side of every ledger method a call reaches (on this runtime's ledger only)."""
    led = rt.ledger
    for name in ("write", "read_now", "record_window"):
        method = getattr(led, name)

        def timed(*args: object, _method: Callable[..., object] = method) -> object:
            started = time.perf_counter()
            try:
                return _method(*args)
            finally:
                _in_ledger[0] += time.perf_counter() - started

        setattr(led, name, timed)


def _drive(run: Callable[[], str], seconds: float, interval: float) -> tuple[list[float], list[float]]:
    """Call ``run`` every ``interval`` seconds for ``seconds``; each call's time in the ledger, and wall time."""
    waits: list[float] = []
    times: list[float] = []
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        _in_ledger[0] = 0.0
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
        waits.append(_in_ledger[0])
        next_at += interval
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    return waits, times


def _stats(measured: tuple[list[float], list[float]]) -> dict[str, float]:
    budget = driftwatch.runtime.get_runtime().settings.ledger_wait_s
    out: dict[str, float] = {"calls": len(measured[1]), "over": sum(w > budget + 0.005 for w in measured[0])}
    for key, values in zip(("wait", "wall"), measured, strict=True):
        ordered = sorted(values)
        out |= {f"{key} median": statistics.median(ordered) * 1e3,
                f"{key} p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3,
                f"{key} max": ordered[-1] * 1e3}
    return out


@contextmanager
def _runtime(ledger: str, drain_s: float = 60.0) -> Iterator[driftwatch.runtime.Runtime]:
    rt = driftwatch.configure(ledger=ledger, registry=CollectorRegistry(), ledger_drain_s=drain_s)
    rt.ledger.flush(timeout=30)  # opened: the runs measure calls, not the first connection
    _measure(rt)
    try:
        yield rt
    finally:
        rt.close()


def _in_order(ledger: str, agent: str, expected: int) -> str:
    led = open_ledger(ledger, readonly=True)
    try:
        states = [led.change(c.id).after_state for c in led.changes(agent=agent, baselines=True)]
    finally:
        led.close()
    ok = states == [f"{agent} prompt v{i}" for i in range(1, expected + 1)]
    return f"{len(states)}/{expected} in the ledger, " + ("in order" if ok else "NOT IN ORDER")


def run(seconds: float, healthy_seconds: float, interval: float) -> list[tuple[str, dict[str, float], str]]:
    rows: list[tuple[str, dict[str, float], str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "dw.db")
        with _runtime(path) as rt:
            agent = rewriting_agent("sqlite_healthy")
            rows.append(("sqlite healthy", _stats(_drive(agent, healthy_seconds, interval)), ""))
            rt.ledger.flush(timeout=60)
            rows[-1] = (*rows[-1][:2], _in_order(path, "sqlite_healthy", rows[-1][1]["calls"]))
        with _runtime(path) as rt:
            agent = rewriting_agent("sqlite_locked")
            agent()  # the baseline, written before the lock
            with hold_exclusive_lock(path, seconds=seconds + 30):
                measured = _drive(agent, seconds, interval)
                kept = rt.pending_writes
            rt.ledger.flush(timeout=120)
            rows.append(("sqlite locked", _stats(measured), f"{kept} kept during the lock; "
                         + _in_order(path, "sqlite_locked", len(measured[1]) + 1)))

    server = PostgresServer(fsync=True).start()
    try:
        url = server.create_database("bench_faults")
        with _runtime(url) as rt:
            agent = rewriting_agent("pg_healthy")
            rows.append(("postgres healthy", _stats(_drive(agent, healthy_seconds, interval)), ""))
            rt.ledger.flush(timeout=60)
            rows[-1] = (*rows[-1][:2], _in_order(url, "pg_healthy", rows[-1][1]["calls"]))
        hole = BlackHole()
        try:
            with _runtime(hole.url(), drain_s=0.5) as rt:
                measured = _drive(rewriting_agent("pg_blackholed"), seconds, interval)
                rows.append(("postgres black-holed", _stats(measured),
                             f"{rt.pending_writes} kept (the host never answers: lost at exit, and logged)"))
        finally:
            hole.close()
        proxy = TCPProxy(server.port)
        try:
            proxied = proxy.url(url, server.port)
            with _runtime(proxied) as rt:
                agent = rewriting_agent("pg_hung")
                agent()
                rt.ledger.flush(timeout=30)
                proxy.black_hole()
                measured = _drive(agent, seconds, interval)
                kept = rt.pending_writes
                proxy.resume()
                rt.ledger.flush(timeout=120)
                rows.append(("postgres hung mid-run", _stats(measured), f"{kept} kept while hung; "
                             + _in_order(url, "pg_hung", len(measured[1]) + 1)))
        finally:
            proxy.close()
    finally:
        server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each fault lasts (default 60)")
    parser.add_argument("--healthy-seconds", type=float, default=10.0, help="length of the healthy runs (default 10)")
    parser.add_argument("--interval-ms", type=float, default=10.0, help="pause between calls (default 10 ms)")
    args = parser.parse_args()
    rows = run(args.seconds, args.healthy_seconds, args.interval_ms / 1000)
    base = {"sqlite": rows[0][1], "postgres": rows[2][1]}
    print(f"watched calls, each making one ledger write; every {args.interval_ms:g} ms; faults last {args.seconds:g} s")
    print(f"{'':<22}{'':>7}{'in the ledger (ms)':>27}{'wall time of the call (ms)':>30}")
    print(f"{'ledger':<22}{'calls':>7}{'median':>9}{'p99':>9}{'max':>9}{'>55ms':>7}{'median':>10}{'p99':>9}{'max':>9}"
          "   wall ratio to healthy (median/p99/max)")
    for name, s, note in rows:
        b = base[name.split()[0]]
        ratio = " / ".join(f"{s[f'wall {k}'] / b[f'wall {k}']:.2f}" for k in ("median", "p99", "max"))
        print(f"{name:<22}{s['calls']:>7.0f}" + "".join(f"{s[f'wait {k}']:>9.2f}" for k in ("median", "p99", "max"))
              + f"{s['over']:>7.0f}{s['wall median']:>10.2f}{s['wall p99']:>9.2f}{s['wall max']:>9.2f}   {ratio}   "
              + note)
    print("\n>55ms: calls whose time in the ledger passed the 50 ms budget by more than 5 ms. The healthy runs have\n"
          "them too: time the process is not scheduled (a busy machine) or collects garbage counts wherever it falls.")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
