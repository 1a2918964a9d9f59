"""The statistics behind the bank: χ² tails, session dependence, the combined and embedding statistics,
discrete scores and per-signal effects (quick correctness checks; the benchmark is benchmarks/drift/)."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from driftwatch.drift import CallRecord, DriftMonitor
from driftwatch.drift.calibrate import chi2_isf, chi2_sf, chibar_sf, continuous_thresholds, rate_threshold
from driftwatch.drift.combined import ANCHOR_GAIN, BLOCK, Combined, Part, anchor_stride, anchor_thresholds
from driftwatch.drift.dependence import estimate, variance_time
from tests.helpers.drift_streams import first_alarm, records, session_records


def test_chi2_tail_matches_closed_forms():
    """chi2_sf is exact for 1 and 2 degrees of freedom and chi2_isf inverts it."""
    for x in (0.3, 4.0, 25.0, 60.0):
        assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-12)
        assert chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-12)
    for df in (1, 4, 10, 17):
        assert chi2_sf(chi2_isf(1e-6, df), df) == pytest.approx(1e-6, rel=1e-6)
    assert chi2_isf(1e-6, 10) > chi2_isf(1e-6, 2)


def test_variance_time_sees_blocks_of_equal_values():
    """Independent values: V(b) ≈ 1 at every scale; each value repeated 8 times: V(b) grows to ≈ 8."""
    rng = random.Random(1)
    iid = [rng.gauss(0, 1) for _ in range(4000)]
    assert all(abs(v - 1.0) < 0.25 for v in variance_time(iid)[:5])
    blocks = [v for v in (rng.gauss(0, 1) for _ in range(500)) for _ in range(8)]
    curve = variance_time(blocks)
    assert curve[0] == pytest.approx(2.0, rel=0.1)  # b = 2
    assert 5.0 < curve[3] < 8.0  # b = 16: 8 · (1 − 8/48) ≈ 6.7


def test_dependence_is_found_in_sessions_and_not_in_independent_calls():
    """The session model: ρ = 0 (φ = 1) for independent calls; for runs of mean 10 that share a
    topic, ρ near 0.9 and an upper φ at least the true long-run variance ratio."""
    rng = random.Random(2)
    iid = [[rng.gauss(0, 1) for _ in range(1000)] for _ in range(4)]
    dep = estimate([variance_time(s) for s in iid], 1000)
    assert dep.rho == 0.0 and [dep.phi(i) for i in range(4)] == [1.0] * 4
    lam, rho = 0.6, 0.9  # share of the variance from the session, persistence
    series = []
    for _ in range(4):
        level, xs = rng.gauss(0, math.sqrt(lam)), []
        for _ in range(1000):
            if rng.random() > rho:
                level = rng.gauss(0, math.sqrt(lam))
            xs.append(level + rng.gauss(0, math.sqrt(1 - lam)))
        series.append(xs)
    dep = estimate([variance_time(s) for s in series], 1000)
    true_phi = 1 + 2 * lam * rho / (1 - rho)  # 11.8
    assert 0.8 <= dep.rho <= 0.97
    assert all(dep.phi(i) >= 0.8 * true_phi for i in range(4))
    assert all(dep.phi(i, upper=False) < dep.phi(i) for i in range(4))


def test_thresholds_grow_with_dependence():
    """A larger long-run variance ratio means higher thresholds (rates and continuous signals)."""
    rng = random.Random(3)
    z = [rng.gauss(0, 1) for _ in range(1000)]
    assert rate_threshold(30, 1000, 1e-5, lambda p: 2 * p, phi=4.0) > rate_threshold(30, 1000, 1e-5, lambda p: 2 * p)
    up1, _ = continuous_thresholds(z, (1e-5, 0.0), 0.25, 4.0, 0.05, boot=8, rng=random.Random(0))
    up4, _ = continuous_thresholds(z, (1e-5, 0.0), 0.25, 4.0, 0.05, boot=8, rng=random.Random(0), phi=4.0)
    assert up4 > 2 * up1


def count_alarms(mon: DriftMonitor, recs: list[CallRecord]) -> dict[str, int]:
    fired: dict[str, int] = {}
    for r in recs:
        for s in mon.update(r).fired:
            fired[s] = fired.get(s, 0) + 1
        if mon.latched:
            mon.reset()
    return fired


def test_sessions_keep_the_false_alarm_rate_within_the_budget():
    """Calls in sessions (runs of mean 10 sharing a topic): calibrated for the dependence, the bank stays
    within its budget (test scale 1e-2); calibrated as if calls were independent, it pages far more often."""
    rng = random.Random(4)
    signals = ("output_chars", "score", "tool_mix")
    totals = {True: 0, False: 0}
    calls = 0
    for _ in range(3):
        ref, post = session_records(1000, rng, run_mean=10), session_records(10_000, rng, run_mean=10)
        calls += len(post)
        for dep in (True, False):
            mon = DriftMonitor(1e-2, signals=signals, dependence=dep)
            mon.fit_reference(ref)
            totals[dep] += sum(count_alarms(mon, post).values())
    assert totals[True] <= 1e-2 * calls
    assert totals[False] >= 3 * 1e-2 * calls  # the positive control: what the dependence costs uncorrected


def test_combined_false_alarms_stay_within_its_share():
    """With no change the combined statistic raises fewer alarms than its share of the budget (test scale)."""
    rng = random.Random(5)
    mon = DriftMonitor(1e-2)
    mon.fit_reference(records(1000, rng))
    fired = count_alarms(mon, records(30_000, rng))
    share = 1e-2 / len(mon.scores())
    assert fired.get("combined", 0) <= share * 30_000


def compound(n: int, rng: random.Random) -> list[CallRecord]:
    """Four signals each moved a little: length ×1.06 (0.12 sd of log length), score −0.015 (0.1 sd),
    refusals 3% → 4.5%, format failures 2% → 3%."""
    return records(n, rng, length=1.06, score=0.685, refusal=0.045, fmt_fail=0.03)


def test_combined_catches_a_compound_change_sooner_than_the_signals_alone():
    """Several signals moving a little (10 streams): with the combined statistic the bank alarms sooner
    (median first alarm) than the same bank without it, the combined statistic raising the first alarm in
    several streams; its attribution names signals that moved."""
    with_comb, without, first_combined = [], [], []
    for seed in range(6, 16):
        rng = random.Random(seed)
        ref, post = records(1000, rng), compound(4000, rng)
        a, b = DriftMonitor(1e-4), DriftMonitor(1e-4, combined=False)
        a.fit_reference(ref)
        b.fit_reference(ref)
        at, fired = first_alarm(a, post)
        alone, _ = first_alarm(b, post)
        with_comb.append(at or 5000)
        without.append(alone or 5000)
        if fired == ("combined",):
            first_combined.append(a.effects("combined"))
    assert statistics.median(with_comb) < 0.8 * statistics.median(without)
    assert len(first_combined) >= 3
    for eff in first_combined:
        moved = {s for s, e in eff.items() if abs(e["t"]) >= 2}
        assert moved & {"output_chars", "score", "refusal", "format_failure"}


def test_combined_is_quiet_when_the_moved_signal_has_its_own_alarm():
    """A large change of one signal raises that signal's alarm only, not a second, combined one."""
    rng = random.Random(8)
    mon = DriftMonitor(1e-4)
    mon.fit_reference(records(1000, rng))
    fired = count_alarms_latched(mon, records(2000, rng, length=2.0))
    assert fired == {"output_chars"}


def count_alarms_latched(mon: DriftMonitor, recs: list[CallRecord]) -> set[str]:
    out: set[str] = set()
    for r in recs:
        out.update(mon.update(r).fired)
    return out


def shifted_embeddings(n: int, rng: random.Random, shift: list[float]) -> list[CallRecord]:
    """Records whose 16-dimension embeddings come from two clusters, moved by ``shift``."""
    out = []
    for r in records(n, rng):
        c = 1.5 if rng.random() < 0.3 else -0.6
        r.embedding = [c * (j % 2) + s + rng.gauss(0, 1) for j, s in enumerate(shift)]
        out.append(r)
    return out


def test_embedding_statistic_sees_a_style_shift_in_any_direction():
    """A mean shift of 0.4 sd along a random direction of the embedding raises the embedding alarm; the
    same agent without the shift raises none."""
    rng = random.Random(9)
    direction = [rng.gauss(0, 1) for _ in range(16)]
    norm = math.sqrt(sum(v * v for v in direction))
    shift = [0.4 * v / norm for v in direction]
    mon = DriftMonitor(1e-4, signals=("embedding",))
    mon.fit_reference(shifted_embeddings(1000, rng, [0.0] * 16))
    assert first_alarm(mon, shifted_embeddings(3000, rng, [0.0] * 16)) == (None, ())
    at, fired = first_alarm(mon, shifted_embeddings(3000, rng, shift))
    assert fired == ("embedding",) and at <= 1500
    assert mon.effects("embedding")["embedding"]["mahalanobis"] > 0.2


def judge(n: int, rng: random.Random, mean: float) -> list[CallRecord]:
    """A 1–10 judge: integer scores, mostly ties."""
    return [CallRecord(score=float(min(10, max(1, round(rng.gauss(mean, 0.6)))))) for _ in range(n)]


def test_discrete_judge_scores_with_ties():
    """Integer 1–10 scores (mostly 8s): no alarm without a change; a drop of half a point is caught."""
    rng = random.Random(10)
    mon = DriftMonitor(1e-4, signals=("score",))
    mon.fit_reference(judge(1000, rng, 8.0))
    assert first_alarm(mon, judge(5000, rng, 8.0)) == (None, ())
    at, fired = first_alarm(mon, judge(2000, rng, 7.5))
    assert fired == ("score",) and at <= 300


def test_nearly_constant_judge_score_needs_a_real_move():
    """A judge that says 8 to 98% of answers (1% 7s, 1% 9s): the spread floor (a quarter of the scale's
    step) keeps the same mix from paging, while every answer dropping to 7 pages within a few calls."""
    rng = random.Random(13)

    def mix(n: int) -> list[CallRecord]:
        return [CallRecord(score=7.0 if u < 0.01 else 9.0 if u < 0.02 else 8.0)
                for u in (rng.random() for _ in range(n))]

    mon = DriftMonitor(1e-4, signals=("score",))
    mon.fit_reference(mix(1000))
    assert mon.describe()["score"]["kind"] == "mean_shift"
    assert first_alarm(mon, mix(3000)) == (None, ())
    at, _ = first_alarm(mon, [CallRecord(score=7.0) for _ in range(50)])
    assert at is not None and at <= 10


def test_alarm_effects_say_how_much_the_signal_moved():
    """Each alarm records the signals' movement: here answers twice as long, about +1.4 sd of log length."""
    rng = random.Random(12)
    mon = DriftMonitor(1e-4)
    mon.fit_reference(records(1000, rng))
    at, fired = first_alarm(mon, records(2000, rng, length=2.0))
    assert fired == ("output_chars",)
    for _ in range(200 - at):  # more calls: the recorded effects stay those at the alarm
        mon.update(records(1, rng)[0])
    eff = mon.effects("output_chars")
    assert eff and eff == mon.effects("output_chars")
    assert mon.effects()["output_chars"]["t"] > 0


def rate_blocks(rng: random.Random, blocks: int, p: float) -> list[float]:
    """Per block of 16 calls: (events, calls) of a Bernoulli rate ``p``."""
    return [float(sum(rng.random() < p for _ in range(BLOCK))) for _ in range(blocks)]


def first_crossing(comb: Combined, events: list[float]) -> int | None:
    """Feed blocks of events into a one-rate Combined; the block at which its own test first crosses."""
    for b, k in enumerate(events, start=1):
        comb.acc[0] += k
        comb.acc[1] += BLOCK
        comb.end_block()
        if comb.solo_scores()["refusal"] >= 1.0:
            return b
    return None


def one_rate(alpha: float, anchored: float) -> Combined:
    part = Part("refusal", "rate", 0, 1.0, 1000, [0.03], side=1)
    comb = Combined([part], [], 1.0)  # the combined statistic itself is not looked at here
    comb.add_solo("refusal", alpha * (1.0 - anchored), alpha * anchored)
    return comb


def test_anchor_stride_spends_the_budget_once_per_call():
    """The test since the anchor runs every block at first, then every eighth of the calls so far; each test's
    level covers the calls since the previous one (× ANCHOR_GAIN for the nesting of the tests)."""
    assert [anchor_stride(b) for b in (1, 7, 15, 16, 31, 32, 64, 200)] == [1, 1, 1, 2, 2, 4, 8, 16]
    h = anchor_thresholds(1e-5, 0, 1)
    for st, x in h.items():  # one-sided: P(max(0, Z)² > x) = level
        assert chibar_sf(x, 0, 1) == pytest.approx(min(0.5, 1e-5 * BLOCK * st * ANCHOR_GAIN), rel=1e-6)
    assert h[1] > h[2] > h[16]


def test_rate_test_since_the_anchor_finds_a_doubling_sooner_and_stays_within_its_share():
    """A refusal rate doubling at the anchor (3% → 6%, 1000-call reference): the test over every call since
    the anchor crosses sooner than the sliding windows at the same budget (median over 30 streams, and sooner
    in most streams); with no change (test-scale budget 1e-2), it raises fewer alarms than its share."""
    anchored, windows = [], []
    for seed in range(30):
        events = rate_blocks(random.Random(seed), 190, 0.06)
        anchored.append(first_crossing(one_rate(1e-5, 1.0), events) or 999)
        windows.append(first_crossing(one_rate(1e-5, 0.0), events) or 999)
    assert statistics.median(anchored) < 0.9 * statistics.median(windows)
    assert sum(a < w for a, w in zip(anchored, windows, strict=True)) >= 2 * sum(
        a > w for a, w in zip(anchored, windows, strict=True))
    rng = random.Random(99)
    alarms, blocks = 0, 0
    for _ in range(40):  # 40 anchors × 2000 calls, each restarted after an alarm
        comb = one_rate(1e-2, 1.0)
        events = rate_blocks(rng, 125, 0.03)
        blocks += len(events)
        for k in events:
            comb.acc[0] += k
            comb.acc[1] += BLOCK
            comb.end_block()
            if comb.solo_scores()["refusal"] >= 1.0:
                alarms += 1
                comb.reset()
    assert alarms <= 1e-2 * blocks * BLOCK


def test_format_failures_leave_refusals_out():
    """Refusals break the format by nature: twice as many refusals (each failing the format check) raise the
    refusal alarm, not the format one; twice as many format failures among answers raise the format alarm."""

    def calls(n: int, rng: random.Random, refusal: float, fmt: float) -> list[CallRecord]:
        out = []
        for r in records(n, rng, refusal=refusal, fmt_fail=fmt):
            if r.refused:
                r.format_ok = False
            out.append(r)
        return out

    rng = random.Random(14)
    mon = DriftMonitor(1e-4, signals=("refusal", "format_failure", "output_chars"))
    ref = calls(1000, rng, 0.05, 0.03)
    mon.fit_reference(ref)
    assert mon.describe()["format_failure"]["reference_values"] == sum(not r.refused for r in ref)
    fired = count_alarms_latched(mon, calls(3000, rng, 0.15, 0.03))
    assert "refusal" in fired and "format_failure" not in fired
    mon.fit_reference(ref)
    at, fired = first_alarm(mon, calls(3000, rng, 0.05, 0.09))
    assert fired == ("format_failure",) and at is not None
