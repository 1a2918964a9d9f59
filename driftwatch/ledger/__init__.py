"""The ledger: where revisions, changes, optimizer runs and alarms are kept.

:class:`Ledger` is the one narrow interface the core writes through and the CLI reads through. The backends:

- :class:`~driftwatch.ledger.sqlite.SQLiteLedger`, the embedded default (one file, WAL mode,
  ``synchronous=FULL``, so a change is on disk before the hook that saw it returns, and several threads and
  processes can share a file);
- :class:`~driftwatch.ledger.postgres.PostgresLedger`, a fleet's shared PostgreSQL database;

both run the SQL of :class:`~driftwatch.ledger._sql.SQLLedger` on the same versioned schema. In a watched
process the runtime writes through a :class:`~driftwatch.ledger.buffered.BufferedLedger`, which opens the
backend lazily and keeps writes (bounded, in order) while it is unavailable.

:func:`parse_location` is the one parser of ledger paths and URLs (the CLI uses it too); :func:`open_ledger`
picks the backend from it.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from driftwatch.alarm import Alarm
    from driftwatch.change import Change
    from driftwatch.guardrails.records import GuardAction, GuardUpdate, StateRow
    from driftwatch.observation import OptimizerRun
    from driftwatch.revision import Revision
    from driftwatch.windows import CallWindow

__all__ = [
    "DEFAULT_PATH",
    "MEMORY",
    "Ledger",
    "LedgerError",
    "LedgerLocation",
    "mask_password",
    "open_ledger",
    "parse_location",
]

DEFAULT_PATH = "driftwatch.db"
#: the SQLite in-memory ledger (tests, throwaway runs)
MEMORY = ":memory:"


class LedgerError(Exception):
    """A ledger cannot be opened, read or written; the message is one line naming the ledger."""


class Ledger(ABC):
    """What the core needs from storage. Every write is durable when the method returns."""

    location: str

    # -- writes ---------------------------------------------------------------------------------
    @abstractmethod
    def record_change(self, change: Change) -> None:
        """Store a change (or baseline), its after revision, and move the component's head."""

    @abstractmethod
    def record_revisions(self, revisions: Mapping[str, Any]) -> None:
        """Store revisions ``{revision_id: state}`` that no change points at (an optimizer's candidates);
        idempotent: a revision already stored is left as it is."""

    @abstractmethod
    def record_run(self, run: OptimizerRun) -> None:
        """Insert or update an optimizer run."""

    @abstractmethod
    def record_candidate(self, run_id: str, index: int, score: float | None,
                         revision_id: str | None = None, attributes: dict[str, Any] | None = None) -> None:
        """Store one candidate an optimizer run evaluated."""

    @abstractmethod
    def record_alarm(self, alarm: Alarm) -> None:
        """Store a drift alarm."""

    # -- reads ----------------------------------------------------------------------------------
    @abstractmethod
    def head(self, agent: str, component: str) -> str | None:
        """The current revision id of a component, or ``None`` if never seen."""

    @abstractmethod
    def revision(self, revision_id: str) -> Revision | None:
        """A stored revision by its id (or a unique prefix of at least 6 characters)."""

    @abstractmethod
    def change(self, change_id: str) -> Change:
        """A change by id or unique prefix (``KeyError`` with a clear message otherwise)."""

    @abstractmethod
    def changes(self, *, agent: str | None = None, component: str | None = None, since: float | None = None,
                until: float | None = None, limit: int | None = None, baselines: bool = False,
                status: str | None = None) -> list[Change]:
        """Changes in time order, filtered (``status``: only changes with that status, e.g. ``held``);
        baselines only when asked for."""

    @abstractmethod
    def runs(self, *, agent: str | None = None, since: float | None = None,
             limit: int | None = None) -> list[OptimizerRun]:
        """Optimizer runs in time order."""

    @abstractmethod
    def run(self, run_id: str) -> OptimizerRun:
        """An optimizer run by id or unique prefix (``KeyError`` with a clear message otherwise)."""

    @abstractmethod
    def alarm(self, alarm_id: str) -> Alarm:
        """A drift alarm by id or unique prefix (``KeyError`` with a clear message otherwise)."""

    @abstractmethod
    def candidates(self, run_id: str) -> list[dict[str, Any]]:
        """The candidates of one run, in the order they were evaluated."""

    @abstractmethod
    def alarms(self, *, agent: str | None = None, since: float | None = None, limit: int | None = None) -> list[Alarm]:
        """Drift alarms in time order."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    # -- operator commands to running processes (drift accept/reset) ---------------------------
    def record_command(self, agent: str, action: str, note: str = "") -> int:
        """Queue an operator command for the processes watching ``agent`` (``*``: every agent);
        returns its id. Processes poll :meth:`commands` (see ``docs/drift.md``)."""
        raise LedgerError(f"ledger {self.location} does not support drift commands")

    def commands(self, *, after: int = 0, since: float | None = None) -> list[tuple[int, str, str, float]]:
        """Commands with an id above ``after`` (and time at or after ``since``): (id, agent, action, time)."""
        return []

    def command_note(self, command_id: int) -> str:
        """The note (a guard command's JSON payload) of a queued command; ``""`` when there is none."""
        return ""

    # -- guardrails (driftwatch.guardrails; see docs/guardrails.md) ------------------------------
    def record_guard_action(self, action: GuardAction) -> None:
        """Store one guard action (idempotent by its id)."""
        raise LedgerError(f"ledger {self.location} does not support guardrails")

    def guard_actions(self, *, agent: str | None = None, since: float | None = None,
                      limit: int | None = None) -> list[GuardAction]:
        """Guard actions in time order."""
        return []

    def guard_state(self, agent: str | None = None) -> list[StateRow]:
        """The guard state rows of one agent (all agents when ``None``)."""
        return []

    def record_guard_state(self, put: Iterable[StateRow] = (),
                           delete: Iterable[tuple[str, str, str | None, str | None]] = ()) -> None:
        """Delete ``(agent, what, component or None, revision or None)`` state rows, then upsert ``put``, in
        one transaction."""
        raise LedgerError(f"ledger {self.location} does not support guardrails")

    def record_guard_update(self, update: GuardUpdate) -> int:
        """Write one operator command's facts and queue the command, in one transaction; returns the
        command's id."""
        raise LedgerError(f"ledger {self.location} does not support guardrails")
    # -- fleet drift evidence (drift_pool; see driftwatch.drift.fleet) ----------------------------
    def record_evidence(self, agent: str, anchor: str, replica: str, ts: float, payload: Mapping[str, Any]) -> None:
        """Store (replace) one replica's latest drift evidence for an agent's anchor."""
        raise LedgerError(f"ledger {self.location} does not support pooled drift evidence")

    def evidence(self, agent: str, anchor: str) -> dict[str, dict[str, Any]]:
        """Every replica's latest drift evidence for an agent's anchor: ``{replica: payload}``."""
        return {}

    # -- call windows (for reports; optional for a backend) -------------------------------------
    def record_window(self, window: CallWindow) -> None:  # noqa: B027  # optional: a backend may keep none
        """Store one closed window of call aggregates (see :mod:`driftwatch.windows`)."""

    def windows(self, *, agent: str | None = None, since: float | None = None,
                until: float | None = None) -> list[CallWindow]:
        """Call windows in time order (empty for a backend that keeps none)."""
        return []

    def diff(self, before_id: str | None, after_id: str) -> str:
        """A unified diff of two stored revisions."""
        from driftwatch.revision import unified_diff

        after = self.revision(after_id)
        if after is None:
            raise KeyError(f"no revision {after_id!r} in {self.location}")
        before = self.revision(before_id) if before_id else None
        if before_id and before is None:
            raise KeyError(f"no revision {before_id!r} in {self.location}")
        return unified_diff(before.state if before else None, after.state,
                            f"revision {before_id[:12]}" if before_id else "(none)", f"revision {after_id[:12]}")


# -- locations ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LedgerLocation:
    """Where a ledger is: ``backend`` ``"sqlite"`` (``target`` is a file path or ``:memory:``) or
    ``"postgresql"`` (``target`` is the URL). :attr:`display` is safe to print (password masked)."""

    backend: str
    target: str

    @property
    def display(self) -> str:
        return mask_password(self.target) if self.backend == "postgresql" else self.target

    @property
    def is_file(self) -> bool:
        """An SQLite file (not the in-memory ledger, not a server)."""
        return self.backend == "sqlite" and self.target != MEMORY


def parse_location(location: str | None) -> LedgerLocation:
    """A ledger path, ``sqlite:///PATH``, ``:memory:`` or ``postgresql://…`` URL (``None``: the default path).

    ``LedgerError`` names an unknown URL scheme.
    """
    location = location or DEFAULT_PATH
    if location.startswith(("postgresql://", "postgres://")):
        return LedgerLocation("postgresql", location)
    if location.startswith("sqlite:///"):
        return LedgerLocation("sqlite", location[len("sqlite:///"):] or MEMORY)
    if "://" in location:
        raise LedgerError(f"unknown ledger URL scheme in {mask_password(location)!r}: "
                          "use a path, sqlite:///PATH or postgresql://")
    return LedgerLocation("sqlite", location)


def mask_password(url: str) -> str:
    """The URL with its password (in the user info or a ``password=`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = userinfo.split(":", 1)[0] + ":***@" + host
    query = parts.query
    if "password=" in query:
        query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)],
                          safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def open_ledger(location: str | None = None, *, readonly: bool = False) -> Ledger:
    """Open the ledger named by a path, ``sqlite:///path``, ``:memory:`` or ``postgresql://…`` URL."""
    where = parse_location(location)
    if where.backend == "postgresql":
        from driftwatch.ledger.postgres import PostgresLedger

        return PostgresLedger(where.target, readonly=readonly)
    from driftwatch.ledger.sqlite import SQLiteLedger

    return SQLiteLedger(where.target, readonly=readonly)
