"""A fleet on one PostgreSQL ledger: two agent processes record their changes and drift alarms in the shared
database, and `driftwatch accept` run from a third process reaches both through ``drift_commands``."""

from __future__ import annotations

import os
import subprocess
import sys

from driftwatch.ledger import open_ledger
from tests.helpers.processes import FLEET_AGENT


def test_accept_from_a_third_process_reaches_both_agents(pg_url) -> None:
    env = {**os.environ, "DRIFTWATCH_LEDGER": pg_url, "DRIFTWATCH_DRIFT_REFERENCE_CALLS": "300",
           "DRIFTWATCH_DRIFT_POLL_S": "0.05"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    agents = [subprocess.Popen([sys.executable, str(FLEET_AGENT), name], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    try:
        assert [p.stdout.readline().strip() for p in agents] == ["ALARM", "ALARM"]
        accept = subprocess.run([sys.executable, "-m", "driftwatch", "accept", "fleet-bot", "--ledger", pg_url],
                                capture_output=True, text=True, timeout=60, env=env)
        assert accept.returncode == 0, accept.stderr
        assert "accept queued for agent fleet-bot" in accept.stdout
        accepted = [p.stdout.readline().split() for p in agents]
        assert all(line[0] == "ACCEPTED" and line[1] in ("accepted", "settling") for line in accepted), accepted
        for p in agents:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
    finally:
        for p in agents:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
    ledger = open_ledger(pg_url, readonly=True)
    changes = ledger.changes(agent="fleet-bot")
    assert sorted(c.component for c in changes) == ["system_prompt@a", "system_prompt@b"]
    alarms = ledger.alarms(agent="fleet-bot")
    assert len(alarms) >= 2 and {a.signal for a in alarms} == {"output_chars"}
    assert {a.anchor_change_id for a in alarms} <= {c.id for c in changes}
    assert [(c[1], c[2]) for c in ledger.commands()] == [("fleet-bot", "accept")]
    assert ledger.windows(agent="fleet-bot") != []  # both processes' call aggregates, for reports
