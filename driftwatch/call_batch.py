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
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable

from driftwatch.observation import Call

__all__ = ["CallBatch"]


class CallBatch:
    """Calls kept for ``process`` (a list of calls, in order), at most ``size`` of them and ``max_age_s`` old."""

    __slots__ = ("__weakref__", "_armed", "_lock", "_oldest", "_pending", "_process", "_processing", "_stopped",
                 "_timer", "max_age_s", "size")

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
        _LIVE.add(self)

    def add(self, call: Call, now: float) -> None:
        """Keep ``call`` (``now``: ``time.monotonic()``); process the batch when it is full or old."""
        with self._lock:
            pending = self._pending
            pending.append(call)
            if len(pending) == 1:
                self._oldest = now
                if not self._armed.is_set():  # the timer thread sleeps until a batch starts
                    if self._timer is None:
                        self._start_timer()
                    self._armed.set()
                if self.size > 1:
                    return
            elif len(pending) < self.size and now - self._oldest < self.max_age_s:
                return
        self.flush()

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

    def _start_timer(self) -> None:
        stopped, armed = self._stopped, self._armed
        thread = threading.Thread(target=_timer, args=(weakref.ref(self), armed, stopped, self.max_age_s),
                                  name="driftwatch-call-batch", daemon=True)
        self._timer = thread
        weakref.finalize(self, _stop, armed, stopped)  # a dropped runtime's thread ends
        thread.start()


def _stop(armed: threading.Event, stopped: threading.Event) -> None:
    stopped.set()
    armed.set()


def _timer(ref: weakref.ref[CallBatch], armed: threading.Event, stopped: threading.Event, max_age_s: float) -> None:
    """Process a batch ``max_age_s`` after its first call when no call filled it (holds the batch only weakly).
    While calls keep coming it wakes once per ``max_age_s`` at most; with none kept it sleeps until one is."""
    while not stopped.is_set():
        batch = ref()
        if batch is None:
            return
        if not batch._pending:
            batch = None
            armed.clear()  # then look again: a call added before the clear is seen, one after it sets it
            batch = ref()
            if batch is None:
                return
            if not batch._pending:
                batch = None
                armed.wait()
                continue
        delay = batch._oldest + max_age_s - time.monotonic()
        if delay <= 0:
            batch.flush()
            batch = None
            continue
        batch = None
        stopped.wait(delay)


#: every CallBatch alive, for the fork handler
_LIVE: weakref.WeakSet[CallBatch] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for batch in list(_LIVE):
        batch._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
