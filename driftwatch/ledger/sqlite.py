"""The embedded ledger: one SQLite file (or ``:memory:``), WAL mode, ``synchronous=FULL``, created private."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from driftwatch.files import DEFAULT_MODE, create_private
from driftwatch.ledger import DEFAULT_PATH, MEMORY, LedgerError, _sql
from driftwatch.ledger._sql import SQLLedger

__all__ = ["LOCK_WAIT_S", "SQLiteLedger"]

#: seconds a statement waits for a lock another connection holds, unless the ledger is opened with another
LOCK_WAIT_S = 30.0


class SQLiteLedger(SQLLedger):
    """The embedded ledger: one SQLite file (or ``:memory:``), safe across threads and processes.

    ``file_mode``: the mode of a new file (SQLite gives the ``-wal`` and ``-shm`` files the same; default
    ``0o600``). ``lock_wait_s``: how long a statement waits for a lock another connection holds (SQLite's busy
    timeout; default :data:`LOCK_WAIT_S`). Before each write the file is checked to still be the one opened
    (device and inode): a ledger deleted or replaced while in use makes that write fail once, with a message
    saying so, and the next write creates a new ledger at the path instead of writing into the deleted file.

    ``readonly=True`` reads without writing anything: in WAL mode a reader needs the ``-shm`` file, so when it
    cannot be created or opened (a user who may only read the ledger, in a directory it cannot write) and the
    write-ahead log holds nothing, the file is read as immutable; when the log does hold entries, the error
    says which file to make readable.
    """

    def __init__(self, path: str = DEFAULT_PATH, *, readonly: bool = False, file_mode: int | None = None,
                 lock_wait_s: float | None = None) -> None:
        self.path = path
        self.location = path
        self.readonly = readonly
        self.file_mode = DEFAULT_MODE if file_mode is None else file_mode
        self.lock_wait_s = LOCK_WAIT_S if lock_wait_s is None else lock_wait_s
        #: read as ``immutable=1`` (a read-only user, nothing in the write-ahead log)
        self.immutable = False
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []  # a forked child never touches (or closes) these
        self._file: tuple[int, int] | None = None  # (device, inode) of the file opened for writing
        self._conn: sqlite3.Connection | None = self._connect()

    # -- connection -----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            return self._connect_readonly()
        memory = self.path == MEMORY
        if not memory:
            parent = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(parent):
                raise LedgerError(f"cannot create ledger {self.path}: directory {parent} does not exist")
            if os.path.isdir(self.path):
                raise LedgerError(f"cannot open ledger {self.path}: it is a directory")
            try:
                create_private(self.path, self.file_mode)
            except OSError as exc:
                raise LedgerError(f"cannot create ledger {self.path}: {exc.strerror or exc}") from None
        try:
            conn = sqlite3.connect(self.path, timeout=self.lock_wait_s, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.lock_wait_s * 1000)}")
                if not memory:
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    if mode.lower() != "wal":
                        raise LedgerError(f"ledger {self.path}: cannot switch to WAL mode (got {mode})")
                    conn.execute("PRAGMA synchronous = FULL")
                self._check_schema(conn)
            except BaseException:
                conn.close()
                raise
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from None
        self._file = None if memory else _identity(self.path)
        return conn

    def _connect_readonly(self) -> sqlite3.Connection:
        if not os.path.exists(self.path):
            raise LedgerError(f"no ledger at {self.path} (set --ledger or DRIFTWATCH_LEDGER)")
        if os.path.isdir(self.path):
            raise LedgerError(f"cannot read ledger {self.path}: it is a directory")
        uri = "file:" + quote(os.path.abspath(self.path))
        try:
            try:
                return self._open_readonly(uri + "?mode=ro")
            except sqlite3.OperationalError as exc:
                # WAL mode: a reader maps the -shm file; a user who may only read cannot create it (or open it)
                if str(exc) not in ("attempt to write a readonly database", "unable to open database file"):
                    raise
                wal = self.path + "-wal"
                if os.path.exists(wal) and os.path.getsize(wal) > 0:
                    raise LedgerError(
                        f"cannot read ledger {self.path}: {exc}; its write-ahead log {wal} holds recent entries and "
                        f"{self.path}-shm cannot be opened by this user: give it read access to both files, or read "
                        "the ledger as the user that writes it") from None
                self.immutable = True  # nothing in the log: the main file holds every entry
                return self._open_readonly(uri + "?immutable=1")
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from None

    def _open_readonly(self, uri: str) -> sqlite3.Connection:
        conn = sqlite3.connect(uri, timeout=self.lock_wait_s, isolation_level=None, check_same_thread=False,
                               uri=True)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.lock_wait_s * 1000)}")
            self._check_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_schema(self, conn: sqlite3.Connection) -> None:
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
        if os.getpid() != self._pid:  # forked: never use (nor close) the parent's connection
            self._pid = os.getpid()
            if self._conn is not None:
                self._inherited.append(self._conn)
            self._conn = None
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _check_file(self) -> None:
        """Before a write: the file at the path is still the one opened (``LedgerError`` once if not)."""
        if self._file is None or self._conn is None:
            return
        now = _identity(self.path)
        if now == self._file:
            return
        old, self._conn, self._file = self._conn, None, None
        with contextlib.suppress(sqlite3.Error):
            old.close()
        what = "replaced" if os.path.lexists(self.path) else "deleted"
        raise LedgerError(f"ledger {self.path} was {what} while in use: entries written before are not in the file "
                          "there now; the next write opens (or creates) the ledger at that path")

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
            self._check_file()
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
            if self._conn is not None and os.getpid() == self._pid:
                self._conn.close()


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``; ``None`` when there is none (or it is not a regular file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def _has_tables(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchall())
