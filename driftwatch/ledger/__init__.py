"""The ledger: where revisions, changes, optimizer runs and alarms are kept.

:class:`Ledger` is the one narrow interface the core writes through and the CLI reads through. The backends:

- :class:`~driftwatch.ledger.sqlite.SQLiteLedger`, the embedded default (one file, WAL mode,
  ``synchronous=FULL``, so a change is on disk before the hook that saw it returns, and several threads and
  processes can share a file);
- :class:`~driftwatch.ledger.postgres.PostgresLedger`, a fleet's shared PostgreSQL database;

both run the SQL of :class:`~driftwatch.ledger._sql.SQLLedger` on the same versioned schema. In a watched
process the runtime writes through a :class:`~driftwatch.ledger.buffered.BufferedLedger`, whose background
writer thread does all of the backend's work, so that a host call waits at most a small bound for it, and
keeps writes (bounded, in order) while the backend is slow or unavailable.

:func:`parse_location` is the one parser of ledger paths and URLs (the CLI uses it too); :func:`open_ledger`
picks the backend from it. :func:`mask_password` and :func:`scrub` keep passwords out of every printed URL
and message.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

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
    "is_id",
    "mask_password",
    "open_ledger",
    "parse_location",
    "scrub",
    "secrets_of",
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

    def record_windows(self, windows: Sequence[CallWindow]) -> None:
        """Store closed windows, in order (a backend writes them in one transaction where it can)."""
        for window in windows:
            self.record_window(window)

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


def is_id(text: str) -> bool:
    """``text`` can be an id or the prefix of one (ASCII letters, digits, ``-``): never a ``%`` or ``_``, which
    an SQL ``LIKE`` would take for wildcards."""
    return all(c.isascii() and (c.isalnum() or c == "-") for c in text)


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


#: ``password=VALUE`` in a URL's query or a keyword conninfo string (quoted values too)
_PASSWORD_PARAM = re.compile(r"""(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s'"]*)""", re.IGNORECASE)
#: a URL inside a longer text (a driver's message repeats the URI it could not parse)
_URL_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"]*""")
#: the shortest part of a password that :func:`scrub` looks for on its own (shorter ones: only the whole)
_MIN_PART = 3


def mask_password(url: str) -> str:
    """The URL with the password of its user info and of any ``password=`` parameter replaced by ``***``.

    Works on the raw text, not with a URL parser, so that a password holding ``#``, ``?``, ``/``, ``@`` or
    ``:`` (which a parser takes for the fragment, query, path or host), a malformed host or an unknown
    scheme never shows: the user info is everything between ``://`` and the *last* ``@`` (a host has none).
    """
    masked = url
    head, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userinfo, host = rest.rsplit("@", 1)
        user, colon, _secret = userinfo.partition(":")
        if colon:
            masked = f"{head}://{user}:***@{host}"
    return _PASSWORD_PARAM.sub(r"\1***", masked)


def secrets_of(url: str) -> list[str]:
    """What could be the password of ``url`` however a parser splits it (for :func:`scrub`), longest first:
    the user info's password (up to the last ``@``), percent-decoded too, the pieces before and after each
    ``@``, ``/``, ``?``, ``#`` or ``:`` in it (what a parser that stops there sees), and ``password=`` values."""
    whole: set[str] = set()
    parts: set[str] = set()
    _head, sep, rest = url.partition("://")
    if sep and "@" in rest:
        _user, colon, secret = rest.rsplit("@", 1)[0].partition(":")
        if colon:
            whole |= {secret, unquote(secret)}
            for i, char in enumerate(secret):
                if char in "@/?#:":
                    parts |= {secret[:i], secret[i + 1:]}
    for m in _PASSWORD_PARAM.finditer(url):
        value = m.group(2).strip("'")
        whole |= {value, unquote(value)}
    found = {s for s in whole if s} | {p for p in parts if len(p) >= _MIN_PART}
    return sorted(found, key=len, reverse=True)  # longest first: a secret may hold a shorter one


def scrub(text: str, *urls: str | None) -> str:
    """``text`` (an exception message, a log line) with every URL in it masked (:func:`mask_password`) and
    every password of ``urls`` replaced by ``***`` wherever it appears (a driver quotes it in its own words)."""
    for url in urls:
        if url:
            for secret in secrets_of(url):
                text = text.replace(secret, "***")
    return _URL_IN_TEXT.sub(lambda m: mask_password(m.group(0)), _PASSWORD_PARAM.sub(r"\1***", text))


def open_ledger(location: str | None = None, *, readonly: bool = False, file_mode: int | None = None,
                lock_wait_s: float | None = None) -> Ledger:
    """Open the ledger named by a path, ``sqlite:///path``, ``:memory:`` or ``postgresql://…`` URL.

    ``file_mode``: the mode of a new SQLite file and its ``-wal``/``-shm`` (default ``0o600``, see
    :mod:`driftwatch.files`). ``lock_wait_s``: how long one statement may wait for a lock someone else holds
    before it fails (SQLite's busy timeout, PostgreSQL's ``lock_timeout``; default 30 s).
    """
    where = parse_location(location)
    if where.backend == "postgresql":
        from driftwatch.ledger.postgres import PostgresLedger

        return PostgresLedger(where.target, readonly=readonly, lock_wait_s=lock_wait_s)
    from driftwatch.ledger.sqlite import SQLiteLedger

    return SQLiteLedger(where.target, readonly=readonly, file_mode=file_mode, lock_wait_s=lock_wait_s)
