"""DriftMonitor: the CUSUM bank, its calibration, latching, warming, memory and input checks."""

from __future__ import annotations

import dataclasses
import random
import tracemalloc

import pytest

from driftwatch.drift import BEHAVIOUR_SIGNALS, CallRecord, DriftMonitor, DriftStatus
from tests.helpers.drift_streams import first_alarm, records


def fitted(rate: float = 1e-4, seed: int = 1, **kw) -> tuple[DriftMonitor, random.Random]:
    rng = random.Random(seed)
    mon = DriftMonitor(rate, **kw)
    mon.fit_reference(records(1000, rng))
    return mon, rng


def test_public_api_shape():
    """update() returns DriftStatus(alarm, score, signals) with one score per active signal."""
    mon, rng = fitted()
    st = mon.update(records(1, rng)[0])
    assert isinstance(st, DriftStatus)
    assert st.alarm is False
    assert set(st.signals) == {"output_chars", "refusal", "tool_mix", "format_failure", "score", "error", "combined"}
    assert st.score == max(st.signals.values())
    assert [f.name for f in dataclasses.fields(CallRecord)][:9] == [
        "output_chars", "tokens", "refused", "tools", "format_ok", "error", "score", "embedding", "latency_s"]


def test_warming_before_a_reference():
    """Before fit_reference/freeze the monitor reports warming and never alarms."""
    mon = DriftMonitor()
    rng = random.Random(2)
    statuses = [mon.update(r) for r in records(300, rng, length=3.0)]
    assert all(s.warming and not s.alarm for s in statuses)
    assert mon.armed is False and mon.reference_size == 0 and mon.ring_size == 300


@pytest.mark.parametrize(("signal", "change"), [
    ("output_chars", {"length": 2.0}),
    ("output_chars", {"length": 0.5}),
    ("refusal", {"refusal": 0.25}),
    ("format_failure", {"fmt_fail": 0.2}),
    ("error", {"error": 0.15}),
    ("tool_mix", {"search": 0.8}),
    ("score", {"score": 0.4}),
])
def test_each_signal_detects_its_change(signal, change):
    """A large change of one kind raises an alarm on that signal within 300 calls."""
    mon, rng = fitted()
    at, fired = first_alarm(mon, records(2000, rng, **change))
    assert at is not None and at <= 300
    assert fired == (signal,)


def test_embedding_signal_detects_a_shift():
    """A shift of half the embedding dimensions raises the embedding alarm (reported at a batch end)."""
    rng = random.Random(3)
    mon = DriftMonitor(1e-4)
    mon.fit_reference(records(1000, rng, dims=24))
    assert "embedding" in mon.scores()
    at, fired = first_alarm(mon, records(1000, rng, dims=24, embedding_shift=0.6))
    assert fired == ("embedding",) and at <= 200


def test_false_alarm_rate_within_budget():
    """With no change, alarms per call (reset after each) stay within the budget (test scale 1e-2)."""
    rng = random.Random(4)
    alarms = calls = 0
    for _ in range(4):
        mon = DriftMonitor(1e-2, signals=("output_chars", "refusal", "tool_mix", "score"))
        mon.fit_reference(records(1000, rng))
        for r in records(10_000, rng):
            calls += 1
            if mon.update(r).fired:
                alarms += 1
                mon.reset()
    assert calls == 40_000
    assert 0.5e-3 <= alarms / calls <= 1e-2  # calibrated (not silent), and never above the budget


def test_smaller_budget_means_higher_thresholds_and_replicas_split_it():
    """Thresholds grow as the false-alarm budget shrinks; replicas divide the budget."""
    rng = random.Random(5)
    ref = records(1000, rng)
    hs = []
    for rate, replicas in ((1e-2, 1), (1e-4, 1), (1e-4, 3)):
        mon = DriftMonitor(rate, replicas=replicas)
        mon.fit_reference(ref)
        hs.append(mon.describe()["output_chars"]["threshold_up"])
        assert mon.bank_rate == pytest.approx(rate / replicas)
    assert hs[0] < hs[1] < hs[2]


def test_alarm_latches_until_reset():
    """Once raised, the alarm stays on through normal calls; reset() clears it, same reference."""
    mon, rng = fitted()
    at, _ = first_alarm(mon, records(500, rng, length=3.0))
    assert at is not None
    after = [mon.update(r) for r in records(200, rng)]
    assert all(s.alarm for s in after) and not any(s.fired for s in after)
    assert set(mon.latched) == {"output_chars"}
    size = mon.reference_size
    mon.reset()
    assert mon.latched == {} and mon.reference_size == size
    assert mon.update(records(1, rng)[0]).alarm is False


def test_accept_makes_recent_calls_the_reference():
    """accept() freezes the calls collected since the last freeze: the new behaviour stops alarming."""
    rng = random.Random(6)
    mon = DriftMonitor(1e-4)
    mon.fit_reference(records(1000, rng))
    at, _ = first_alarm(mon, records(1000, rng, length=2.0))
    assert at is not None
    for r in records(1000, rng, length=2.0):
        mon.update(r)
    assert mon.accept() == 1000
    assert mon.armed and mon.latched == {}
    assert first_alarm(mon, records(3000, rng, length=2.0)) == (None, ())


def test_unknown_values_are_skipped_and_absent_signals_inactive():
    """None fields move nothing; a signal missing from the reference is not watched."""
    rng = random.Random(7)
    mon = DriftMonitor(1e-4)
    mon.fit_reference(records(1000, rng, scores=False))
    assert "score" not in mon.scores()
    before = mon.scores()
    st = mon.update(CallRecord())
    assert st.signals == before and not st.alarm


def test_scores_arriving_alone_feed_the_score_signal():
    """update_score() (record_score without a call) drives the score signal."""
    rng = random.Random(8)
    mon = DriftMonitor(1e-4)
    mon.fit_reference(records(1000, rng, scores=False), scores=[rng.gauss(0.7, 0.1) for _ in range(500)])
    fired = None
    for i in range(300):
        st = mon.update_score(rng.gauss(0.4, 0.1))
        if st.fired:
            fired = (i, st.fired)
            break
    assert fired is not None and fired[1] == ("score",) and fired[0] < 100


def test_operational_signals_are_a_separate_bank():
    """Latency moves only the operational monitor; the behavioural bank ignores it."""
    rng = random.Random(9)
    ref = records(1000, rng)
    beh, ops = DriftMonitor(1e-4), DriftMonitor(1e-4, signals=("latency", "cost"))
    beh.fit_reference(ref)
    ops.fit_reference(ref)
    assert set(ops.scores()) == {"latency"}  # no token counts in these records: no cost signal
    slow = records(1000, rng, latency=3.0)
    assert first_alarm(beh, slow) == (None, ())
    assert first_alarm(ops, slow)[1] == ("latency",)


def test_memory_is_constant():
    """Memory held after 4k and after 24k calls is the same (bounded ring, no per-call history)."""
    rng = random.Random(10)
    mon = DriftMonitor(1e-4, reference_calls=500)
    mon.fit_reference(records(500, rng, dims=16))
    batch = records(2000, rng, dims=16)
    tracemalloc.start()
    try:
        for _ in range(2):
            for r in batch:
                mon.update(r)
        first = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            for r in batch:
                mon.update(r)
        second = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert mon.ring_size == 500
    assert second - first < 16 * 1024


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"false_alarm_rate": 0}, "false_alarm_rate=0"),
    ({"false_alarm_rate": 1.5}, "false_alarm_rate=1.5"),
    ({"reference_calls": 5}, "reference_calls=5"),
    ({"replicas": 0}, "replicas=0"),
    ({"signals": ("latency", "vibes")}, "unknown signal 'vibes'"),
    ({"shift": 0}, "shift=0"),
])
def test_bad_arguments_are_named(kwargs, message):
    """A bad argument raises ValueError naming it."""
    with pytest.raises(ValueError, match=message):
        DriftMonitor(**kwargs)


def test_fit_reference_rejects_other_items():
    """fit_reference() takes CallRecords only, with a one-line error."""
    with pytest.raises(TypeError, match="expected CallRecord"):
        DriftMonitor().fit_reference([{"output_chars": 3}])


def test_behaviour_signal_names_match_the_brief():
    """The signal label values are the brief's list."""
    assert BEHAVIOUR_SIGNALS == ("output_chars", "refusal", "tool_mix", "format_failure", "score", "error",
                                 "embedding")
