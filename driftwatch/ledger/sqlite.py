"""The embedded ledger: one SQLite file (or ``:memory:``), WAL mode, ``synchronous=FULL``."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

from driftwatch.ledger import DEFAULT_PATH, MEMORY, LedgerError, _sql
from driftwatch.ledger._sql import SQLLedger

__all__ = ["SQLiteLedger"]


class SQLiteLedger(SQLLedger):
    """The embedded ledger: one SQLite file (or ``:memory:``), safe across threads and processes."""

    def __init__(self, path: str = DEFAULT_PATH, *, readonly: bool = False) -> None:
        self.path = path
        self.location = path
        self.readonly = readonly
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._conn = self._connect()

    # -- connection -----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        memory = self.path == MEMORY
        if self.readonly:
            if not os.path.exists(self.path):
                raise LedgerError(f"no ledger at {self.path} (set --ledger or DRIFTWATCH_LEDGER)")
            uri, target = True, f"file:{self.path}?mode=ro"
        else:
            uri, target = False, self.path
            if not memory:
                parent = os.path.dirname(os.path.abspath(self.path))
                if not os.path.isdir(parent):
                    raise LedgerError(f"cannot create ledger {self.path}: directory {parent} does not exist")
        try:
            conn = sqlite3.connect(target, timeout=30.0, isolation_level=None, check_same_thread=False, uri=uri)
            conn.execute("PRAGMA busy_timeout = 30000")
            if not self.readonly and not memory:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise LedgerError(f"ledger {self.path}: cannot switch to WAL mode (got {mode})")
                conn.execute("PRAGMA synchronous = FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _sql.SCHEMA_VERSION:
                raise LedgerError(
                    f"ledger {self.path} has schema version {version}; this driftwatch reads up to "
                    f"{_sql.SCHEMA_VERSION}: upgrade driftwatch-agents")
            if version < _sql.SCHEMA_VERSION:
                if self.readonly:
                    if version == 0 and not _has_tables(conn):
                        raise LedgerError(f"{self.path} is not a driftwatch ledger (no tables)")
                    raise LedgerError(f"ledger {self.path} has an old schema ({version}); open it once for writing")
                self._migrate(conn, version)
            elif self.readonly and not _has_tables(conn):
                raise LedgerError(f"{self.path} is not a driftwatch ledger (no tables)")
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from None
        return conn

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            if current == 0 and _has_tables(conn):
                raise LedgerError(f"{self.path} is an SQLite file but not a driftwatch ledger")
            for v in range(current, _sql.SCHEMA_VERSION):
                for statement in _sql.MIGRATIONS[v].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {_sql.SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _db(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # forked: never share a connection with the parent
            self._pid = os.getpid()
            self._conn = self._connect()
        return self._conn

    def _write(self, statements: Iterable[tuple[str, tuple[Any, ...]]], *, durable: bool = True) -> None:
        """Run statements in one transaction; ``durable=False`` skips the fsync (aggregates only)."""
        self._transaction(statements, durable=durable)

    def _write_then_insert(self, statements: Iterable[tuple[str, tuple[Any, ...]]], sql: str,
                           args: tuple[Any, ...]) -> int:
        return self._transaction([*statements, (sql, args)])

    def _transaction(self, statements: Iterable[tuple[str, tuple[Any, ...]]], *, durable: bool = True) -> int:
        """Run statements in one transaction; returns the row id the last one inserted (0: none)."""
        if self.readonly:
            raise LedgerError(f"ledger {self.path} was opened read-only")
        with self._lock:
            conn = self._db()
            last = 0
            try:
                if not durable:
                    conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("BEGIN IMMEDIATE")
                for sql, args in statements:
                    last = conn.execute(sql, args).lastrowid or 0
                conn.execute("COMMIT")
                return int(last)
            except sqlite3.DatabaseError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise LedgerError(f"cannot write ledger {self.path}: {exc}") from None
            finally:
                if not durable and self.path != MEMORY:
                    conn.execute("PRAGMA synchronous = FULL")

    def _schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db().execute(sql, args).fetchall()
            except sqlite3.DatabaseError as exc:
                raise LedgerError(f"cannot read ledger {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

def _has_tables(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchall())
