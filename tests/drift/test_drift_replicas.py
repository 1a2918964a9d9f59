"""Replicas: with drift_replicas=N each process spends 1/N of the budget, so N processes together
raise no more false alarms per call of each replica than the budget (docs/drift.md, "Replicas and fleets")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from driftwatch.ledger import open_ledger
from driftwatch.runtime import COUNT_ONLY_STAGES
from tests.helpers.processes import REPLICA_WORKER

RATE = 0.01  # test-scale budget, so that 20k calls per replica give counts worth comparing
CALLS = 20_000


def run_fleet(tmp_path: Path, replicas: int) -> tuple[list[dict], int]:
    ledger = tmp_path / f"fleet-{replicas}.db"
    env = {**os.environ, "DRIFTWATCH_LEDGER": str(ledger), "DRIFTWATCH_DRIFT_REPLICAS": str(replicas),
           "DRIFTWATCH_DRIFT_FALSE_ALARM_RATE": str(RATE), "DRIFTWATCH_DRIFT_REFERENCE_CALLS": "500",
           "DRIFTWATCH_DRIFT_POLL_S": "0"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    procs = [subprocess.Popen([sys.executable, str(REPLICA_WORKER), str(100 * replicas + i), str(CALLS)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    led = open_ledger(str(ledger), readonly=True)
    try:
        stored = len(led.alarms(agent="fleet-bot"))
    finally:
        led.close()
    return results, stored


def test_three_replicas_keep_the_fleet_within_the_budget(tmp_path):
    """3 processes with drift_replicas=3: together ≤ the budget per replica call; without the split, ~3x more."""
    split, stored = run_fleet(tmp_path, 3)
    # nothing failed (three processes writing one file may make a write wait past the budget: counted, not failed)
    assert all(r["bank_rate"] == RATE / 3 and set(r["errors"]) <= COUNT_ONLY_STAGES for r in split)
    fleet = sum(r["alarms"] for r in split)
    assert stored == fleet  # every false alarm reached the shared ledger
    assert 0 < fleet <= RATE * CALLS  # the fleet behaves like one process at the full budget
    unsplit, _ = run_fleet(tmp_path, 1)
    assert all(r["bank_rate"] == RATE for r in unsplit)
    assert sum(r["alarms"] for r in unsplit) >= 1.8 * fleet  # what the split prevents
