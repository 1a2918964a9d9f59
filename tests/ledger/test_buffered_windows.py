"""Call windows through the buffered ledger: however fast they close, they are handed to the writer together, at most
once a second (and at once by a flush, a read or close); the call that hands them over waits for the writer, within
a bound; what waits is bounded (``max_pending``) and what is dropped is counted.

Reproduction (issue 15, memory): one agent's trivial calls close a 100-call window every ~0.6 ms; each window was
an op of its own (one transaction, one statement) that the writer, sharing the interpreter lock with the busy host
thread, wrote slower than they came, so ~4,000 ops (windows, events, closures) piled up in the queue: +7 MB of
resident memory over 1M calls. The backend here is a real SQLite ledger whose window writes can be held at a gate
(a stand-in for a slow disk: the writer is busy while the host goes on).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from driftwatch.ledger import buffered
from driftwatch.ledger.buffered import BufferedLedger
from driftwatch.ledger.sqlite import SQLiteLedger
from driftwatch.windows import CallWindow


class _GatedWindows(SQLiteLedger):
    """A real SQLite ledger whose first window write waits at a gate; every batch it is given is noted."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[int] = []

    def record_windows(self, windows: Sequence[CallWindow]) -> None:
        self.batches.append(len(windows))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(30)
        super().record_windows(windows)


def _window(i: int, t0: float) -> CallWindow:
    return CallWindow("bot", t0 + i, t0 + i + 1, calls=100, duration_s=0.01 * i, output_chars=float(i), sized_calls=100)


def _stored(tmp_path) -> list[CallWindow]:
    """The windows in the ledger file, read through a connection of its own (after the buffered ledger closed)."""
    reopened = SQLiteLedger(str(tmp_path / "dw.db"))
    try:
        return reopened.windows(agent="bot")
    finally:
        reopened.close()


def _buffered(tmp_path, **kw) -> tuple[BufferedLedger, _GatedWindows, list[tuple[str, BaseException]]]:
    backend = _GatedWindows(str(tmp_path / "dw.db"))
    errors: list[tuple[str, BaseException]] = []
    return BufferedLedger(backend, on_error=lambda stage, exc: errors.append((stage, exc)), **kw), backend, errors


def test_windows_closed_while_the_writer_is_busy_are_written_together(tmp_path) -> None:
    ledger, backend, errors = _buffered(tmp_path)
    t0 = time.time() - 3600
    try:
        ledger.record_window(_window(0, t0))
        assert backend.entered.wait(30)  # the writer holds the first window, at the gate
        started = time.perf_counter()
        for i in range(1, 501):
            ledger.record_window(_window(i, t0))
        host_s = time.perf_counter() - started
        queued = sum(1 for op in list(ledger._queue) if op is not ledger._inflight)
        assert queued == 0, "500 windows closed within a second of the last hand-over: they wait, no op is queued"
        backend.release.set()
        assert ledger.flush(30)
        assert backend.batches == [1, 500]
        assert backend.windows(agent="bot") == [_window(i, t0) for i in range(501)]
        assert errors == []
        assert host_s < 1.0, f"the host does not wait for the writer: {host_s:.3f} s for 500 windows"
        assert ledger.flush(30)
        assert backend.batches == [1, 500], "positive control: the flush above wrote them, nothing is left"
    finally:
        backend.release.set()
        ledger.close()


def test_waiting_windows_are_bounded_and_the_dropped_ones_counted(tmp_path) -> None:
    ledger, backend, errors = _buffered(tmp_path, max_pending=10)
    t0 = time.time() - 3600
    try:
        ledger.record_window(_window(0, t0))
        assert backend.entered.wait(30)
        for i in range(1, 11):
            ledger.record_window(_window(i, t0))
        assert errors == []  # positive control: 10 waiting windows is the bound, nothing dropped
        for i in range(11, 16):
            ledger.record_window(_window(i, t0))
        assert [stage for stage, _ in errors] == ["ledger"] * 5
        assert "call windows waiting" in str(errors[0][1]) and "oldest was dropped" in str(errors[0][1])
        backend.release.set()
        assert ledger.flush(30)
        assert backend.batches == [1, 10]
        kept = [0, *range(6, 16)]  # the first (at the gate) and the 10 newest
        assert backend.windows(agent="bot") == [_window(i, t0) for i in kept]
    finally:
        backend.release.set()
        ledger.close()


def test_the_call_that_hands_windows_over_waits_for_the_writer_within_a_bound(tmp_path) -> None:
    """The first window, and the first one closed a hand-over interval after it, hand the waiting windows to the
    writer and wait for it: not at all once it is done, at most ``WINDOWS_HANDOVER_S`` while it is busy. Windows
    closed in between wait, without waiting for anything."""
    ledger, backend, errors = _buffered(tmp_path)
    t0 = time.time() - 3600
    try:
        started = time.perf_counter()
        ledger.record_window(_window(0, t0))  # handed over: the writer takes it and stops at the gate
        waited = time.perf_counter() - started
        assert backend.entered.wait(30)
        assert buffered.WINDOWS_HANDOVER_S * 0.95 <= waited < 5.0, f"waited {waited:.4f} s for a held writer"
        handed = time.monotonic()
        for i in range(1, 4):
            ledger.record_window(_window(i, t0))  # within the interval: kept for the next hand-over
        assert backend.batches == [1] and len(ledger._windows) == 3
        backend.release.set()
        assert ledger.flush(30) and backend.batches == [1, 3]  # control: a flush hands them over at once
        for i in range(4, 6):
            ledger.record_window(_window(i, t0))
        time.sleep(max(0.0, handed + buffered.WINDOWS_EVERY_S + 0.05 - time.monotonic()))
        ledger.record_window(_window(6, t0))  # an interval after the last hand-over: all three go, now
        assert backend.batches == [1, 3, 3]
        assert backend.windows(agent="bot") == [_window(i, t0) for i in range(7)]
        assert errors == []
    finally:
        backend.release.set()
        ledger.close()


def test_windows_waiting_are_written_before_a_read_and_at_close(tmp_path) -> None:
    """Windows kept for the next hand-over are not lost to a reader or at exit: a read through the buffered ledger
    sees them, and close() writes them."""
    ledger, backend, errors = _buffered(tmp_path)
    backend.release.set()
    t0 = time.time() - 3600
    ledger.record_window(_window(0, t0))
    assert ledger.flush(30)
    for i in range(1, 4):
        ledger.record_window(_window(i, t0))
    assert backend.batches == [1]  # control: three are waiting, not written yet
    assert ledger.windows(agent="bot") == [_window(i, t0) for i in range(4)]
    for i in range(4, 6):
        ledger.record_window(_window(i, t0))
    assert ledger.close() == 0
    assert _stored(tmp_path) == [_window(i, t0) for i in range(6)]
    assert errors == []


def test_the_call_that_hands_windows_over_returns_once_they_are_written(tmp_path, monkeypatch) -> None:
    """The hand-over waits for the writer to be done (here with a bound long enough that the scheduler cannot decide
    the test): the windows are in the ledger when the call returns."""
    monkeypatch.setattr(buffered, "WINDOWS_HANDOVER_S", 10.0)
    ledger, backend, errors = _buffered(tmp_path)
    backend.release.set()
    t0 = time.time() - 3600
    try:
        ledger.record_window(_window(0, t0))
        assert backend.batches == [1]
        assert backend.windows(agent="bot") == [_window(0, t0)]
        assert errors == []
    finally:
        ledger.close()


def test_windows_waiting_at_exit_are_written_when_no_writer_thread_can_start(tmp_path, monkeypatch) -> None:
    """At exit on Python 3.12+ no thread can start; windows kept for the next hand-over while the writer had
    gone idle are then written by close() itself, not lost."""
    monkeypatch.setattr(buffered, "IDLE_EXIT_S", 0.05)
    ledger, backend, errors = _buffered(tmp_path)
    backend.release.set()
    t0 = time.time() - 3600
    ledger.record_window(_window(0, t0))
    for i in range(1, 3):
        ledger.record_window(_window(i, t0))  # kept for the next hand-over
    deadline = time.monotonic() + 30
    while ledger._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)  # the writer goes idle and its thread ends
    assert ledger._thread is None

    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    assert ledger.close() == 0
    monkeypatch.undo()
    assert backend.batches == [1, 2]
    assert _stored(tmp_path) == [_window(i, t0) for i in range(3)]
    assert errors == []
