"""What the drift engine adds to a watched call: the same decorated function with drift on and off.

    .venv/bin/python benchmarks/drift/bench_engine.py

Runs interleaved (the machine is shared) and prints the median µs per call of each and the ratio, in CPU
time of this process (other jobs on a shared machine inflate wall time, not this).
Everything else (metrics, spans into an in-memory exporter, ledger) is on in both.
"""

from __future__ import annotations

import random
import statistics
import time

import driftwatch
from driftwatch.testing import capture

CALLS, ROUNDS = 3000, 7


def run(drift: bool) -> float:
    with capture(drift=drift):
        rng = random.Random(0)

        @driftwatch.watch(agent="bench")
        def answer(q: str) -> str:
            return "word " * rng.randint(20, 80)

        driftwatch.track("bench", "system_prompt", "v1", kind="system_prompt")
        for _ in range(1000):
            answer("q")
        driftwatch.track("bench", "system_prompt", "v2", kind="system_prompt")  # armed from here
        t0 = time.process_time()
        for _ in range(CALLS):
            answer("q")
        return (time.process_time() - t0) / CALLS * 1e6


def main() -> None:
    on, off = [], []
    for _ in range(ROUNDS):
        off.append(run(False))
        on.append(run(True))
    m_on, m_off = statistics.median(on), statistics.median(off)
    print(f"watched call, drift off: {m_off:.1f} µs; drift on (armed): {m_on:.1f} µs; "
          f"drift adds {m_on - m_off:.1f} µs ({m_on / m_off:.2f}x)")


if __name__ == "__main__":
    main()
