"""Fleets: replicas pool their evidence (driftwatch.drift.fleet) instead of splitting the budget N ways."""

from __future__ import annotations

import random
import statistics

from prometheus_client import CollectorRegistry

from driftwatch.config import Settings
from driftwatch.drift import DriftMonitor
from driftwatch.drift.fleet import FleetPool, replay
from driftwatch.ledger import open_ledger
from driftwatch.observation import Call
from driftwatch.runtime import COUNT_ONLY_STAGES, Runtime
from tests.helpers.drift_streams import records


def fleet_first_alarm(n: int, seed: int, *, pooled: bool, rate: float = 1e-4, length: float = 1.0,
                      calls: int = 6000, poll: int = 10, count_all: bool = False) -> list[int]:
    """N replicas with their own references, the fleet's calls spread at random; fleet alarm positions."""
    rng = random.Random(seed)
    mons = [DriftMonitor(rate, replicas=n, pool_rate=rate / 2 if pooled else None) for _ in range(n)]
    for m in mons:
        m.fit_reference(records(1000, rng))
    pool = FleetPool(rate / 2) if pooled else None
    calls_ = ((rng.randrange(n), r) for r in records(calls, rng, length=length))
    return replay(mons, calls_, pool, poll * n, count_all=count_all)


def test_pooled_replicas_detect_sooner_than_split_ones():
    """Three replicas, answers 12% longer: pooling their evidence finds the change in fewer fleet calls
    than three replicas each alone at a third of the budget."""
    pooled = [(fleet_first_alarm(3, s, pooled=True, length=1.12) or [6000])[0] for s in range(4)]
    split = [(fleet_first_alarm(3, s, pooled=False, length=1.12) or [6000])[0] for s in range(4)]
    assert statistics.median(pooled) < 0.75 * statistics.median(split)


def test_pooled_false_alarms_stay_within_the_fleet_budget():
    """No change (test-scale budget 1e-2 per fleet call): the fleet's local and pooled alarms together stay
    within the budget, counted per fleet call."""
    alarms = sum(len(fleet_first_alarm(3, 100 + s, pooled=True, rate=1e-2, calls=6000, count_all=True))
                 for s in range(3))
    assert alarms <= 1e-2 * 18_000


def test_evidence_is_additive_and_survives_a_local_reset():
    """A replica's evidence is a sum since the reference was frozen: a local reset does not lose it."""
    rng = random.Random(7)
    mon = DriftMonitor(1e-3, pool_rate=5e-4)
    mon.fit_reference(records(1000, rng))
    assert DriftMonitor(1e-3).evidence() is None  # warming, and no pool_rate: nothing to share
    for r in records(500, rng, length=1.3):
        mon.update(r)
    before = mon.evidence()
    mon.reset()
    after = mon.evidence()
    assert after["calls"] == before["calls"] == 500
    assert after["cusum"] == before["cusum"]
    assert after["cusum"]["output_chars/up1"] > 0 > after["cusum"]["output_chars/down1"]
    pool = FleetPool(5e-4)
    pool.update({"a": before})
    assert pool.scores["output_chars"] == before["cusum"]["output_chars/up1"]
    pool.update({"a": before, "b": before})  # a second replica with the same evidence doubles it
    assert pool.scores["output_chars"] == 2 * before["cusum"]["output_chars/up1"]


def make_runtime(path: str) -> Runtime:
    return Runtime(Settings.from_env(registry=CollectorRegistry(), ledger=path, tracing=False, audit=False,
                                     drift_pool=True, drift_replicas=2, drift_poll_s=0,
                                     drift_reference_calls=300))


def test_two_replicas_pool_through_the_shared_ledger(tmp_path):
    """Two runtimes on one ledger (drift_pool): each publishes its evidence at its polls and pools both; the
    fleet alarm has one id, so the shared ledger keeps one row although both replicas raised it."""
    path = str(tmp_path / "fleet.db")
    rts = [make_runtime(path), make_runtime(path)]
    rng = random.Random(3)
    try:
        for rt in rts:  # both start on the same prompt, serve their calls, then both load the new prompt
            rt.observe("bot", "prompt", "v1", kind="system_prompt")
        for rt in rts:
            for r in records(300, rng):
                rt.record_call(Call(agent="bot", duration_s=0.01, output_chars=r.output_chars, tools=r.tools))
        for rt in rts:
            rt.observe("bot", "prompt", "v2", kind="system_prompt")
            assert rt.drift.monitor("bot").armed and rt.drift.monitor("bot").pool_rate == 5e-5
        led = open_ledger(path, readonly=True)
        rows: list = []
        for _ in range(400):
            for rt in rts:
                for r in records(20, rng, length=1.1):
                    rt.record_call(Call(agent="bot", duration_s=0.01, output_chars=r.output_chars, tools=r.tools))
            for rt in rts:
                rt.drift.poll_commands()
            rows = [a for a in led.alarms(agent="bot") if "fleet" in a.attributes]
            if rows and all(set(rt.drift.status("bot")["alarms"].values()) & {a.id for a in rows} for rt in rts):
                break
        fleet = [rt.drift.status("bot")["fleet"] for rt in rts]
        assert all(f is not None and f["calls"] > 0 for f in fleet)
        assert fleet[0]["key"] == fleet[1]["key"]  # same anchor: the same change content in both
        assert rows, "no pooled alarm"
        assert len({a.id for a in rows}) == len(rows)  # raised by both replicas, stored once
        assert all(a.attributes["fleet"]["replicas"] == 2 for a in rows)
        assert all(set(rt.drift.status("bot")["alarms"].values()) & {a.id for a in rows} for rt in rts)
        led.close()
        assert all(set(rt.error_counts) <= COUNT_ONLY_STAGES for rt in rts)  # a wait past the budget is no failure
    finally:
        for rt in rts:
            rt.close()
