"""The ledger a watched process writes through: the host never waits on it for more than a small bound.

:class:`BufferedLedger` wraps a backend (:class:`~driftwatch.ledger.Ledger`, opened lazily). All of the
backend's work for a watched process — opening it, every write, the hot path's reads — runs on one
background *writer* thread, never on the host's threads:

- **Writes** go into one FIFO queue that the writer empties in order, one at a time. The host thread that
  made a write waits for it (so a change is durable before its hook returns whenever the ledger answers in
  time), but at most for what is left of its call's wait budget (:data:`WAIT_S`, 50 ms, for all the ledger
  work of one call into driftwatch: :meth:`BufferedLedger.host_call`). When the budget runs out, or the
  ledger failed, the write stays *kept* in the queue and the call returns; the writer retries it (every
  ``retry_s``) until it is written, and every later write queues behind it, so nothing overtakes a kept
  write. While writes are kept (the ledger is *behind*), host threads do not wait at all. Each write the host
  did not see written is counted under stage ``ledger_wait``; each failure under stage ``ledger``.
- **The queue is bounded** (``max_pending``, default :data:`MAX_PENDING`): when it is full the oldest kept
  write is dropped, counted and reported, never silently.
- **Hot-path reads** (:meth:`BufferedLedger.read_now`: the component head and state a tracker reads when it
  first sees a component, the drift engine's poll of operator commands) run on the writer too, after the
  writes queued before them, within the same budget; when the ledger is behind or does not answer in time
  they answer "unknown" at once (counted under ``ledger_wait``).
- **Call windows** (report aggregates, :meth:`BufferedLedger.record_window`) wait in a list and are handed to
  the writer together, in one transaction, at most once per :data:`WINDOWS_EVERY_S` (the window that closes
  after that hands them over), and at once by :meth:`~BufferedLedger.flush`, :meth:`~BufferedLedger.close` and
  every read. The call that hands them over waits for the writer, at most :data:`WINDOWS_HANDOVER_S` (a
  timeout is not an error: the writer goes on). That wait is what lets the writer run at all beside a host that
  keeps the interpreter lock busy: a thread woken while the host runs waits for the lock for as long as the host
  runs when the host releases it often and briefly, and the host pays a wake-up at every release (see
  :mod:`driftwatch.call_batch`). At most ``max_pending`` windows wait (the oldest is dropped, counted); none is
  kept while the ledger is behind.
- **Explicit reads** (the :class:`~driftwatch.ledger.Ledger` read methods: tests, the CLI, ``restore``) first
  wait (up to ``drain_s``) until the writes queued before them are written, then read on the caller's thread.
- **Exit and close**: :meth:`BufferedLedger.close` wakes the writer for one more try and waits up to
  ``drain_s`` (:data:`DRAIN_S`) for the queue to empty; it returns how many writes were still not written
  (the runtime logs that number at exit: those writes are lost). Call windows waiting when no writer thread can
  start (at exit on Python 3.12+, once the writer went idle) are written by ``close()`` on its own thread.
- **Fork**: the writer thread does not survive ``fork()``. In the child (``os.register_at_fork``) the
  ledger starts afresh: a new queue (the parent's kept writes stay the parent's to write), a new writer on
  first use, and a backend of its own (the parent's connections are left untouched).
- **A writer that dies** (a bug) is replaced at the next write, counted. An idle writer's thread ends after
  :data:`IDLE_EXIT_S`; the next op starts another.

What a SIGKILL can lose: the writes still in the queue (never the ones the host saw written); since the
writer writes in order, the ledger then holds a prefix of the process's writes.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from driftwatch.ledger import Ledger, LedgerError, open_ledger, parse_location

if TYPE_CHECKING:
    from driftwatch.alarm import Alarm
    from driftwatch.change import Change
    from driftwatch.guardrails.records import GuardAction, GuardUpdate, StateRow
    from driftwatch.observation import OptimizerRun
    from driftwatch.revision import Revision
    from driftwatch.windows import CallWindow

__all__ = [
    "DRAIN_S",
    "IDLE_EXIT_S",
    "LOCK_WAIT_S",
    "MAX_PENDING",
    "RETRY_S",
    "WAIT_S",
    "WINDOWS_EVERY_S",
    "WINDOWS_HANDOVER_S",
    "BufferedLedger",
    "ErrorCallback",
    "HotPathReads",
    "LedgerOp",
    "LedgerTimeoutError",
]

#: seconds one call into driftwatch may wait in total for the ledger (setting ``ledger_wait_s``)
WAIT_S = 0.05
#: writes kept while the ledger is slow or unavailable; beyond that the oldest is dropped (setting ``ledger_queue``)
MAX_PENDING = 10_000
#: seconds between the writer's attempts while the ledger fails (a failed open included)
RETRY_S = 1.0
#: seconds :meth:`BufferedLedger.close` (and the process's exit) waits for kept writes (setting ``ledger_drain_s``)
DRAIN_S = 5.0
#: seconds one statement of the writer waits for a lock someone else holds before the attempt fails and is
#: retried (SQLite busy timeout, PostgreSQL lock_timeout): short, so close() and explicit reads are not held up
LOCK_WAIT_S = 2.0

#: seconds between two hand-overs of the closed call windows to the writer while calls come
WINDOWS_EVERY_S = 1.0
#: seconds the call that hands the windows over waits, at most, for the writer to write them (at most 0.5% of a
#: busy host's time at one hand-over a second)
WINDOWS_HANDOVER_S = 0.005

_MIN_RETRY_S = 0.01  # never a busy loop of failing attempts
#: seconds an idle writer waits for work before its thread ends (the next op starts another)
IDLE_EXIT_S = 30.0

#: one write: a function of the backend
LedgerOp = Callable[[Ledger], None]
#: where failures go: ``on_error(stage, exc)``
ErrorCallback = Callable[[str, BaseException], None]

_WRITE, _READ, _WINDOW = 0, 1, 2
_UNSET: Any = object()


def _nothing(led: Ledger) -> None:
    """An op that only needs the backend open."""


class LedgerTimeoutError(LedgerError):
    """The ledger did not answer within a call's wait budget: the write is kept, or the read is unknown."""


class _Budgets(threading.local):
    """Per thread: how deep in host calls it is, and what is left of the outermost one's wait for the ledger
    (``None``: nothing spent yet). A host call's blocks are synchronous, so per thread is per call."""

    depth = 0
    left: float | None = None


_LOCAL = _Budgets()


class _HostCall:
    """``with ledger.host_call():`` — the ledger work inside shares one wait budget (the outermost one wins).
    Stateless (the state is per thread): one shared instance, a few hundred nanoseconds a call."""

    __slots__ = ()

    def __enter__(self) -> None:
        local = _LOCAL
        if not local.depth:
            local.left = None
        local.depth += 1

    def __exit__(self, *exc: object) -> None:
        _LOCAL.depth -= 1


_HOST_CALL = _HostCall()


class _Op:
    """One unit of the writer's work: ``fn(backend)``; ``done`` is set once it is written, read, dropped, or
    failed its first attempt (the host stops waiting: a failed write stays queued for the next attempt)."""

    __slots__ = ("cancelled", "done", "error", "fn", "kind", "result", "seq", "written")

    def __init__(self, fn: Callable[[Ledger], Any], kind: int) -> None:
        self.fn = fn
        self.kind = kind
        self.seq = 0
        self.done = threading.Event()
        self.written = False
        self.cancelled = False
        self.result: Any = None
        self.error: BaseException | None = None


class BufferedLedger(Ledger):
    """A :class:`~driftwatch.ledger.Ledger` over a backend that may be slow, locked or gone: writes never raise
    and never hold the host up for more than the wait budget.

    ``backend`` is a ledger location (opened on first use by the writer with
    :func:`~driftwatch.ledger.open_ledger`) or an open :class:`~driftwatch.ledger.Ledger`. ``wait_s``,
    ``max_pending``, ``retry_s`` and ``drain_s`` default to :data:`WAIT_S`, :data:`MAX_PENDING`,
    :data:`RETRY_S` and :data:`DRAIN_S` (read when the ledger is made); ``file_mode`` is the mode of a new
    SQLite file.
    """

    def __init__(self, backend: str | Ledger | None, *, on_error: ErrorCallback, wait_s: float | None = None,
                 max_pending: int | None = None, retry_s: float | None = None, drain_s: float | None = None,
                 file_mode: int | None = None) -> None:
        self._owns_backend = not isinstance(backend, Ledger)
        if isinstance(backend, Ledger):
            self._backend: Ledger | None = backend
            self._where = backend.location
        else:
            self._backend = None
            self._where = backend or ""
        self.on_error = on_error
        self.wait_s = WAIT_S if wait_s is None else wait_s
        self.max_pending = MAX_PENDING if max_pending is None else max_pending
        self.retry_s = RETRY_S if retry_s is None else retry_s
        self.drain_s = DRAIN_S if drain_s is None else drain_s
        self.file_mode = file_mode
        self._hot = HotPathReads(self)
        self._open_lock = threading.Lock()
        self._inherited: list[Ledger] = []  # a forked child's copies of the parent's backends: never touched
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        """The writer's state, fresh (construction, and in a forked child)."""
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Op] = deque()
        self._writes = 0  # write ops in the queue
        self._seq = 0  # ops queued so far (each op's number: the queue is in that order)
        self._thread: threading.Thread | None = None
        self._inflight: _Op | None = None
        self._behind = False  # writes are kept: host threads do not wait
        self._behind_seq = 0  # ... until the writer is done with the op of this number (queued when it fell behind)
        self._not_before = 0.0  # monotonic time of the writer's next attempt after a failure
        self._failed_at = float("-inf")  # monotonic time of the writer's last failed attempt
        self._open_failed_at = float("-inf")
        self._closing = False
        self._abandoned = False  # closed without keep_trying: what fails now is dropped, not kept
        self._windows: list[CallWindow] = []  # closed call windows the writer has not taken yet
        self._windows_op: _Op | None = None  # the queued op that takes them (None: none queued, or taken)
        self._windows_due = 0.0  # time.monotonic() from which the next closed window hands them over

    # -- the backend ------------------------------------------------------------------------------
    @property
    def location(self) -> str:  # type: ignore[override]  # a read-only view of the backend's
        if self._backend is not None:
            return self._backend.location
        try:
            return parse_location(self._where).display
        except LedgerError:
            return self._where

    def open(self) -> Ledger:
        """The backend, opened now on the caller's thread if need be (``LedgerError`` when it cannot be)."""
        led = self._backend
        if led is not None:
            return led
        with self._open_lock:
            if self._backend is None:
                self._backend = open_ledger(self._where, file_mode=self.file_mode, lock_wait_s=LOCK_WAIT_S)
            return self._backend

    def start(self) -> None:
        """Have the writer open the backend now, in the background (:func:`driftwatch.configure` calls it), so
        that the first host call finds it open instead of waiting for a connection or a migration. The driver
        is imported here, on the caller's thread, at configuration time."""
        if self._owns_backend and self._backend is None:
            with contextlib.suppress(LedgerError, ImportError):
                backend = parse_location(self._where).backend
                importlib.import_module("psycopg" if backend == "postgresql" else "driftwatch.ledger.sqlite")
        self._submit(_Op(_nothing, _WINDOW))

    def available(self) -> Ledger | None:
        """What watched calls read the ledger through (the drift engine's and the guard's pollers): a
        :class:`HotPathReads` view whose every read is bounded by the call's wait; ``None`` while the ledger is
        behind (a poll then waits for the next one)."""
        return None if self._behind else cast(Ledger, self._hot)

    # -- the budget -------------------------------------------------------------------------------
    def host_call(self) -> _HostCall:
        """A context manager around one call into driftwatch from the host: the ledger work inside it waits at
        most ``wait_s`` in total (nested ones share the outermost budget)."""
        return _HOST_CALL

    def _wait(self, op: _Op, what: str) -> bool:
        """Wait for ``op`` within the current budget; ``True`` when it is done. On a timeout the ledger is
        behind (later calls do not wait) and the wait is counted."""
        local = _LOCAL
        shared = local.depth > 0
        if shared and local.left is None:
            local.left = self.wait_s
        left = min(local.left, self.wait_s) if shared else self.wait_s  # type: ignore[type-var]  # set above
        if left > 0:
            t0 = time.monotonic()
            done = op.done.wait(left)
            if shared:
                local.left -= time.monotonic() - t0  # type: ignore[operator]  # set above
            if done:
                return True
        with self._cond:
            if op.done.is_set():  # settled between the timeout and now
                return True
            self._behind, self._behind_seq = True, self._seq
            op.cancelled = op.kind == _READ
        self.on_error("ledger_wait", LedgerTimeoutError(
            f"ledger {self.location} did not answer within {left * 1000:.0f} ms: the {what} was left to the "
            "background writer (the host call went on)"))
        return False

    # -- the queue --------------------------------------------------------------------------------
    def _submit(self, op: _Op) -> bool:
        """Queue ``op`` for the writer (started or restarted if need be); ``False`` when it was not queued."""
        dropped = 0
        with self._cond:
            restarted = self._thread is not None and not self._thread.is_alive()
            if not self._writer_alive():
                return False
            if op.kind == _WRITE:
                self._abandoned = False  # written after close(): kept and retried like any write
                if self._writes >= self.max_pending:
                    dropped = self._drop_oldest()
                self._writes += 1
            self._seq += 1
            op.seq = self._seq
            self._queue.append(op)
            self._cond.notify_all()
        if restarted:
            self.on_error("ledger", LedgerError("the ledger writer thread had stopped: a new one took over its queue"))
        if dropped:
            self.on_error("ledger", LedgerError(
                f"{self.max_pending} ledger writes kept while {self.location} is behind: the oldest was dropped "
                "(raise DRIFTWATCH_LEDGER_QUEUE to keep more)"))
        return True

    def _drop_oldest(self) -> int:
        """Drop the oldest kept write that the writer is not working on (the lock is held)."""
        for i, queued in enumerate(self._queue):
            if queued.kind == _WRITE and queued is not self._inflight:
                del self._queue[i]
                self._writes -= 1
                queued.done.set()
                return 1
        return 0

    def _writer_alive(self) -> bool:
        """Start the writer if it is not running (the lock is held); ``False`` if no thread can be started."""
        t = self._thread
        if t is not None and t.is_alive():
            return True
        thread = threading.Thread(target=self._run, name="driftwatch-ledger-writer", daemon=True)
        self._thread = thread
        try:
            thread.start()
        except RuntimeError:  # the interpreter is shutting down: no new threads
            self._thread = None
            return False
        return True

    def write(self, op: LedgerOp) -> bool:
        """Queue a write behind the kept ones and wait for it within the call's budget; ``True`` when it was
        written before returning (``False``: kept for the writer, counted)."""
        item = _Op(op, _WRITE)
        if not self._submit(item):
            self.on_error("ledger", LedgerError(f"ledger {self.location}: no writer thread can start (the "
                                               "interpreter is exiting): a write was lost"))
            return False
        if self._behind:
            self.on_error("ledger_wait", LedgerTimeoutError(
                f"ledger {self.location} is behind: a write was kept for the background writer"))
            return False
        return self._wait(item, "write") and item.written

    def read_now(self, fn: Callable[[Ledger], Any], default: Any = None) -> Any:
        """A hot-path read: ``fn(backend)`` on the writer, after the writes queued before it, within the call's
        budget; ``default`` when the ledger is behind, fails or does not answer in time (counted)."""
        if self._behind:
            self.on_error("ledger_wait", LedgerTimeoutError(f"ledger {self.location} is behind: a read was skipped"))
            return default
        item = _Op(fn, _READ)
        if not self._submit(item) or not self._wait(item, "read"):
            return default
        return default if item.error is not None else item.result

    @property
    def pending(self) -> int:
        """Writes queued and not yet written."""
        return self._writes

    @property
    def behind(self) -> bool:
        """Writes are kept (the ledger failed or was slow): host calls do not wait for the ledger."""
        return self._behind

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write queued before this call is written, or ``timeout`` seconds (default
        ``drain_s``) passed; ``True`` when none of them is left (tests, and code that must know)."""
        return self._drain(self.drain_s if timeout is None else timeout, patient=True)

    def flush_pending(self, *, retry_now: bool = False) -> bool:
        """:meth:`flush` (up to ``drain_s``); ``retry_now``: wake the writer from its pause between attempts
        first. ``True`` when no write queued before the call is left."""
        return self._drain(self.drain_s, patient=True, retry_now=retry_now)

    def _drain(self, timeout: float, *, patient: bool = False, retry_now: bool = False) -> bool:
        """Wait for the writes queued so far; unless ``patient``, stop as soon as an attempt of the writer fails
        (the ledger is unavailable: an explicit read or an exit should not wait on). ``retry_now``: wake the
        writer from its pause between attempts first."""
        self._hand_windows()
        start = time.monotonic()
        with self._cond:
            target = self._seq

            def written() -> bool:
                return not self._queue or self._queue[0].seq > target

            if written():
                return True
            if retry_now:
                self._not_before = 0.0
                self._writer_alive()
                self._cond.notify_all()
            self._cond.wait_for(lambda: written() or (not patient and self._failed_at > start), timeout)
            return written()

    # -- the writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                if not self._step(me):
                    return
            except Exception as exc:  # noqa: BLE001  # a bug in the writer: counted, then carry on
                self.on_error("ledger", exc)
                with self._cond:
                    self._inflight = None
                    self._failed_at = time.monotonic()
                    self._not_before = self._failed_at + max(self.retry_s, _MIN_RETRY_S)
                    self._cond.notify_all()

    def _step(self, me: threading.Thread) -> bool:
        """Take the next op, run it, settle it; ``False`` when the writer should stop."""
        op = self._next(me)
        if op is None:
            return False
        ok = self._attempt(op)
        with self._cond:
            self._inflight = None
            if ok or op.kind != _WRITE or self._abandoned:
                if self._queue and self._queue[0] is op:
                    self._queue.popleft()
                    if op.kind == _WRITE:
                        self._writes -= 1
                op.written = ok and op.kind == _WRITE
                if ok and op.seq >= self._behind_seq:
                    self._behind = False  # caught up with what was kept when it fell behind
            else:  # a write failed: it stays first; the host stops waiting for it
                self._behind, self._behind_seq = True, self._seq
                self._failed_at = time.monotonic()
                self._not_before = self._failed_at + max(self.retry_s, _MIN_RETRY_S)
            op.done.set()
            self._cond.notify_all()
        return True

    def _next(self, me: threading.Thread) -> _Op | None:
        """Wait for the next op that is due; ``None`` when the writer should stop (replaced after a fork, or
        closing with nothing left: then it closes the backend)."""
        with self._cond:
            while True:
                if self._thread is not me:
                    return None
                while self._queue and self._queue[0].cancelled:
                    self._queue.popleft()
                now = time.monotonic()
                if self._queue and now >= self._not_before:
                    self._inflight = self._queue[0]
                    return self._inflight
                if self._queue:
                    self._cond.wait(self._not_before - now)
                elif self._closing:
                    self._behind = False
                    self._thread = None
                    led, self._backend = self._backend, None
                    break
                else:
                    self._behind = False
                    if not self._cond.wait(IDLE_EXIT_S) and not self._queue and not self._closing:
                        self._thread = None  # idle: the next op starts a new writer (the backend stays open)
                        return None
        self._close(led)
        with self._cond:
            self._cond.notify_all()
        return None

    def _attempt(self, op: _Op) -> bool:
        """Run ``op`` on the backend (opened now if need be); ``True`` when it succeeded. Failures are counted."""
        led = self._backend
        if led is None:
            if time.monotonic() - self._open_failed_at < self.retry_s and op.kind != _WRITE:
                op.error = LedgerError(f"ledger {self.location} is unavailable")
                return False
            try:
                led = self.open()
            except Exception as exc:  # noqa: BLE001  # counted; the write is kept
                self._open_failed_at = time.monotonic()
                op.error = exc
                self.on_error("ledger", exc)
                return False
        try:
            op.result = op.fn(led)
        except Exception as exc:  # noqa: BLE001  # counted; a write is kept for the next attempt
            op.error = exc
            self.on_error("ledger", exc)
            return False
        op.error = None
        return True

    def _close(self, led: Ledger | None) -> None:
        """Close a backend (outside the lock: closing may wait on the network)."""
        if led is not None:
            try:
                led.close()
            except Exception as exc:  # noqa: BLE001  # closing must not raise into the host
                self.on_error("ledger", exc)

    def _forked(self) -> None:
        """In a forked child: the parent's writer, queue and connections are not ours."""
        if self._owns_backend and self._backend is not None:
            self._inherited.append(self._backend)  # kept referenced: never closed from the child
            self._backend = None  # the child opens its own (a backend passed in handles fork itself)
        self._open_lock = threading.Lock()
        self._reset()

    # -- writes (the Ledger interface): queued, never raising ---------------------------------------
    def record_change(self, change: Change) -> None:
        self.write(lambda led: led.record_change(change))

    def record_revisions(self, revisions: Mapping[str, Any]) -> None:
        snapshot = dict(revisions)
        self.write(lambda led: led.record_revisions(snapshot))

    def record_run(self, run: OptimizerRun) -> None:
        snapshot = replace(run, attributes=dict(run.attributes))  # the caller keeps updating its run
        self.write(lambda led: led.record_run(snapshot))

    def record_candidate(self, run_id: str, index: int, score: float | None,
                         revision_id: str | None = None, attributes: dict[str, Any] | None = None) -> None:
        snapshot = dict(attributes or {})
        self.write(lambda led: led.record_candidate(run_id, index, score, revision_id, snapshot))

    def record_alarm(self, alarm: Alarm) -> None:
        self.write(lambda led: led.record_alarm(alarm))

    def record_window(self, window: CallWindow) -> None:
        """Keep a closed call window for the writer. The windows waiting are handed over together (one op, one
        transaction) by the first window closed :data:`WINDOWS_EVERY_S` after the last hand-over, which waits for
        the writer at most :data:`WINDOWS_HANDOVER_S`; :meth:`flush`, :meth:`close` and reads hand them over at
        once. At most ``max_pending`` wait (the oldest is dropped, counted). Dropped while the ledger is behind:
        report aggregates never queue behind kept changes."""
        if self._behind:
            return
        now = time.monotonic()
        with self._cond:
            self._windows.append(window)
            dropped = len(self._windows) > self.max_pending
            if dropped:
                del self._windows[0]
            due = now >= self._windows_due
            if due:
                self._windows_due = now + WINDOWS_EVERY_S
        if dropped:
            self.on_error("ledger", LedgerError(
                f"{self.max_pending} call windows waiting for {self.location}: the oldest was dropped"))
        if due:
            self._hand_windows(WINDOWS_HANDOVER_S)

    def _hand_windows(self, wait: float = 0.0) -> bool:
        """Queue the op that writes the windows waiting (unless one is queued already) and wait up to ``wait``
        seconds for it to be done; ``False`` when windows wait and no writer thread can start (at exit)."""
        with self._cond:
            op = self._windows_op
            new = op is None and bool(self._windows)
            if new:
                op = self._windows_op = _Op(self._write_windows, _WINDOW)
        if new and not self._submit(op):  # type: ignore[arg-type]  # set above
            with self._cond:
                self._windows_op = None  # no writer now: the windows wait for the next one
            return False
        if op is not None and wait > 0:
            op.done.wait(wait)
        return True

    def _write_windows(self, led: Ledger) -> None:
        """The writer's op: every window waiting now, in one transaction (one attempt)."""
        with self._cond:
            batch, self._windows = self._windows, []
            self._windows_op = None
        if batch:
            led.record_windows(batch)

    def record_command(self, agent: str, action: str, note: str = "") -> int:
        return self.open().record_command(agent, action, note)

    def record_guard_action(self, action: GuardAction) -> None:
        self.write(lambda led: led.record_guard_action(action))

    def record_guard_state(self, put: Iterable[StateRow] = (),
                           delete: Iterable[tuple[str, str, str | None, str | None]] = ()) -> None:
        rows, gone = list(put), list(delete)
        self.write(lambda led: led.record_guard_state(rows, gone))

    def record_guard_update(self, update: GuardUpdate) -> int:
        return self.open().record_guard_update(update)

    # -- the hot path's reads: None when unavailable ------------------------------------------------
    def head_or_none(self, agent: str, component: str) -> str | None:
        """The component's head, or ``None`` when unknown or the ledger does not answer in time (counted)."""
        return self.read_now(lambda led: led.head(agent, component))

    def state_or_none(self, revision_id: str) -> Any:
        """A stored revision's state, or ``None`` when unknown or the ledger does not answer in time (counted)."""
        rev = self.read_now(lambda led: led.revision(revision_id))
        return None if rev is None else rev.state

    def record_evidence(self, agent: str, anchor: str, replica: str, ts: float, payload: Mapping[str, Any]) -> None:
        """Hand a replica's drift evidence to the writer without waiting (one attempt, in its turn: it is replaced
        at the next poll anyway); dropped while the ledger is behind."""
        if self._behind:
            return
        snapshot = dict(payload)
        self._submit(_Op(lambda led: led.record_evidence(agent, anchor, replica, ts, snapshot), _WINDOW))

    def read_bounded(self, fn: Callable[[Ledger], Any], what: str = "read") -> Any:
        """:meth:`read_now` that raises instead of answering a default: :class:`LedgerTimeoutError` when the
        ledger is behind or does not answer within the call's wait (already counted, stage ``ledger_wait``: a
        caller does not count it again), the read's own error when it failed."""
        if self._behind:
            self.on_error("ledger_wait", LedgerTimeoutError(f"ledger {self.location} is behind: a read was skipped"))
            raise LedgerTimeoutError(f"ledger {self.location} is behind: {what} was skipped")
        item = _Op(fn, _READ)
        if not self._submit(item):
            raise LedgerError(f"ledger {self.location}: no writer thread can start (the interpreter is exiting)")
        if not self._wait(item, "read"):
            raise LedgerTimeoutError(f"ledger {self.location} did not answer {what} within the call's wait")
        if item.error is not None:
            raise item.error
        return item.result

    # -- reads (the Ledger interface): after the writes queued before them ---------------------------
    def _reader(self) -> Ledger:
        self._drain(self.drain_s)  # read after the writes queued before, unless the ledger is failing
        return self.open()

    def head(self, agent: str, component: str) -> str | None:
        return self._reader().head(agent, component)

    def revision(self, revision_id: str) -> Revision | None:
        return self._reader().revision(revision_id)

    def change(self, change_id: str) -> Change:
        return self._reader().change(change_id)

    def changes(self, *, agent: str | None = None, component: str | None = None, since: float | None = None,
                until: float | None = None, limit: int | None = None, baselines: bool = False,
                status: str | None = None) -> list[Change]:
        return self._reader().changes(agent=agent, component=component, since=since, until=until, limit=limit,
                                      baselines=baselines, status=status)

    def runs(self, *, agent: str | None = None, since: float | None = None,
             limit: int | None = None) -> list[OptimizerRun]:
        return self._reader().runs(agent=agent, since=since, limit=limit)

    def run(self, run_id: str) -> OptimizerRun:
        return self._reader().run(run_id)

    def alarm(self, alarm_id: str) -> Alarm:
        return self._reader().alarm(alarm_id)

    def candidates(self, run_id: str) -> list[dict[str, Any]]:
        return self._reader().candidates(run_id)

    def alarms(self, *, agent: str | None = None, since: float | None = None, limit: int | None = None) -> list[Alarm]:
        return self._reader().alarms(agent=agent, since=since, limit=limit)

    def commands(self, *, after: int = 0, since: float | None = None) -> list[tuple[int, str, str, float]]:
        return self._reader().commands(after=after, since=since)

    def evidence(self, agent: str, anchor: str) -> dict[str, dict[str, Any]]:
        return self._reader().evidence(agent, anchor)

    def command_note(self, command_id: int) -> str:
        return self._reader().command_note(command_id)

    def guard_actions(self, *, agent: str | None = None, since: float | None = None,
                      limit: int | None = None) -> list[GuardAction]:
        return self._reader().guard_actions(agent=agent, since=since, limit=limit)

    def guard_state(self, agent: str | None = None) -> list[StateRow]:
        return self._reader().guard_state(agent)

    def windows(self, *, agent: str | None = None, since: float | None = None,
                until: float | None = None) -> list[CallWindow]:
        return self._reader().windows(agent=agent, since=since, until=until)

    def close(self, timeout: float | None = None, *, keep_trying: bool = False) -> int:
        """Wake the writer for one more try, wait up to ``timeout`` seconds (default ``drain_s``) for the kept
        writes, then close the backend; returns how many writes were not written. Those are dropped (the writer
        stops), unless ``keep_trying``: then they stay queued, the writer keeps trying while the process lives and
        closes the backend once the queue is empty (:func:`driftwatch.configure` closes a replaced runtime so)."""
        timeout = self.drain_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not self._hand_windows():  # no writer thread can start (Python 3.12+ at exit): written here
            try:
                self._write_windows(self.open())
            except Exception as exc:  # noqa: BLE001  # counted; closing must not raise into the host
                self.on_error("ledger", exc)
        with self._cond:
            self._closing = True
            thread = self._thread
            if not self._queue and (thread is None or not thread.is_alive()):
                self._thread = None
                led, self._backend = self._backend, None
            else:
                led = _UNSET
                self._cond.notify_all()
        if led is not _UNSET:
            self._close(led)
            return 0
        self._drain(timeout, retry_now=True)
        with self._cond:
            left, thread = self._writes, self._thread or thread  # the writer clears _thread as it stops
            if left and not keep_trying:  # give up: the op in flight is the writer's last
                self._abandoned = True
                for op in self._queue:
                    if op is not self._inflight:
                        op.done.set()
                self._queue = deque(op for op in self._queue if op is self._inflight)
                self._writes = sum(op.kind == _WRITE for op in self._queue)
                self._not_before = 0.0
                self._cond.notify_all()
        if (keep_trying and left) or thread is None or thread is threading.current_thread():
            return left
        thread.join(max(0.0, deadline - time.monotonic()))  # the writer closes the backend and stops
        return left


class HotPathReads:
    """The ledger as watched calls read it (:meth:`BufferedLedger.available`: the drift engine's and the guard's
    pollers). Every read method of the :class:`~driftwatch.ledger.Ledger` interface (``commands``,
    ``guard_state``, ``command_note``, ``evidence``, ``head`` …, and any a later feature adds) runs on the writer,
    after the writes queued before it, within the call's wait budget, and raises :class:`LedgerTimeoutError`
    when the ledger is behind or does not answer in time (a poller counts it and tries again at its next poll).
    ``record_*`` are the :class:`BufferedLedger`'s own (queued) writes."""

    __slots__ = ("_buffered",)

    def __init__(self, buffered: BufferedLedger) -> None:
        self._buffered = buffered

    @property
    def location(self) -> str:
        return self._buffered.location

    def __getattr__(self, name: str) -> Any:
        getattr(Ledger, name)  # AttributeError for a name the interface does not have
        if name.startswith("record_"):
            return getattr(self._buffered, name)

        def bounded(*args: Any, **kwargs: Any) -> Any:
            return self._buffered.read_bounded(lambda led: getattr(led, name)(*args, **kwargs), f"{name}()")

        return bounded


#: every BufferedLedger alive, for the fork handler
_LIVE: weakref.WeakSet[BufferedLedger] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for led in list(_LIVE):
        led._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
