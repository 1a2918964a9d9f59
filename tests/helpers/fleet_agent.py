"""One watched agent process of the PostgreSQL fleet test (test_drift_fleet_postgres.py).

Usage: python fleet_agent.py NAME   (ledger and drift settings from DRIFTWATCH_* variables)
It reports a prompt, serves calls until the reference is complete, rewrites its prompt and answers about
four times longer, and serves on. Protocol on stdout, one line each: ``ALARM`` when its output_chars drift
alarm latches; ``ACCEPTED <reference>`` (``accepted``, or ``settling`` while the accepted reference fills)
once a ``driftwatch accept`` command, polled from the shared ledger, has unlatched it; ``TIMEOUT`` after 60 s.
"""

from __future__ import annotations

import math
import random
import sys
import time

from prometheus_client import CollectorRegistry

import driftwatch
from driftwatch import drift
from driftwatch.observation import Call

AGENT = "fleet-bot"


def main() -> None:
    name = sys.argv[1]
    rt = driftwatch.configure(registry=CollectorRegistry(), tracing=False, audit=False)
    rng = random.Random(name)
    scale = 1.0

    def call() -> None:
        rt.record_call(Call(agent=AGENT, duration_s=0.01, output_chars=int(scale * math.exp(rng.gauss(5.5, 0.3)))))

    component = f"system_prompt@{name}"  # one copy per process; the drift engine keys on the agent
    driftwatch.track(AGENT, component, "Answer briefly.", kind="system_prompt", source="agent")
    for _ in range(rt.settings.drift_reference_calls):
        call()
    driftwatch.track(AGENT, component, "Explain step by step, in detail.", kind="system_prompt", source="agent")
    scale = 4.0
    deadline = time.monotonic() + 60
    mon = rt.drift.monitor(AGENT)
    while not mon.latched and time.monotonic() < deadline:
        call()
    print("ALARM" if mon.latched else "TIMEOUT", flush=True)
    while drift.status(AGENT)["alarms"] and time.monotonic() < deadline:
        call()
        time.sleep(0.005)
    st = drift.status(AGENT)
    print("TIMEOUT" if st["alarms"] else f"ACCEPTED {st['reference']}", flush=True)
    rt.close()


if __name__ == "__main__":
    main()
