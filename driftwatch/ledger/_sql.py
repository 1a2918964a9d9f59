"""The schema and the SQL shared by the SQLite and PostgreSQL backends (:class:`SQLLedger`).

The schema is versioned (SQLite's ``user_version``; a ``driftwatch_schema`` table in PostgreSQL);
:data:`MIGRATIONS` upgrades an older ledger in place, and one written by a newer driftwatch is refused
with a clear error.
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from driftwatch.alarm import Alarm
from driftwatch.change import IN_EFFECT, Change
from driftwatch.guardrails.records import GuardAction, GuardUpdate, StateRow
from driftwatch.ledger import Ledger, is_id
from driftwatch.observation import OptimizerRun
from driftwatch.revision import Revision, canonical_json
from driftwatch.windows import CallWindow

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SQLLedger"]

#: Written in SQLite's dialect; the PostgreSQL backend translates the column types
#: (:func:`driftwatch.ledger.postgres.postgres_ddl`), so both backends always have the same tables.
MIGRATIONS: tuple[str, ...] = (
    # version 1
    """
    CREATE TABLE revisions (
        id TEXT PRIMARY KEY,
        parent TEXT,
        state TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE changes (
        id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        component TEXT NOT NULL,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        before_id TEXT,
        after_id TEXT NOT NULL REFERENCES revisions(id),
        magnitude REAL NOT NULL,
        paths TEXT NOT NULL,
        ts REAL NOT NULL,
        trace_id TEXT,
        span_id TEXT,
        run_id TEXT,
        node TEXT,
        attributes TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX changes_agent_ts ON changes(agent, ts);
    CREATE INDEX changes_ts ON changes(ts);
    CREATE TABLE heads (
        agent TEXT NOT NULL,
        component TEXT NOT NULL,
        revision_id TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (agent, component)
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        optimizer TEXT NOT NULL,
        outcome TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        candidates INTEGER NOT NULL DEFAULT 0,
        best_score REAL,
        trace_id TEXT,
        error_type TEXT,
        attributes TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX runs_agent_ts ON runs(agent, started_at);
    CREATE TABLE candidates (
        run_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        score REAL,
        revision_id TEXT,
        attributes TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (run_id, idx)
    );
    CREATE TABLE alarms (
        id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        signal TEXT NOT NULL,
        score REAL NOT NULL,
        ts REAL NOT NULL,
        anchor_change_id TEXT,
        calls_since_anchor INTEGER NOT NULL DEFAULT 0,
        trace_id TEXT,
        span_id TEXT,
        attributes TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX alarms_agent_ts ON alarms(agent, ts);
    """,
    # version 2: per-agent call aggregates for reports (driftwatch.windows)
    """
    CREATE TABLE call_windows (
        agent TEXT NOT NULL,
        start REAL NOT NULL,
        end_ts REAL NOT NULL,
        calls INTEGER NOT NULL,
        errors INTEGER NOT NULL DEFAULT 0,
        duration_s REAL NOT NULL DEFAULT 0,
        output_chars REAL NOT NULL DEFAULT 0,
        sized_calls INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        refusals INTEGER NOT NULL DEFAULT 0,
        format_failures INTEGER NOT NULL DEFAULT 0,
        checked_calls INTEGER NOT NULL DEFAULT 0,
        tools TEXT NOT NULL DEFAULT '{}',
        scores TEXT NOT NULL DEFAULT '{}',
        pid INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX call_windows_agent_start ON call_windows(agent, start);
    """,
    # version 3: operator commands (drift accept/reset) that running processes poll (driftwatch.drift)
    """
    CREATE TABLE drift_commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agent TEXT NOT NULL,
        action TEXT NOT NULL,
        ts REAL NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    );
    """,
    # version 4: each replica's latest drift evidence per agent and anchor, pooled by the fleet (drift_pool)
    """
    CREATE TABLE drift_evidence (
        agent TEXT NOT NULL,
        anchor TEXT NOT NULL,
        replica TEXT NOT NULL,
        ts REAL NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (agent, anchor, replica)
    );
    """,
    # version 5: guardrails (driftwatch.guardrails): what became of each change, the guard's actions, and the
    # guard state every watched process reads (frozen agents, pinned, approved, rejected and held revisions)
    """
    ALTER TABLE changes ADD COLUMN status TEXT NOT NULL DEFAULT 'applied';
    CREATE INDEX changes_agent_status ON changes(agent, status);
    CREATE TABLE guard_actions (
        id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        action TEXT NOT NULL,
        ts REAL NOT NULL,
        component TEXT NOT NULL DEFAULT '',
        change_id TEXT,
        revision_id TEXT,
        reason TEXT NOT NULL DEFAULT '',
        origin TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX guard_actions_agent_ts ON guard_actions(agent, ts);
    CREATE TABLE guard_state (
        agent TEXT NOT NULL,
        what TEXT NOT NULL,
        component TEXT NOT NULL DEFAULT '',
        revision_id TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT '',
        ts REAL NOT NULL,
        PRIMARY KEY (agent, what, component, revision_id)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_CHANGE_COLS = ("id, agent, component, kind, source, before_id, after_id, magnitude, paths, ts, "
                "trace_id, span_id, run_id, node, attributes, status")
_GUARD_ACTION_COLS = "id, agent, action, ts, component, change_id, revision_id, reason, origin"
_STATE_COLS = "agent, what, component, revision_id, note, ts"
#: call windows per INSERT statement (16 parameters each: under the 999 of the oldest SQLite)
_WINDOW_ROWS = 50


def _json(value: Any) -> str:
    return json.dumps(value or {}, sort_keys=True, default=str)


class SQLLedger(Ledger):
    """The SQL both backends run (``?`` placeholders; the PostgreSQL backend rewrites them) and the
    row → object conversions. A backend supplies the connection: :meth:`_read`, :meth:`_write`,
    :meth:`_write_then_insert`, :meth:`_schema_version` and :meth:`close`.

    Every insert of an entry with an id is idempotent (``ON CONFLICT … DO NOTHING``): the runtime retries
    a write whose outcome it did not learn (a connection lost during ``COMMIT``) without duplicating it.
    """

    readonly: bool = False
    #: the order of call windows with the same start (SQLite: insertion order)
    _WINDOW_ORDER = "start, rowid"

    @abstractmethod
    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one query; ``LedgerError`` when the ledger cannot be read."""

    @abstractmethod
    def _write(self, statements: Iterable[tuple[str, tuple[Any, ...]]], *, durable: bool = True) -> None:
        """Run statements in one transaction, committed (``durable``: synchronously) before returning."""

    @abstractmethod
    def _write_then_insert(self, statements: Iterable[tuple[str, tuple[Any, ...]]], sql: str,
                           args: tuple[Any, ...]) -> int:
        """Run ``statements``, then the insert ``sql`` (into a table with an integer id), in one durable
        transaction; returns the new row's id."""

    @abstractmethod
    def _schema_version(self) -> int:
        """The schema version the ledger is at."""

    _COMMAND_INSERT = "INSERT INTO drift_commands (agent, action, ts, note) VALUES (?, ?, ?, ?)"

    def record_command(self, agent: str, action: str, note: str = "") -> int:
        return self._write_then_insert([], self._COMMAND_INSERT, (agent, action, time.time(), note))

    def commands(self, *, after: int = 0, since: float | None = None) -> list[tuple[int, str, str, float]]:
        sql, args = "SELECT id, agent, action, ts FROM drift_commands WHERE id > ?", [after]
        if since is not None:
            sql += " AND ts >= ?"
            args.append(since)
        return [(r[0], r[1], r[2], r[3]) for r in self._read(sql + " ORDER BY id", tuple(args))]

    def command_note(self, command_id: int) -> str:
        rows = self._read("SELECT note FROM drift_commands WHERE id = ?", (command_id,))
        return rows[0][0] if rows else ""

    # -- writes ---------------------------------------------------------------------------------
    def record_change(self, change: Change) -> None:
        self._write(_change_statements(change))

    def record_revisions(self, revisions: Mapping[str, Any]) -> None:
        if not revisions:
            return
        now = time.time()
        self._write([("INSERT INTO revisions (id, parent, state, created_at) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (id) DO NOTHING", (rid, None, canonical_json(state), now))
                     for rid, state in revisions.items()])

    def record_run(self, run: OptimizerRun) -> None:
        self._write([(
            "INSERT INTO runs (id, agent, optimizer, outcome, started_at, ended_at, candidates, best_score, "
            "trace_id, error_type, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET outcome = excluded.outcome, ended_at = excluded.ended_at, "
            "candidates = excluded.candidates, best_score = excluded.best_score, "
            "error_type = excluded.error_type, attributes = excluded.attributes",
            (run.id, run.agent, run.optimizer, run.outcome, run.started_at, run.ended_at, run.candidates,
             run.best_score, run.trace_id, run.error_type, _json(run.attributes)),
        )])

    def record_candidate(self, run_id: str, index: int, score: float | None,
                         revision_id: str | None = None, attributes: dict[str, Any] | None = None) -> None:
        self._write([(
            "INSERT INTO candidates (run_id, idx, score, revision_id, attributes) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, idx) DO UPDATE SET score = excluded.score, revision_id = excluded.revision_id, "
            "attributes = excluded.attributes",
            (run_id, index, score, revision_id, _json(attributes)),
        )])

    def record_alarm(self, alarm: Alarm) -> None:
        self._write([(
            "INSERT INTO alarms (id, agent, signal, score, ts, anchor_change_id, calls_since_anchor, trace_id, "
            "span_id, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (alarm.id, alarm.agent, alarm.signal, alarm.score, alarm.timestamp, alarm.anchor_change_id,
             alarm.calls_since_anchor, alarm.trace_id, alarm.span_id, _json(alarm.attributes)),
        )])

    def record_evidence(self, agent: str, anchor: str, replica: str, ts: float, payload: Mapping[str, Any]) -> None:
        self._write([(
            "INSERT INTO drift_evidence (agent, anchor, replica, ts, payload) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (agent, anchor, replica) DO UPDATE SET ts = excluded.ts, payload = excluded.payload",
            (agent, anchor, replica, ts, json.dumps(payload, separators=(",", ":"))),
        )], durable=False)  # replaced at every poll: no fsync on the agent's call path

    def evidence(self, agent: str, anchor: str) -> dict[str, dict[str, Any]]:
        rows = self._read("SELECT replica, payload FROM drift_evidence WHERE agent = ? AND anchor = ?", (agent, anchor))
        return {r[0]: json.loads(r[1]) for r in rows}

    _WINDOW_COLS = ("agent, start, end_ts, calls, errors, duration_s, output_chars, sized_calls, input_tokens, "
                    "output_tokens, refusals, format_failures, checked_calls, tools, scores, pid")

    def record_window(self, window: CallWindow) -> None:
        self.record_windows((window,))

    def record_windows(self, windows: Sequence[CallWindow]) -> None:
        rows = [(w.agent, w.start, w.end, w.calls, w.errors, w.duration_s, w.output_chars, w.sized_calls,
                 w.input_tokens, w.output_tokens, w.refusals, w.format_failures, w.checked_calls,
                 json.dumps(w.tools, sort_keys=True), json.dumps(w.scores, sort_keys=True), w.pid) for w in windows]
        # many rows per INSERT: a statement is a round trip (and, in SQLite, a hand-off of the interpreter lock
        # that a busy host thread holds for up to its switch interval); 16 columns x 50 rows stays under the
        # 999 parameters the oldest SQLite allows
        one = "(" + ", ".join("?" * 16) + ")"
        statements = []
        for i in range(0, len(rows), _WINDOW_ROWS):
            chunk = rows[i:i + _WINDOW_ROWS]
            statements.append((f"INSERT INTO call_windows ({self._WINDOW_COLS}) VALUES "
                               + ", ".join([one] * len(chunk)), tuple(v for row in chunk for v in row)))
        self._write(statements, durable=False)  # aggregates for reports: no fsync on the agent's call path

    def windows(self, *, agent: str | None = None, since: float | None = None,
                until: float | None = None) -> list[CallWindow]:
        rows = self._select(self._WINDOW_COLS, "call_windows",
                            _filters(agent=agent, since=since, until=until, ts="start"), self._WINDOW_ORDER)
        return [CallWindow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
                           json.loads(r[13]), json.loads(r[14]), r[15]) for r in rows]

    # -- reads ----------------------------------------------------------------------------------
    def _select(self, cols: str, table: str, filters: tuple[list[str], list[Any]], order: str,
                limit: int | None = None) -> list[tuple[Any, ...]]:
        """Rows of ``table`` matching ``filters`` (from :func:`_filters`) in ``order``; the last ``limit``."""
        where, args = filters
        sql = f"SELECT {cols} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._read(f"{sql} ORDER BY {order}", tuple(args))
        if limit is not None:
            rows = rows[-limit:] if limit > 0 else []
        return rows

    def head(self, agent: str, component: str) -> str | None:
        rows = self._read("SELECT revision_id FROM heads WHERE agent = ? AND component = ?", (agent, component))
        return rows[0][0] if rows else None

    def revision(self, revision_id: str) -> Revision | None:
        if len(revision_id) < 6 or not is_id(revision_id):
            return None
        rows = self._read("SELECT id, parent, state, created_at FROM revisions WHERE id = ?", (revision_id,))
        if not rows:
            rows = self._read("SELECT id, parent, state, created_at FROM revisions WHERE id LIKE ? LIMIT 2",
                              (_prefix(revision_id),))
        if len(rows) != 1:
            return None
        rid, parent, state, created = rows[0]
        return Revision(rid, json.loads(state), parent, created)

    def _one(self, noun: str, table: str, cols: str, entry_id: str) -> tuple[Any, ...]:
        """The row of ``table`` whose id is ``entry_id`` or starts with it (4+ characters, unique)."""
        if not is_id(entry_id):
            raise KeyError(f"{noun} id {entry_id!r} is not an id: ids have letters and digits only")
        if len(entry_id) < 4:
            raise KeyError(f"{noun} id {entry_id!r} is too short: give at least 4 characters")
        rows = self._read(f"SELECT {cols} FROM {table} WHERE id LIKE ? LIMIT 2", (_prefix(entry_id),))
        if not rows:
            raise KeyError(f"no {noun} {entry_id!r} in {self.location}")
        if len(rows) > 1:
            raise KeyError(f"{noun} id {entry_id!r} is ambiguous in {self.location}: give more characters")
        return rows[0]

    def change(self, change_id: str) -> Change:
        return self._change(self._one("change", "changes", _CHANGE_COLS, change_id), with_states=True)

    def run(self, run_id: str) -> OptimizerRun:
        return _run(self._one("optimizer run", "runs", _RUN_COLS, run_id))

    def alarm(self, alarm_id: str) -> Alarm:
        return _alarm(self._one("alarm", "alarms", _ALARM_COLS, alarm_id))

    def changes(self, *, agent: str | None = None, component: str | None = None, since: float | None = None,
                until: float | None = None, limit: int | None = None, baselines: bool = False,
                status: str | None = None) -> list[Change]:
        where, args = _filters(agent=agent, component=component, since=since, until=until)
        if not baselines:
            where.append("before_id IS NOT NULL")
        if status is not None:
            where.append("status = ?")
            args.append(status)
        return [self._change(r) for r in self._select(_CHANGE_COLS, "changes", (where, args), "ts, id", limit)]

    def _change(self, row: tuple[Any, ...], with_states: bool = False) -> Change:
        (cid, agent, component, kind, source, before_id, after_id, magnitude, paths, ts, trace_id, span_id,
         run_id, node, attributes, status) = row
        before_state = after_state = None
        if with_states:
            after = self.revision(after_id)
            after_state = after.state if after else None
            if before_id:
                before = self.revision(before_id)
                before_state = before.state if before else None
        return Change(cid, agent, component, kind, source, before_id, after_id, magnitude,
                      tuple(json.loads(paths)), ts, before_state, after_state, trace_id, span_id, run_id, node,
                      json.loads(attributes), status)

    def runs(self, *, agent: str | None = None, since: float | None = None,
             limit: int | None = None) -> list[OptimizerRun]:
        filters = _filters(agent=agent, since=since, ts="started_at")
        return [_run(r) for r in self._select(_RUN_COLS, "runs", filters, "started_at, id", limit)]

    def candidates(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._read("SELECT idx, score, revision_id, attributes FROM candidates WHERE run_id = ? ORDER BY idx",
                          (run_id,))
        return [{"index": r[0], "score": r[1], "revision_id": r[2], **json.loads(r[3])} for r in rows]

    def alarms(self, *, agent: str | None = None, since: float | None = None, limit: int | None = None) -> list[Alarm]:
        filters = _filters(agent=agent, since=since)
        return [_alarm(r) for r in self._select(_ALARM_COLS, "alarms", filters, "ts, id", limit)]

    # -- guardrails ---------------------------------------------------------------------------------
    def record_guard_action(self, action: GuardAction) -> None:
        self._write([_action_statement(action)])

    def guard_actions(self, *, agent: str | None = None, since: float | None = None,
                      limit: int | None = None) -> list[GuardAction]:
        rows = self._select(_GUARD_ACTION_COLS, "guard_actions", _filters(agent=agent, since=since), "ts, id", limit)
        return [GuardAction(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows]

    def guard_state(self, agent: str | None = None) -> list[StateRow]:
        where = _filters(agent=agent)
        rows = self._select(_STATE_COLS, "guard_state", where, "agent, what, component, revision_id")
        return [StateRow(*r) for r in rows]

    def record_guard_state(self, put: Iterable[StateRow] = (),
                           delete: Iterable[tuple[str, str, str | None, str | None]] = ()) -> None:
        statements = [_delete_statement(agent, what, component, revision)
                      for agent, what, component, revision in delete]
        statements += [_put_statement(row) for row in put]
        if statements:
            self._write(statements)

    def record_guard_update(self, update: GuardUpdate) -> int:
        u = update
        now = time.time()
        statements = [_delete_statement(u.agent, what, component, revision) for what, component, revision in u.delete]
        statements += [_put_statement(row) for row in u.put]
        for change in u.changes:
            statements += _change_statements(change)
        for component, after_id, old, new in u.statuses:
            statements.append(("UPDATE changes SET status = ? WHERE agent = ? AND component = ? AND after_id = ? "
                               "AND status = ?", (new, u.agent, component, after_id, old)))
        for component, revision in u.heads:
            statements.append((_HEAD_UPSERT, (u.agent, component, revision, now)))
        statements += [_action_statement(a) for a in u.actions]
        return self._write_then_insert(statements, self._COMMAND_INSERT, (u.agent, u.command, now, u.note))


_RUN_COLS = ("id, agent, optimizer, outcome, started_at, ended_at, candidates, best_score, trace_id, error_type, "
             "attributes")
_ALARM_COLS = "id, agent, signal, score, ts, anchor_change_id, calls_since_anchor, trace_id, span_id, attributes"


_HEAD_UPSERT = ("INSERT INTO heads (agent, component, revision_id, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (agent, component) DO UPDATE SET revision_id = excluded.revision_id, "
                "updated_at = excluded.updated_at")


def _change_statements(change: Change) -> list[tuple[str, tuple[Any, ...]]]:
    """A change (or baseline): its after revision, its row, and (when it is in effect) the component's head."""
    now = change.timestamp or time.time()
    statements: list[tuple[str, tuple[Any, ...]]] = [
        ("INSERT INTO revisions (id, parent, state, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
         (change.after_id, change.before_id, canonical_json(change.after_state), now)),
        (f"INSERT INTO changes ({_CHANGE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT (id) DO NOTHING",
         (change.id, change.agent, change.component, change.kind, change.source, change.before_id,
          change.after_id, change.magnitude, json.dumps(list(change.paths)), now, change.trace_id,
          change.span_id, change.run_id, change.node, _json(change.attributes), change.status)),
    ]
    if change.status in IN_EFFECT:  # a blocked or held change leaves the component at its revision
        statements.append((_HEAD_UPSERT, (change.agent, change.component, change.after_id, now)))
    return statements


def _action_statement(a: GuardAction) -> tuple[str, tuple[Any, ...]]:
    return (f"INSERT INTO guard_actions ({_GUARD_ACTION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            (a.id, a.agent, a.action, a.timestamp, a.component, a.change_id, a.revision_id, a.reason, a.origin))


def _put_statement(row: StateRow) -> tuple[str, tuple[Any, ...]]:
    return (f"INSERT INTO guard_state ({_STATE_COLS}) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (agent, what, component, revision_id) DO UPDATE SET note = excluded.note, ts = excluded.ts",
            (row.agent, row.what, row.component, row.revision_id, row.note, row.timestamp or time.time()))


def _delete_statement(agent: str, what: str, component: str | None,
                      revision: str | None) -> tuple[str, tuple[Any, ...]]:
    sql, args = "DELETE FROM guard_state WHERE agent = ? AND what = ?", [agent, what]
    if component is not None:
        sql += " AND component = ?"
        args.append(component)
    if revision is not None:
        sql += " AND revision_id = ?"
        args.append(revision)
    return sql, tuple(args)


def _run(r: tuple[Any, ...]) -> OptimizerRun:
    return OptimizerRun(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], json.loads(r[10]))


def _alarm(r: tuple[Any, ...]) -> Alarm:
    return Alarm(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]))


def _prefix(text: str) -> str:
    """A ``LIKE`` pattern for an id prefix that passed :func:`~driftwatch.ledger.is_id` (ids are lower-case hex;
    PostgreSQL's ``LIKE`` is case-sensitive)."""
    return text.lower() + "%"


def _filters(*, agent: str | None = None, component: str | None = None, since: float | None = None,
             until: float | None = None, ts: str = "ts") -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("agent", agent), ("component", component)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if since is not None:
        where.append(f"{ts} >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{ts} < ?")
        args.append(until)
    return where, args
