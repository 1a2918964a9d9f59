"""Call windows: per-agent aggregates of watched calls, kept in the ledger for reports.

The ledger records *changes*; to plot how behaviour moved around each change without a Prometheus
server, the runtime also sums the calls of each agent into short windows (at most
:data:`MAX_CALLS` calls or :data:`MAX_AGE_S` seconds, and never across a change: a change closes
the agent's open window) and writes each closed window to the ledger as one row. A call's signals
(refusal, format check) come with it; a full window is closed when the next call arrives, so the
scores reported just after a call count in the same window. Only counts and
sums are stored — never prompt or output text. One row per window keeps the hot path to a few
additions under a lock; the ledger write happens when a window closes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from driftwatch.observation import Call

__all__ = ["MAX_AGE_S", "MAX_CALLS", "CallWindow", "WindowAggregator"]

MAX_CALLS = 100
MAX_AGE_S = 10.0


@dataclass(slots=True)
class CallWindow:
    """The sums of one agent's calls between ``start`` and ``end`` (Unix seconds)."""

    agent: str
    start: float
    end: float
    calls: int = 0
    errors: int = 0
    duration_s: float = 0.0
    output_chars: float = 0.0
    sized_calls: int = 0  # calls with a known output size
    input_tokens: int = 0
    output_tokens: int = 0
    refusals: int = 0
    format_failures: int = 0
    checked_calls: int = 0  # calls whose refusal / format signals were reported
    tools: dict[str, int] = field(default_factory=dict)
    scores: dict[str, list[float]] = field(default_factory=dict)  # metric -> [sum, count]
    pid: int = 0

    # derived values (None when the window has nothing to say)
    def mean_chars(self) -> float | None:
        return self.output_chars / self.sized_calls if self.sized_calls else None

    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    def refusal_rate(self) -> float | None:
        return self.refusals / self.checked_calls if self.checked_calls else None

    def format_failure_rate(self) -> float | None:
        return self.format_failures / self.checked_calls if self.checked_calls else None

    def mean_duration(self) -> float | None:
        return self.duration_s / self.calls if self.calls else None

    def tokens_per_call(self) -> float | None:
        total = self.input_tokens + self.output_tokens
        return total / self.calls if self.calls and total else None

    def mean_score(self, metric: str = "score") -> float | None:
        s = self.scores.get(metric)
        return s[0] / s[1] if s and s[1] else None


def _reraise(stage: str, exc: BaseException) -> None:
    raise exc


class WindowAggregator:
    """Sums calls, signals and scores per agent; hands each closed window to ``write``."""

    __slots__ = ("_lock", "_open", "max_age_s", "max_calls", "write")

    def __init__(self, write: Callable[[CallWindow], object], *, max_calls: int = MAX_CALLS,
                 max_age_s: float = MAX_AGE_S) -> None:
        self.write = write
        self.max_calls = max_calls
        self.max_age_s = max_age_s
        self._open: dict[str, CallWindow] = {}
        self._lock = threading.Lock()

    def _window(self, agent: str, now: float) -> CallWindow:
        w = self._open.get(agent)
        if w is None:
            w = self._open[agent] = CallWindow(agent, now, now, pid=os.getpid())
        return w

    def on_call(self, call: Call) -> None:
        """Sum one call (an error raises: :meth:`on_calls` is the runtime's way in)."""
        self.on_calls([call], _reraise)

    def on_calls(self, calls: list[Call], on_error: Callable[[str, BaseException], None]) -> None:
        """The calls of one agent, in order, as :meth:`on_call` sums each, under the lock once; the windows they
        close are written after. A call that raises is reported to ``on_error("windows", exc)``; the others
        are summed."""
        agent = calls[0].agent
        closed: list[CallWindow] | None = None
        errors: list[BaseException] | None = None
        max_calls, max_age_s = self.max_calls, self.max_age_s
        with self._lock:
            w = self._open.get(agent)
            for call in calls:
                try:
                    now = call.timestamp or time.time()
                    # a full (or old) window is closed when the *next* call arrives, so the scores reported just
                    # after a call still land in that call's window
                    if w is None or w.calls >= max_calls or now - w.start >= max_age_s:
                        if w is not None:
                            closed = [*(closed or ()), self._open.pop(agent)]
                        w = self._window(agent, now)
                    w.calls += 1
                    if now > w.end:
                        w.end = now
                    if call.error:
                        w.errors += 1
                    w.duration_s += call.duration_s
                    if call.output_chars is not None:
                        w.output_chars += call.output_chars
                        w.sized_calls += 1
                    if call.input_tokens:
                        w.input_tokens += call.input_tokens
                    if call.output_tokens:
                        w.output_tokens += call.output_tokens
                    for tool in call.tools:
                        w.tools[tool] = w.tools.get(tool, 0) + 1
                    if call.refused is not None or call.format_ok is not None:
                        w.checked_calls += 1
                        w.refusals += bool(call.refused)
                        w.format_failures += call.format_ok is False
                except Exception as exc:  # noqa: BLE001  # reported below; the batch's other calls go on
                    errors = [*(errors or ()), exc]
        if closed is not None:
            for done in closed:
                self.write(done)
        if errors is not None:
            for exc in errors:
                on_error("windows", exc)

    def on_signals(self, agent: str, *, refused: bool | None, format_ok: bool | None) -> None:
        """Count signals a hook derived on its own for the agent's latest call (``Runtime.record_signals``)."""
        if refused is None and format_ok is None:
            return
        with self._lock:
            w = self._window(agent, time.time())
            w.checked_calls += 1
            w.refusals += bool(refused)
            w.format_failures += format_ok is False

    def on_score(self, agent: str, metric: str, value: float) -> None:
        with self._lock:
            w = self._window(agent, time.time())
            s = w.scores.setdefault(metric, [0.0, 0.0])
            s[0] += value
            s[1] += 1

    def agents(self) -> list[str]:
        """The agents with an open window (a copy)."""
        with self._lock:
            return list(self._open)

    def flush(self, agent: str | None = None) -> None:
        """Close and write the open window of ``agent`` (all agents when ``None``)."""
        with self._lock:
            if agent is None:
                closed = list(self._open.values())
                self._open.clear()
            else:
                w = self._open.pop(agent, None)
                closed = [w] if w is not None else []
        for w in closed:
            if w.calls or w.checked_calls or w.scores:
                self.write(w)
