"""The ledger contract, run against both backends (``ledger_url``: an SQLite file, then a database on a
throwaway PostgreSQL server): durability, concurrency, schema versions, the read API; SQLite specifics.
PostgreSQL specifics (connection errors, concurrent first migration, the runtime when the database is
down) are in test_ledger_postgres.py."""

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

from driftwatch.alarm import Alarm
from driftwatch.change import Change, new_id
from driftwatch.ledger import LedgerError, open_ledger
from driftwatch.ledger._sql import SCHEMA_VERSION
from driftwatch.ledger.sqlite import SQLiteLedger
from driftwatch.observation import OptimizerRun
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


def test_change_survives_sigkill_right_after_track(ledger_url) -> None:
    """A process killed with SIGKILL right after track() returned has that change in the ledger (the ledger
    answers in time: configure() opens it in the background, and the script waits for that before its first
    change; what a slow ledger can lose is in tests/faults/test_ledger_wait.py)."""
    path = ledger_url
    script = textwrap.dedent(f"""
        import os, sys, driftwatch
        rt = driftwatch.configure(ledger={path!r}, tracing=False)
        assert rt.ledger.flush(timeout=30)  # opened (and migrated) by the background writer
        driftwatch.track("bot", "prompt", "first")
        change = driftwatch.track("bot", "prompt", "second")
        assert rt.pending_writes == 0, "written before track() returned"
        sys.stdout.write(change.id + "\\n"); sys.stdout.flush()
        os.kill(os.getpid(), 9)
    """)
    proc = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    change_id = proc.stdout.strip()
    ledger = open_ledger(path)
    stored = ledger.change(change_id)
    assert stored.after_state == "second"
    assert stored.before_state == "first"


def test_threads_lose_nothing(ledger_url) -> None:
    """Eight threads writing 50 changes each to one ledger store all 400."""
    ledger = open_ledger(ledger_url)

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


def test_processes_sharing_a_ledger_lose_nothing(ledger_url) -> None:
    """Three processes tracking changes into one new ledger at the same time (each opening, and for
    PostgreSQL racing to create, the schema) store every change once and intact."""
    path = ledger_url
    script = textwrap.dedent("""
        import sys, driftwatch
        driftwatch.configure(ledger=sys.argv[1], tracing=False, metrics=False)
        n = sys.argv[2]
        for i in range(60):
            driftwatch.track(f"agent{n}", "prompt", f"prompt {i} of process {n}")
    """)
    procs = [subprocess.Popen([PY, "-c", script, path, str(n)]) for n in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    ledger = open_ledger(path)
    entries = ledger.changes(baselines=True)
    assert len(entries) == 180
    assert len(ledger.changes()) == 177  # one baseline per process's agent
    for n in range(3):
        assert ledger.revision(ledger.head(f"agent{n}", "prompt")).state == f"prompt 59 of process {n}"
    assert len({c.id for c in entries}) == 180
    if "://" not in path:
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_read_api_filters_and_prefixes(ledger_url) -> None:
    """changes() filters by agent, component and time; change() takes a unique prefix; diff() is unified."""
    ledger = open_ledger(ledger_url)
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
    assert ledger.change(b.id[:10].upper()).id == b.id
    assert ledger.revision(b.after_id[:8]).state == "v2"
    assert ledger.head("a", "p") == b.after_id and ledger.head("a", "zz") is None
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


def test_older_schema_is_migrated_in_place(ledger_url, monkeypatch) -> None:
    """A ledger written with an older schema is upgraded on open, keeping its entries."""
    import driftwatch.ledger._sql as sql_mod

    path = ledger_url
    extra = "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT, n INTEGER);"
    ledger = open_ledger(path)
    ledger.record_change(_change("a", "p", None, "v1"))
    ledger.close()
    monkeypatch.setattr(sql_mod, "MIGRATIONS", (*sql_mod.MIGRATIONS, extra))
    monkeypatch.setattr(sql_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    upgraded = open_ledger(path)
    assert upgraded._schema_version() == SCHEMA_VERSION + 1
    assert upgraded._read("SELECT count(*) FROM notes") == [(0,)]
    assert len(upgraded.changes(baselines=True)) == 1
    upgraded.close()
    monkeypatch.setattr(sql_mod, "SCHEMA_VERSION", SCHEMA_VERSION)  # an older driftwatch refuses it
    with pytest.raises(LedgerError, match="upgrade driftwatch-agents"):
        open_ledger(path)


def test_forked_child_gets_its_own_connection(ledger_url) -> None:
    """After fork, the child reopens the ledger instead of sharing the parent's connection."""
    ledger = open_ledger(ledger_url)
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
    ledger.record_change(_change("a", "p", "v2", "v3"))  # the parent's connection still works
    assert [c.after_state for c in [ledger.change(c.id) for c in ledger.changes()]] == ["v2", "v3"]


def test_runs_candidates_alarms_windows_and_commands(ledger_url) -> None:
    """Optimizer runs (upserted), their candidates, alarms, call windows and drift commands round-trip."""
    from driftwatch.windows import CallWindow

    ledger = open_ledger(ledger_url)
    t0 = 1_700_000_000.25
    run = OptimizerRun("r1", "bot", "MIPROv2", "running", t0, attributes={"trials": 3})
    ledger.record_run(run)
    ledger.record_run(OptimizerRun("r1", "bot", "MIPROv2", "ok", t0, t0 + 60.5, 2, 0.75, None, None, {"trials": 3}))
    ledger.record_run(OptimizerRun("r0", "other", "GEPA", "error", t0 - 10, t0 - 5, error_type="ValueError"))
    assert [r.id for r in ledger.runs()] == ["r0", "r1"]
    (stored,) = ledger.runs(agent="bot")
    assert (stored.outcome, stored.ended_at, stored.candidates, stored.best_score) == ("ok", t0 + 60.5, 2, 0.75)
    assert stored.attributes == {"trials": 3} and ledger.runs(since=t0 + 1) == [] and len(ledger.runs(limit=1)) == 1
    ledger.record_candidate("r1", 1, 0.75, "b" * 32, {"note": "x"})
    ledger.record_candidate("r1", 0, None)
    ledger.record_candidate("r1", 1, 0.8, "c" * 32)  # re-evaluated: replaced
    assert ledger.candidates("r1") == [{"index": 0, "score": None, "revision_id": None},
                                       {"index": 1, "score": 0.8, "revision_id": "c" * 32}]
    ledger.record_revisions({fingerprint("p1"): "p1", "d" * 16: {"components": {"x": fingerprint("p1")}}})
    ledger.record_revisions({fingerprint("p1"): "p1"})  # already stored (a retry, another candidate): no-op
    ledger.record_revisions({})
    assert ledger.revision(fingerprint("p1")).state == "p1"
    assert ledger.revision("d" * 8).state == {"components": {"x": fingerprint("p1")}}
    alarm = Alarm("al1", "bot", "output_chars", 1.5, t0 + 70, "ch1", 120, "t" * 32, "s" * 16, {"stat": 2.0})
    ledger.record_alarm(alarm)
    ledger.record_alarm(alarm)  # a retried write stores it once
    ledger.record_alarm(Alarm("al2", "other", "refusal", 1.1, t0 + 80))
    assert ledger.alarms(agent="bot") == [alarm]
    assert [a.id for a in ledger.alarms(since=t0 + 75)] == ["al2"] and [a.id for a in ledger.alarms(limit=1)] == ["al2"]
    w1 = CallWindow("bot", t0, t0 + 60, 10, 1, 2.5, 1234.0, 9, 100, 2_300_000_000, 1, 0, 9, {"search": 3},
                    {"score": [4.0, 3.2]}, 4242)
    w2 = CallWindow("bot", t0 + 60, t0 + 120, 5, 0, 1.0, 99.0, 5, 0, 0, 0, 0, 0, {}, {}, 4242)
    ledger.record_window(w2)
    ledger.record_window(w1)
    assert ledger.windows(agent="bot") == [w1, w2]
    assert ledger.windows(since=t0 + 30) == [w2] and ledger.windows(until=t0 + 30) == [w1]
    first = ledger.record_command("bot", "accept", "looks fine")
    second = ledger.record_command("*", "reset")
    assert second > first
    assert [(c[0], c[1], c[2]) for c in ledger.commands()] == [(first, "bot", "accept"), (second, "*", "reset")]
    assert [c[0] for c in ledger.commands(after=first)] == [second]
    assert ledger.commands(since=time.time() + 60) == []


def test_many_windows_are_written_in_one_go_and_read_back_in_order(ledger_url) -> None:
    """``record_windows``: 123 windows (more than one multi-row INSERT holds: 50) in one transaction, each read
    back whole, in time order; an empty list writes nothing."""
    from driftwatch.windows import CallWindow

    ledger = open_ledger(ledger_url)
    try:
        t0 = time.time() - 3600
        windows = [CallWindow("bot", t0 + i, t0 + i + 1, i + 1, i % 2, 0.5 * i, 10.0 * i, i, 3 * i, 4 * i, i % 3,
                              i % 5, i, {"search": i} if i % 7 == 0 else {}, {"score": [float(i), 1.0]}, 4242)
                   for i in range(123)]
        ledger.record_windows(windows)
        ledger.record_windows([])
        assert ledger.windows(agent="bot") == windows
    finally:
        ledger.close()


def test_drift_evidence_is_replaced_per_replica(ledger_url) -> None:
    """Fleet pooling: each replica's evidence for an agent's anchor is one row, replaced at every poll."""
    ledger = open_ledger(ledger_url)
    ledger.record_evidence("bot", "prompt@abc#0", "r1", 1.0, {"calls": 10, "cusum": {"refusal/1": -0.5}})
    ledger.record_evidence("bot", "prompt@abc#0", "r2", 1.5, {"calls": 7})
    ledger.record_evidence("bot", "prompt@abc#0", "r1", 2.0, {"calls": 25, "cusum": {"refusal/1": 0.25}})
    ledger.record_evidence("bot", "prompt@def#0", "r1", 2.0, {"calls": 1})
    ledger.record_evidence("other", "prompt@abc#0", "r1", 2.0, {"calls": 2})
    assert ledger.evidence("bot", "prompt@abc#0") == {"r1": {"calls": 25, "cusum": {"refusal/1": 0.25}},
                                                     "r2": {"calls": 7}}
    assert ledger.evidence("bot", "none") == {}


def test_read_only_ledger_refuses_writes(ledger_url) -> None:
    """readonly=True: the API refuses writes with a one-line error, and so does the session itself."""
    ledger = open_ledger(ledger_url)
    ledger.record_change(_change("a", "p", None, "v1"))
    ledger.close()
    ro = open_ledger(ledger_url, readonly=True)
    assert len(ro.changes(baselines=True)) == 1
    for write in (lambda: ro.record_change(_change("a", "p", "v1", "v2")), lambda: ro.record_command("a", "accept")):
        with pytest.raises(LedgerError, match=r"opened read-only$"):
            write()
    with pytest.raises(LedgerError, match=r"read-only|readonly"):
        ro._read("INSERT INTO drift_commands (agent, action, ts, note) VALUES ('a', 'reset', 0, '')")
    assert ro.commands() == []


def test_a_retried_change_is_stored_once(ledger_url) -> None:
    """Writing the same change twice (a retry after a lost COMMIT acknowledgement) stores it once."""
    ledger = open_ledger(ledger_url)
    change = _change("a", "p", "v1", "v2")
    ledger.record_change(change)
    ledger.record_change(change)
    assert [c.id for c in ledger.changes()] == [change.id]


def test_refused_changes_keep_the_head_and_carry_their_status(ledger_url) -> None:
    """A blocked or held change is stored with its status and revision but leaves the component's head."""
    from dataclasses import replace

    ledger = open_ledger(ledger_url)
    ledger.record_change(_change("a", "p", None, "v1"))
    blocked = replace(_change("a", "p", "v1", "v2"), status="blocked", attributes={"guard_reason": "frozen"})
    held = replace(_change("a", "p", "v1", "v3"), status="held")
    applied = _change("a", "q", None, "w1")
    for change in (blocked, held, applied):
        ledger.record_change(change)
    assert ledger.head("a", "p") == fingerprint("v1")  # positive control below: an applied change moves its head
    assert ledger.head("a", "q") == fingerprint("w1")
    assert ledger.change(blocked.id).status == "blocked"
    assert ledger.change(blocked.id).attributes == {"guard_reason": "frozen"}
    assert ledger.revision(fingerprint("v2")).state == "v2"  # the refused revision is kept, for show and approve
    assert [c.id for c in ledger.changes(status="held")] == [held.id]
    assert [c.status for c in ledger.changes(agent="a", component="p")] == ["blocked", "held"]


def test_guard_actions_state_and_updates(ledger_url) -> None:
    """Guard actions (idempotent), guard state rows (upsert, delete), and one command's update in one transaction."""
    from dataclasses import replace

    from driftwatch.guardrails.records import GuardAction, GuardUpdate, StateRow

    ledger = open_ledger(ledger_url)
    t0 = 1_700_000_000.5
    action = GuardAction("g1", "bot", "blocked", t0, "p", "c1", "r" * 32, "the agent is frozen", "vm:1")
    ledger.record_guard_action(action)
    ledger.record_guard_action(action)  # a retried write stores it once
    ledger.record_guard_action(GuardAction("g2", "other", "frozen", t0 + 5))
    assert ledger.guard_actions(agent="bot") == [action]
    assert [a.id for a in ledger.guard_actions(since=t0 + 1)] == ["g2"]
    assert [a.id for a in ledger.guard_actions(limit=1)] == ["g2"]

    ledger.record_guard_state(put=[StateRow("bot", "frozen", note="by cli", timestamp=t0),
                                   StateRow("bot", "rejected", "p", "x" * 32, "", t0),
                                   StateRow("other", "policy", note='{"on_alarm": "freeze"}', timestamp=t0)])
    ledger.record_guard_state(put=[StateRow("bot", "frozen", note="again", timestamp=t0 + 1)])  # an upsert
    assert [(r.what, r.note) for r in ledger.guard_state("bot")] == [("frozen", "again"), ("rejected", "")]
    assert {r.agent for r in ledger.guard_state()} == {"bot", "other"}
    ledger.record_guard_state(delete=[("bot", "frozen", None, None)])
    assert [r.what for r in ledger.guard_state("bot")] == ["rejected"]

    ledger.record_change(_change("bot", "p", None, "v1"))
    held = replace(_change("bot", "p", "v1", "v2"), status="held")
    ledger.record_change(held)
    rollback = replace(_change("bot", "q", None, "w1"), source="guard")
    update = GuardUpdate("bot", "approve", note='{"change": "x"}',
                         put=[StateRow("bot", "pin", "p", fingerprint("v2"), "approved", t0)],
                         delete=[("rejected", "p", None)], changes=[rollback],
                         statuses=[("p", fingerprint("v2"), "held", "approved")], heads=[("p", fingerprint("v2"))],
                         actions=[GuardAction("g3", "bot", "approved", t0 + 9, "p", held.id)])
    before = ledger.commands()
    cid = ledger.record_guard_update(update)
    assert [(c[0], c[1], c[2]) for c in ledger.commands()] == [*[(c[0], c[1], c[2]) for c in before],
                                                               (cid, "bot", "approve")]
    assert ledger.command_note(cid) == '{"change": "x"}'
    assert ledger.change(held.id).status == "approved"
    assert ledger.head("bot", "p") == fingerprint("v2") and ledger.head("bot", "q") == fingerprint("w1")
    assert [(r.what, r.component) for r in ledger.guard_state("bot")] == [("pin", "p")]
    assert [a.id for a in ledger.guard_actions(agent="bot")] == ["g1", "g3"]


def test_a_failed_guard_update_writes_nothing(ledger_url) -> None:
    """A command whose transaction fails half-way leaves no trace: no state, no action, no command queued."""
    from driftwatch.guardrails.records import GuardAction, GuardUpdate, StateRow

    ledger = open_ledger(ledger_url)
    good = StateRow("bot", "pin", "p", "r" * 32, "", 1.0)
    broken = StateRow(None, "pin", "q", "s" * 32, "", 1.0)  # type: ignore[arg-type]  # agent NOT NULL: fails mid-way
    update = GuardUpdate("bot", "rollback", put=[good, broken], actions=[GuardAction("g9", "bot", "rolled_back", 1.0)])
    with pytest.raises(LedgerError):
        ledger.record_guard_update(update)
    assert ledger.guard_state() == [] and ledger.guard_actions() == [] and ledger.commands() == []
    update.put = [good]  # positive control: the same update without the broken row is written whole
    cid = ledger.record_guard_update(update)
    assert ledger.guard_state() == [good] and [a.id for a in ledger.guard_actions()] == ["g9"]
    assert [c[0] for c in ledger.commands()] == [cid]
