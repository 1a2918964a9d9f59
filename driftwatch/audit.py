"""The audit log: one structured (JSON) event per change, baseline, optimizer run and alarm.

driftwatch never calls ``structlog.configure()``. By default events are rendered as JSON and handed
to the stdlib logger ``driftwatch.audit`` (route it as you like). Unrouted, no event goes anywhere — drift
alarms (WARNING) included: the logger has a ``NullHandler``, as the stdlib advises libraries, so Python's
last-resort handler never prints them on stderr; with logging configured (``logging.basicConfig()``, a handler
on the root or ``driftwatch`` logger) they propagate as usual. ``audit_log=PATH`` appends JSON lines to a file
instead, and ``audit_logger=`` sends the events through any structlog-style logger of yours (your own
processors then apply).

With content capture on, a change event carries its diff (redacted, cut at ``max_diff_chars``); a cut diff
says so in the text and in ``diff_truncated`` / ``diff_chars`` (the whole diff's size).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from driftwatch.files import DEFAULT_MODE, open_private

if TYPE_CHECKING:
    from driftwatch.alarm import Alarm
    from driftwatch.change import Change
    from driftwatch.guardrails.records import GuardAction
    from driftwatch.observation import OptimizerRun
    from driftwatch.revision import Diff

__all__ = ["STDLIB_LOGGER", "AuditLog"]

STDLIB_LOGGER = "driftwatch.audit"
# unrouted audit events go nowhere (not to the last-resort handler on stderr); configured logging still gets them
logging.getLogger(STDLIB_LOGGER).addHandler(logging.NullHandler())


class _AppendFile:
    """A minimal structlog "logger" that appends one line per event, opened on first use (a new file is
    private: :func:`driftwatch.files.open_private`)."""

    def __init__(self, path: str, file_mode: int = DEFAULT_MODE) -> None:
        self.path = path
        self.file_mode = file_mode
        self._lock = threading.Lock()
        self._fh: Any = None

    def msg(self, message: str) -> None:
        with self._lock:
            if self._fh is None:
                self._fh = open_private(self.path, "a", self.file_mode, encoding="utf-8")
            self._fh.write(message + "\n")
            self._fh.flush()

    info = warning = error = msg

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def _processors() -> list[Any]:
    return [structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            structlog.processors.JSONRenderer(sort_keys=True, default=str)]


class AuditLog:
    """The audit sink. Prompt diffs are included only with content capture on, after redaction."""

    stage = "audit"

    def __init__(self, *, logger: Any = None, path: str | None = None, capture_content: bool = False,
                 redact: Callable[[str], str] | None = None, file_mode: int = DEFAULT_MODE) -> None:
        self._file = _AppendFile(path, file_mode) if logger is None and path else None
        if logger is None:
            target: Any = self._file or logging.getLogger(STDLIB_LOGGER)
            logger = structlog.wrap_logger(target, processors=_processors(), wrapper_class=structlog.BoundLogger,
                                           context_class=dict, cache_logger_on_first_use=True)
        self.log = logger
        self.capture_content = capture_content
        self.redact = redact

    def close(self) -> None:
        """Close the audit file (``audit_log=``), if one is open; a later event opens it again."""
        if self._file is not None:
            self._file.close()

    def on_change(self, change: Change, diff: Diff | None = None) -> None:
        event: dict[str, Any] = {
            "change_id": change.id, "agent": change.agent, "component": change.component,
            "kind": change.kind, "source": change.source, "revision_before": change.before_id,
            "revision_after": change.after_id, "magnitude": change.magnitude, "paths": list(change.paths),
            "timestamp": change.timestamp,
        }
        for key in ("trace_id", "span_id", "run_id", "node"):
            value = getattr(change, key)
            if value:
                event[key] = value
        if change.status != "applied":
            event["status"] = change.status
        if diff is not None and self.capture_content:
            event["diff"] = diff.text
            if diff.truncated:
                event["diff_truncated"] = True
                event["diff_chars"] = diff.chars
        self.log.info("driftwatch.baseline" if change.is_baseline else "driftwatch.change", **event)

    def on_run(self, run: OptimizerRun) -> None:
        self.log.info("driftwatch.optimizer_run", run_id=run.id, agent=run.agent, optimizer=run.optimizer,
                      outcome=run.outcome, candidates=run.candidates, best_score=run.best_score,
                      started_at=run.started_at, ended_at=run.ended_at, error_type=run.error_type)

    def on_guard(self, action: GuardAction) -> None:
        event = {"agent": action.agent, "action": action.action, "reason": action.reason, "origin": action.origin}
        for key in ("component", "change_id", "revision_id"):
            value = getattr(action, key)
            if value:
                event[key] = value
        self.log.info("driftwatch.guard", **event)

    def on_alarm(self, alarm: Alarm) -> None:
        self.log.warning("driftwatch.drift_alarm", alarm_id=alarm.id, agent=alarm.agent, signal=alarm.signal,
                         score=alarm.score, anchor_change_id=alarm.anchor_change_id,
                         calls_since_anchor=alarm.calls_since_anchor, trace_id=alarm.trace_id)
