"""The SQLite ledger: durability, concurrency, schema versions, and its read API."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from driftwatch.change import Change, new_id
from driftwatch.ledger import SCHEMA_VERSION, LedgerError, SQLiteLedger, open_ledger
from driftwatch.revision import fingerprint

PY = sys.executable


def _change(agent: str, component: str, before: str | None, after: str, ts: float | None = None) -> Change:
    return Change(id=new_id(), agent=agent, component=component, kind="system_prompt", source="agent",
                  before_id=fingerprint(before) if before is not None else None, after_id=fingerprint(after),
                  magnitude=0.5, paths=("$",), timestamp=ts or time.time(), before_state=before, after_state=after)


def test_file_is_in_wal_mode_with_full_sync(tmp_path) -> None:
    """A new ledger file uses WAL journaling and records its schema version."""
    path = tmp_path / "dw.db"
    SQLiteLedger(str(path)).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_change_survives_sigkill_right_after_track(tmp_path) -> None:
    """A process killed with SIGKILL right after track() returned has that change in the ledger."""
    path = tmp_path / "dw.db"
    script = textwrap.dedent(f"""
        import os, sys, driftwatch
        driftwatch.configure(ledger={str(path)!r}, tracing=False)
        driftwatch.track("bot", "prompt", "first")
        change = driftwatch.track("bot", "prompt", "second")
        sys.stdout.write(change.id + "\\n"); sys.stdout.flush()
        os.kill(os.getpid(), 9)
    """)
    proc = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    change_id = proc.stdout.strip()
    ledger = SQLiteLedger(str(path))
    stored = ledger.change(change_id)
    assert stored.after_state == "second"
    assert stored.before_state == "first"


def test_threads_lose_nothing(tmp_path) -> None:
    """Eight threads writing 50 changes each to one ledger store all 400."""
    ledger = SQLiteLedger(str(tmp_path / "dw.db"))

    def work(n: int) -> None:
        for i in range(50):
            ledger.record_change(_change(f"agent{n}", "p", f"s{i}", f"s{i + 1}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ledger.changes()) == 400
    assert {c.agent for c in ledger.changes()} == {f"agent{n}" for n in range(8)}
    assert ledger.head("agent3", "p") == fingerprint("s50")


def test_processes_sharing_a_file_lose_nothing(tmp_path) -> None:
    """Three processes tracking changes into one file at the same time store every change intact."""
    path = str(tmp_path / "dw.db")
    script = textwrap.dedent("""
        import sys, driftwatch
        driftwatch.configure(ledger=sys.argv[1], tracing=False, metrics=False)
        n = sys.argv[2]
        for i in range(60):
            driftwatch.track(f"agent{n}", "prompt", f"prompt {i} of process {n}")
    """)
    procs = [subprocess.Popen([PY, "-c", script, path, str(n)]) for n in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    ledger = SQLiteLedger(path)
    entries = ledger.changes(baselines=True)
    assert len(entries) == 180
    assert len(ledger.changes()) == 177  # one baseline per process's agent
    for n in range(3):
        assert ledger.revision(ledger.head(f"agent{n}", "prompt")).state == f"prompt 59 of process {n}"
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_read_api_filters_and_prefixes(tmp_path) -> None:
    """changes() filters by agent, component and time; change() takes a unique prefix; diff() is unified."""
    ledger = SQLiteLedger(str(tmp_path / "dw.db"))
    t0 = 1_700_000_000.0
    a = _change("a", "p", None, "v1", t0)
    b = _change("a", "p", "v1", "v2", t0 + 10)
    c = _change("b", "q", None, "w1", t0 + 20)
    d = _change("a", "r", "x", "y", t0 + 30)
    for ch in (a, b, c, d):
        ledger.record_change(ch)
    assert [x.id for x in ledger.changes(baselines=True)] == [a.id, b.id, c.id, d.id]
    assert [x.id for x in ledger.changes()] == [b.id, d.id]
    assert [x.id for x in ledger.changes(agent="a", component="p", baselines=True)] == [a.id, b.id]
    assert [x.id for x in ledger.changes(since=t0 + 5, until=t0 + 25, baselines=True)] == [b.id, c.id]
    assert [x.id for x in ledger.changes(limit=1)] == [d.id]
    assert ledger.change(b.id[:10]).after_state == "v2"
    with pytest.raises(KeyError, match="no change 'ffffffff'"):
        ledger.change("ffffffff")
    assert ledger.diff(b.before_id, b.after_id).splitlines()[2:] == ["@@ -1 +1 @@", "-v1", "+v2"]


def test_corrupt_and_foreign_files_are_refused_with_one_line(tmp_path) -> None:
    """A non-database file, a foreign SQLite file, a newer schema and a missing file give one-line errors."""
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all" * 100)
    with pytest.raises(LedgerError, match=r"^cannot open ledger .*junk.db: file is not a database$"):
        SQLiteLedger(str(junk))
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)")
    with pytest.raises(LedgerError, match="is an SQLite file but not a driftwatch ledger"):
        SQLiteLedger(str(foreign))
    newer = tmp_path / "newer.db"
    SQLiteLedger(str(newer)).close()
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(LedgerError, match="upgrade driftwatch-agents"):
        SQLiteLedger(str(newer))
    with pytest.raises(LedgerError, match=r"^no ledger at .*missing.db"):
        SQLiteLedger(str(tmp_path / "missing.db"), readonly=True)
    with pytest.raises(LedgerError, match=r"directory .* does not exist"):
        SQLiteLedger(str(tmp_path / "no" / "dir.db"))
    with pytest.raises(LedgerError, match="unknown ledger URL scheme"):
        open_ledger("mysql://x")


def test_older_schema_is_migrated_in_place(tmp_path, monkeypatch) -> None:
    """A ledger written with an older schema is upgraded on open, keeping its entries."""
    import driftwatch.ledger as ledger_mod

    path = str(tmp_path / "old.db")
    extra = "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT);"
    ledger = SQLiteLedger(path)
    ledger.record_change(_change("a", "p", None, "v1"))
    ledger.close()
    monkeypatch.setattr(ledger_mod, "MIGRATIONS", (*ledger_mod.MIGRATIONS, extra))
    monkeypatch.setattr(ledger_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    upgraded = ledger_mod.SQLiteLedger(path)
    assert upgraded._read("PRAGMA user_version")[0][0] == SCHEMA_VERSION + 1
    assert upgraded._read("SELECT name FROM sqlite_master WHERE name = 'notes'") == [("notes",)]
    assert len(upgraded.changes(baselines=True)) == 1


def test_forked_child_gets_its_own_connection(tmp_path) -> None:
    """After fork, the child reopens the ledger instead of sharing the parent's connection."""
    ledger = SQLiteLedger(str(tmp_path / "dw.db"))
    ledger.record_change(_change("a", "p", None, "v1"))
    pid = os.fork()
    if pid == 0:  # child
        try:
            ledger.record_change(_change("a", "p", "v1", "v2"))
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert ledger.head("a", "p") == fingerprint("v2")
