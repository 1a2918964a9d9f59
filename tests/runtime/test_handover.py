"""driftwatch's background threads never sit waiting for the interpreter lock while the host runs.

Reproduction (issue 15): a DSPy program on ``DummyLM`` releases the interpreter lock three times a call, each
time for a few microseconds (``uuid4()``: ``os.urandom``). A thread of ours that woke meanwhile (the call-batch
timer at its deadline, the ledger writer given a call window) waited for the lock for as long as the host ran:
CPython wakes it at every release, it loses the race, and its 5 ms wait for a forced switch starts over. The host
paid a wake-up at every release: about three context switches and 100 µs of a 1.2 ms call. Now the call that finds
one of them due hands the lock over (waits for it, within a bound).

These tests pin the mechanism (the call waits for the timer's turn, within its bound). What it saves depends on the
scheduler (an idle core to wake the thread on), so it is measured, not asserted: ``benchmarks/bench_processes.py``
reports each mode's context switches per call (DSPy watched: 3.0 before, 0.007 after).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from driftwatch import call_batch
from driftwatch.call_batch import CallBatch
from driftwatch.observation import Call


@contextmanager
def _batch(size: int, max_age_s: float, process) -> Iterator[CallBatch]:
    batch = CallBatch(process, size=size, max_age_s=max_age_s)
    try:
        yield batch
    finally:
        batch.close()


def test_a_call_that_finds_the_timer_due_waits_for_it_to_take_its_turn(monkeypatch) -> None:
    """The host keeps the lock busy past the timer's deadline, releasing it briefly all along (the timer, woken,
    cannot get it). The next call hands it over first: the timer processes the old lone call on its own thread,
    then the new call starts a batch the timer notes the age of. (The bound is raised so that a loaded machine's
    scheduler cannot decide the test; without the hand-over the call would process both calls itself.)"""
    monkeypatch.setattr(call_batch, "HANDOVER_S", 10.0)
    seen: list[tuple[str, int]] = []
    with _batch(1000, 0.05, lambda calls: seen.append((threading.current_thread().name, len(calls)))) as batch:
        batch.add(Call("bot", 0.01), time.monotonic())
        deadline = batch._oldest + 0.05
        while time.monotonic() < deadline + 0.05:
            os.urandom(8)  # busy, releasing the lock for microseconds at a time
        batch.add(Call("bot", 0.01), time.monotonic())
        assert seen == [("driftwatch-call-batch", 1)], seen
        assert batch._due == pytest.approx(batch._oldest + 0.05)  # asleep until the new batch is old
        assert len(batch) == 1


def test_a_busy_timer_holds_a_call_up_once_and_for_the_bound_only() -> None:
    """A timer that does not come back (it is processing a slow batch) holds the call that hands over for at most
    ``HANDOVER_S``, and no later call waits for it until it sleeps again."""
    release = threading.Event()
    entered = threading.Event()

    def process(calls: list[Call]) -> None:
        if threading.current_thread().name == "driftwatch-call-batch":
            entered.set()
            release.wait(30)

    with _batch(1000, 0.05, process) as batch:
        batch.add(Call("bot", 0.01), time.monotonic())
        assert entered.wait(30)  # the timer processes the lone call, slowly: its deadline has passed
        started = time.perf_counter()
        batch.add(Call("bot", 0.01), time.monotonic())
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(200):
            batch.add(Call("bot", 0.01), time.monotonic())
        rest = time.perf_counter() - started
        release.set()
        assert call_batch.HANDOVER_S * 0.95 <= first < 5.0, f"the first call waited {first:.4f} s"
        assert rest < 100 * call_batch.HANDOVER_S, f"200 later calls took {rest:.3f} s: they waited again"


def test_a_call_that_starts_a_batch_wakes_the_timer_and_waits_for_its_turn(monkeypatch) -> None:
    """The call that starts the timer, and the call that wakes it from its sleep with no batch kept, each wait until
    it has noted the new batch's age and gone back to sleep: it never waits for the lock behind the host."""
    monkeypatch.setattr(call_batch, "HANDOVER_S", 10.0)
    with _batch(1000, 0.05, lambda calls: None) as batch:
        batch.add(Call("bot", 0.01), time.monotonic())  # the timer thread starts
        assert batch._due == pytest.approx(batch._oldest + 0.05)
        batch.flush()
        deadline = time.monotonic() + 30  # the timer wakes, finds nothing kept, sleeps until a batch starts
        while batch._due != float("inf") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert batch._due == float("inf")
        batch.add(Call("bot", 0.01), time.monotonic())
        assert batch._due == pytest.approx(batch._oldest + 0.05)
