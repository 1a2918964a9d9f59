"""record_change latency: the SQLite file ledger vs a PostgreSQL ledger on loopback.

Run:  .venv/bin/python benchmarks/bench_ledger.py [--changes 300] [--rounds 5]

Both commit durably before returning: SQLite in WAL mode with synchronous=FULL (an fsync per change), the
PostgreSQL server (a throwaway cluster from tests/helpers/pg_server.py, fsync on, default settings) with
synchronous_commit=on (a WAL flush per change). Also: 8 threads writing at once (changes/s), and the
read of 1,000 changes (changes()). Medians over the rounds; the ratio is PostgreSQL ÷ SQLite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests/helpers/pg_server.py

from driftwatch.change import Change, new_id
from driftwatch.ledger import Ledger, open_ledger
from driftwatch.revision import fingerprint
from tests.helpers.pg_server import PostgresServer


def _change(agent: str, i: int) -> Change:
    before, after = f"prompt {i}", f"prompt {i + 1}"
    return Change(new_id(), agent, "system_prompt", "system_prompt", "agent", fingerprint(before), fingerprint(after),
                  0.1, ("$",), time.time(), before, after)


def sequential(led: Ledger, n: int, tag: str) -> float:
    """Median seconds per record_change, one thread."""
    times = []
    for i in range(n):
        c = _change(tag, i)
        t = time.perf_counter()
        led.record_change(c)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def threaded(led: Ledger, n: int, tag: str, threads: int = 8) -> float:
    """Changes per second with ``threads`` threads writing ``n`` changes each."""
    def work(k: int) -> None:
        for i in range(n):
            led.record_change(_change(f"{tag}-{k}", i))

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    t = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return threads * n / (time.perf_counter() - t)


def read_all(led: Ledger) -> float:
    t = time.perf_counter()
    led.changes(limit=1000)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    server = PostgresServer(fsync=True).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ledgers = {"sqlite": open_ledger(str(Path(tmp) / "bench.db")),
                       "postgresql": open_ledger(server.create_database("bench"))}
            results: dict[str, dict[str, list[float]]] = {k: {"seq": [], "thr": [], "read": []} for k in ledgers}
            for r in range(args.rounds):  # interleaved, so both see the same machine load
                for name, led in ledgers.items():
                    results[name]["seq"].append(sequential(led, args.changes, f"seq{r}"))
                    results[name]["thr"].append(threaded(led, args.changes // 8 or 1, f"thr{r}"))
                    results[name]["read"].append(read_all(led))
            med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in results.items()}
            s, p = med["sqlite"], med["postgresql"]
            print(f"{'':28}{'SQLite':>12}{'PostgreSQL':>14}{'ratio':>8}")
            print(f"{'record_change, median':28}{s['seq'] * 1e3:>10.3f}ms{p['seq'] * 1e3:>12.3f}ms"
                  f"{p['seq'] / s['seq']:>8.2f}")
            print(f"{'8 threads, changes/s':28}{s['thr']:>12.0f}{p['thr']:>14.0f}{p['thr'] / s['thr']:>8.2f}")
            print(f"{'changes(limit=1000)':28}{s['read'] * 1e3:>10.2f}ms{p['read'] * 1e3:>12.2f}ms"
                  f"{p['read'] / s['read']:>8.2f}")
            for led in ledgers.values():
                led.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
