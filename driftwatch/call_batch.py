"""Calls kept for a batch: the runtime's per-call work (signals, metrics, call windows, drift statistics) done for
several calls together instead of once between each of the agent's own steps.

Measured in place (docs/performance.md), the same per-call work costs 3–5x its isolated time when it runs once
between a framework's steps (cold caches); run back-to-back over a batch it costs less. So the call path only
appends the :class:`~driftwatch.observation.Call` here (one lock, one append), and the batch is processed, in
call order and by one thread at a time:

- by the call that fills it (``size`` calls kept);
- by the call that finds the oldest kept call ``max_age_s`` old (the clock the call path reads anyway);
- by a background thread ``max_age_s`` after the first call of a batch (a lone call with no more traffic);
- by :meth:`CallBatch.flush`, which whatever reads the state calls first (a scrape, the guard's poll, a
  change, a score, reports and status, ``close()``).

``flush()`` returns once every call added before it is processed, including a batch another thread is
processing (the processing lock is held while a batch is taken and processed, so batches keep their order). The
lock is re-entrant: the processing may read the state (the drift engine storing an alarm) and flush again. In a
child after ``fork()`` the parent's kept calls are dropped (the parent processes them) and a timer thread of its own
starts with the child's first batch.

**The hand-over.** A background thread that wakes while the host thread runs must take the interpreter lock back
before it can do anything. A host that releases the lock often and briefly (DSPy draws random bytes for every LM
call: three releases a program call) never leaves it free long enough: CPython wakes the waiting thread at every
release, the thread loses the race, and its 5 ms wait for a forced switch starts over. The thread then waits for as
long as the host runs, and the host pays a wake-up (a system call and a context switch) at every release: measured
in its own process, about 100 µs of a DSPy DummyLM program call. So the host never leaves the timer waiting: the
call that finds the timer due (its wake-up time has come, or the call has just woken it with a new batch) waits for
it, at most :data:`HANDOVER_S`, while the timer takes its turn and goes back to sleep. That is at most twice per
``max_age_s`` while calls come, and nothing when the timer sleeps.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable

from driftwatch.observation import Call

__all__ = ["HANDOVER_S", "CallBatch"]

#: seconds a call waits, at most, for the timer thread to take its turn (it only looks at the batch's age; a batch it
#: finds old is processed on its thread and the call goes on after this bound)
HANDOVER_S = 0.002
_NEVER = float("inf")


class CallBatch:
    """Calls kept for ``process`` (a list of calls, in order), at most ``size`` of them and ``max_age_s`` old."""

    __slots__ = ("__weakref__", "_armed", "_due", "_lock", "_oldest", "_pending", "_process", "_processing",
                 "_stopped", "_timer", "_woke", "max_age_s", "size")

    def __init__(self, process: Callable[[list[Call]], None], *, size: int, max_age_s: float) -> None:
        self._process = process
        self.size = size
        self.max_age_s = max_age_s
        self._pending: list[Call] = []
        self._oldest = 0.0  # time.monotonic() when the first kept call was added
        self._lock = threading.Lock()  # the pending list
        self._processing = threading.RLock()  # taking and processing a batch
        self._armed = threading.Event()  # set when a batch starts: the timer thread waits for its age
        self._stopped = threading.Event()
        self._timer: threading.Thread | None = None
        self._due = _NEVER  # time.monotonic() the timer thread wakes at (never: asleep until a batch starts)
        self._woke = threading.Event()  # set by the timer each time it has taken its turn and sleeps again
        _LIVE.add(self)

    def add(self, call: Call, now: float) -> None:
        """Keep ``call`` (``now``: ``time.monotonic()``); process the batch when it is full or old."""
        if now >= self._due:  # the timer is awake and waiting for the interpreter lock: let it take its turn
            self._handover()
        woken = False
        with self._lock:
            pending = self._pending
            pending.append(call)
            if len(pending) == 1:
                self._oldest = now
                if self.size > 1 and not self._armed.is_set():  # the timer thread sleeps until a batch starts
                    self._woke.clear()  # (before a new timer thread starts: it may take its first turn at once)
                    if self._timer is None:
                        self._start_timer()
                    self._armed.set()
                    woken = True
                full = self.size <= 1
            else:
                full = len(pending) >= self.size or now - self._oldest >= self.max_age_s
        if woken:  # the timer looks at the new batch's age and sleeps again
            self._woke.wait(HANDOVER_S)
        if full:
            self.flush()

    def _handover(self) -> None:
        """Wait (at most :data:`HANDOVER_S`) for the timer thread, due now, to take its turn."""
        due = self._due
        self._woke.clear()
        if not self._woke.wait(HANDOVER_S) and self._due == due:
            self._due = _NEVER  # busy or gone: not waited for again until it sleeps once more

    def flush(self) -> None:
        """Process every kept call now (returns at once when none is kept and no batch is being processed)."""
        with self._processing:  # a batch another thread took is processed before this returns
            with self._lock:
                batch, self._pending = self._pending, []
            if batch:
                self._process(batch)

    def __len__(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Process what is kept and stop the timer thread (later calls are processed at once)."""
        self.size = 1
        self._due = _NEVER
        self._armed.set()  # no timer thread for the calls after this
        self.flush()
        self._stopped.set()
        self._armed.set()

    def _forked(self) -> None:
        """In a child after ``fork()``: the parent's kept calls are the parent's; fresh locks and no timer thread
        (a new one starts with the child's first batch)."""
        self._pending = []
        self._lock = threading.Lock()
        self._processing = threading.RLock()
        self._armed = threading.Event()
        self._stopped = threading.Event()
        self._timer = None
        self._due = _NEVER
        self._woke = threading.Event()

    def _start_timer(self) -> None:
        stopped, armed = self._stopped, self._armed
        thread = threading.Thread(target=_timer, args=(weakref.ref(self), armed, stopped, self._woke, self.max_age_s),
                                  name="driftwatch-call-batch", daemon=True)
        self._timer = thread
        weakref.finalize(self, _stop, armed, stopped)  # a dropped runtime's thread ends
        thread.start()


def _stop(armed: threading.Event, stopped: threading.Event) -> None:
    stopped.set()
    armed.set()


def _timer(ref: weakref.ref[CallBatch], armed: threading.Event, stopped: threading.Event, woke: threading.Event,
           max_age_s: float) -> None:
    """Process a batch ``max_age_s`` after its first call when no call filled it (holds the batch only weakly).
    While calls keep coming it wakes once per ``max_age_s`` at most; with none kept it sleeps until one is. Before
    each sleep it notes when it wakes (``_due``) and sets ``woke``: the call that hands it the lock goes on."""
    while not stopped.is_set():
        batch = ref()
        if batch is None:
            return
        if not batch._pending:
            batch._due = _NEVER
            batch = None
            armed.clear()  # then look again: a call added before the clear is seen, one after it sets it
            batch = ref()
            if batch is None:
                return
            if not batch._pending:
                batch = None
                woke.set()
                armed.wait()
                continue
        due = batch._oldest + max_age_s
        if due <= time.monotonic():
            batch.flush()
            batch = None
            continue
        batch._due = due
        batch = None
        woke.set()
        stopped.wait(due - time.monotonic())
    woke.set()


#: every CallBatch alive, for the fork handler
_LIVE: weakref.WeakSet[CallBatch] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for batch in list(_LIVE):
        batch._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
