"""The ledger a watched process writes through: opened lazily, never raising on a write, keeping what it
could not write.

:class:`BufferedLedger` wraps a backend (:class:`~driftwatch.ledger.Ledger`). Every write goes through one
queue (:meth:`BufferedLedger.write`): the kept writes first, in order, then the new one. When the backend
cannot be opened or a write fails, the write is kept (at most :data:`MAX_PENDING`; a full queue drops the
oldest, counted) and tried again at the next write, from :meth:`BufferedLedger.flush_if_due` (the runtime
calls it on every watched call; it acts at most every :data:`RETRY_S` seconds) and at close. A backend that
failed to open is not tried again for :data:`RETRY_S` seconds, so a dead ledger costs a hook nothing.
Failures go to the ``on_error(stage, exc)`` callback (stage ``"ledger"``), never to the caller.

Reads go straight to the backend (opened now if need be) and raise :class:`~driftwatch.ledger.LedgerError`
when it is unavailable; :meth:`BufferedLedger.head_or_none` and :meth:`BufferedLedger.state_or_none` are the
hot path's reads, which answer ``None`` instead.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from driftwatch.ledger import Ledger, LedgerError, open_ledger, parse_location

if TYPE_CHECKING:
    from driftwatch.alarm import Alarm
    from driftwatch.change import Change
    from driftwatch.guardrails.records import GuardAction, GuardUpdate, StateRow
    from driftwatch.observation import OptimizerRun
    from driftwatch.revision import Revision
    from driftwatch.windows import CallWindow

__all__ = ["MAX_PENDING", "RETRY_S", "BufferedLedger", "ErrorCallback", "LedgerOp"]

#: seconds between attempts to open a backend that failed to open, and between retries of kept writes
RETRY_S = 5.0
#: writes kept while the backend is unavailable; beyond that the oldest is dropped (and counted)
MAX_PENDING = 10_000

#: one write: a function of the backend
LedgerOp = Callable[[Ledger], None]
#: where failures go: ``on_error(stage, exc)``
ErrorCallback = Callable[[str, BaseException], None]


class BufferedLedger(Ledger):
    """A :class:`~driftwatch.ledger.Ledger` over a backend that may be slow to come: writes never raise.

    ``backend`` is a ledger location (opened on first use with :func:`~driftwatch.ledger.open_ledger`) or
    an open :class:`~driftwatch.ledger.Ledger`. ``retry_s`` and ``max_pending`` default to :data:`RETRY_S`
    and :data:`MAX_PENDING` (read when the ledger is made).
    """

    def __init__(self, backend: str | Ledger | None, *, on_error: ErrorCallback,
                 retry_s: float | None = None, max_pending: int | None = None) -> None:
        if isinstance(backend, Ledger):
            self._backend: Ledger | None = backend
            self._where = backend.location
        else:
            self._backend = None
            self._where = backend or ""
        self.on_error = on_error
        self.retry_s = RETRY_S if retry_s is None else retry_s
        self._failed_at = float("-inf")  # monotonic time the backend last failed to open
        self._next_retry = 0.0  # monotonic time of the next retry of kept writes from a watched call
        self._pending: deque[LedgerOp] = deque(maxlen=MAX_PENDING if max_pending is None else max_pending)
        self._lock = threading.RLock()

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
        """The backend, opened now if need be (``LedgerError`` when it cannot be)."""
        led = self._backend
        if led is not None:
            return led
        with self._lock:
            if self._backend is None:
                self._backend = open_ledger(self._where)
            return self._backend

    def available(self) -> Ledger | None:
        """The backend, or ``None`` while it cannot be opened (one attempt per ``retry_s``, failures counted)."""
        if self._backend is not None:
            return self._backend
        if time.monotonic() - self._failed_at < self.retry_s:
            return None
        try:
            return self.open()
        except Exception as exc:  # noqa: BLE001  # counted; writes are kept meanwhile
            self._failed_at = time.monotonic()
            self.on_error("ledger", exc)
            return None

    # -- the write queue --------------------------------------------------------------------------
    def write(self, op: LedgerOp) -> bool:
        """Run a write now, after the kept ones; keep it when the backend is unavailable or the write fails.
        ``True`` when it was written now."""
        led = self.available()
        if led is None:
            self._keep(op)
            return False
        return self._flush(led, op)

    def _flush(self, led: Ledger, op: LedgerOp | None = None) -> bool:
        """The kept writes in order, then ``op``; on failure ``op`` is kept too (counted)."""
        with self._lock:
            try:
                while self._pending:
                    self._pending[0](led)
                    self._pending.popleft()
                if op is not None:
                    op(led)
                return True
            except Exception as exc:  # noqa: BLE001  # counted; kept for the next try
                if op is not None:
                    self._keep(op)
                self.on_error("ledger", exc)
                return False

    def _keep(self, op: LedgerOp) -> None:
        if len(self._pending) == self._pending.maxlen:  # the oldest is dropped: say so, never silently
            self.on_error("ledger", LedgerError(f"{self._pending.maxlen} ledger writes pending: the oldest is dropped"))
        self._pending.append(op)

    @property
    def pending(self) -> int:
        """Writes kept for a later try."""
        return len(self._pending)

    def flush_pending(self, *, retry_now: bool = False) -> bool:
        """Try the kept writes now; ``True`` when none is left. ``retry_now``: even if the backend failed to
        open less than ``retry_s`` ago (close, exit)."""
        if not self._pending:
            return True
        if retry_now:
            self._failed_at = float("-inf")
        self._next_retry = time.monotonic() + self.retry_s
        led = self.available()
        return led is not None and self._flush(led)

    def flush_if_due(self) -> None:
        """From the call path: retry the kept writes when there are any and ``retry_s`` has passed (an idle
        agent's kept writes go out too, not only at its next change). Costs a length check otherwise."""
        if self._pending and time.monotonic() >= self._next_retry:
            self.flush_pending()

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
        """Store a closed call window now, or drop it: report aggregates never queue behind changes."""
        led = self.available()
        if led is None:
            return
        try:
            led.record_window(window)
        except Exception as exc:  # noqa: BLE001  # counted; the window is dropped
            self.on_error("ledger", exc)

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
        """The component's head, or ``None`` when unknown or the backend is unavailable (counted)."""
        led = self.available()
        if led is None:
            return None
        try:
            return led.head(agent, component)
        except Exception as exc:  # noqa: BLE001  # treated as never seen
            self.on_error("ledger", exc)
            return None

    def state_or_none(self, revision_id: str) -> Any:
        """A stored revision's state, or ``None`` when unknown or the backend is unavailable (counted)."""
        led = self.available()
        if led is None:
            return None
        try:
            rev = led.revision(revision_id)
        except Exception as exc:  # noqa: BLE001  # diffed against nothing
            self.on_error("ledger", exc)
            return None
        return None if rev is None else rev.state

    # -- reads (the Ledger interface): straight to the backend --------------------------------------
    def head(self, agent: str, component: str) -> str | None:
        return self.open().head(agent, component)

    def revision(self, revision_id: str) -> Revision | None:
        return self.open().revision(revision_id)

    def change(self, change_id: str) -> Change:
        return self.open().change(change_id)

    def changes(self, *, agent: str | None = None, component: str | None = None, since: float | None = None,
                until: float | None = None, limit: int | None = None, baselines: bool = False,
                status: str | None = None) -> list[Change]:
        return self.open().changes(agent=agent, component=component, since=since, until=until, limit=limit,
                                   baselines=baselines, status=status)

    def runs(self, *, agent: str | None = None, since: float | None = None,
             limit: int | None = None) -> list[OptimizerRun]:
        return self.open().runs(agent=agent, since=since, limit=limit)

    def run(self, run_id: str) -> OptimizerRun:
        return self.open().run(run_id)

    def alarm(self, alarm_id: str) -> Alarm:
        return self.open().alarm(alarm_id)

    def candidates(self, run_id: str) -> list[dict[str, Any]]:
        return self.open().candidates(run_id)

    def alarms(self, *, agent: str | None = None, since: float | None = None, limit: int | None = None) -> list[Alarm]:
        return self.open().alarms(agent=agent, since=since, limit=limit)

    def commands(self, *, after: int = 0, since: float | None = None) -> list[tuple[int, str, str, float]]:
        return self.open().commands(after=after, since=since)

    def command_note(self, command_id: int) -> str:
        return self.open().command_note(command_id)

    def guard_actions(self, *, agent: str | None = None, since: float | None = None,
                      limit: int | None = None) -> list[GuardAction]:
        return self.open().guard_actions(agent=agent, since=since, limit=limit)

    def guard_state(self, agent: str | None = None) -> list[StateRow]:
        return self.open().guard_state(agent)

    def windows(self, *, agent: str | None = None, since: float | None = None,
                until: float | None = None) -> list[CallWindow]:
        return self.open().windows(agent=agent, since=since, until=until)

    def record_evidence(self, agent: str, anchor: str, replica: str, ts: float, payload: Mapping[str, Any]) -> None:
        self.open().record_evidence(agent, anchor, replica, ts, payload)

    def evidence(self, agent: str, anchor: str) -> dict[str, dict[str, Any]]:
        return self.open().evidence(agent, anchor)

    def close(self) -> None:
        """Try the kept writes once more, then close the backend (if it was ever opened)."""
        self.flush_pending(retry_now=True)
        led = self._backend
        if led is not None:
            try:
                led.close()
            except Exception as exc:  # noqa: BLE001  # closing must not raise into the host
                self.on_error("ledger", exc)
