"""One replica of the drift replica test: a reference, a neutral change, then calls; prints JSON.

Usage: python drift_replica_worker.py SEED CALLS   (settings from DRIFTWATCH_* variables)
Each false alarm is counted, stored in the shared ledger (by the runtime) and reset, so the count
measures the false-alarm rate per call of this replica.
"""

from __future__ import annotations

import json
import math
import random
import sys

from prometheus_client import CollectorRegistry

import driftwatch
from driftwatch.observation import Call

AGENT = "fleet-bot"


def main() -> None:
    seed, calls = int(sys.argv[1]), int(sys.argv[2])
    rt = driftwatch.configure(registry=CollectorRegistry(), tracing=False, audit=False)
    rng = random.Random(seed)

    def call() -> None:
        rt.record_call(Call(agent=AGENT, duration_s=0.01, error=rng.random() < 0.02,
                            output_chars=int(math.exp(rng.gauss(5.5, 0.5))),
                            tools=("search",) if rng.random() < 0.3 else ()))

    component = f"prompt-{seed}"  # each replica tracks its own copy; the engine keys on the agent
    rt.observe(AGENT, component, "v1", kind="system_prompt")
    for _ in range(rt.settings.drift_reference_calls):
        call()
    rt.observe(AGENT, component, "v1 ", kind="system_prompt")  # a neutral change: behaviour unchanged
    mon = rt.drift.monitor(AGENT)
    assert mon.armed
    alarms = 0
    for _ in range(calls):
        call()
        if mon.latched:
            alarms += len(mon.latched)  # two signals may cross at the same call: two alarms in the ledger
            rt.drift.reset(AGENT)
    print(json.dumps({"alarms": alarms, "calls": calls, "bank_rate": mon.bank_rate,
                      "errors": rt.error_counts}))
    rt.close()


if __name__ == "__main__":
    main()
