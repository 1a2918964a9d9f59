"""Issue 11, items 6, 9 and 10, and the faults of the ledger file the issue did not list: a ledger deleted or
replaced while the agent runs, a read-only user, private files, a missing directory, a corrupt file, a full
disk. Each asserts the host's result, its wait, what was recorded and what was counted."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator

import pytest

import driftwatch
from driftwatch.config import ConfigError, Settings
from driftwatch.ledger import open_ledger
from driftwatch.testing import capture
from tests.helpers.ledger_faults import as_nobody, small_filesystem

PY = sys.executable
WAIT_S = Settings().ledger_wait_s
BOUND = WAIT_S + 0.45  # the wait plus slack for a loaded machine (see test_ledger_wait.py)


def _track(agent: str, text: str) -> float:
    started = time.perf_counter()
    driftwatch.track(agent, "prompt", text)
    return time.perf_counter() - started


def _states(path: str) -> list[str]:
    led = open_ledger(path, readonly=True)
    try:
        return [led.change(c.id).after_state for c in led.changes(baselines=True)]
    finally:
        led.close()


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- item 6: deleted while in use ------------------------------------------------------------------

@pytest.mark.parametrize("removed", [("",), ("", "-wal", "-shm")], ids=["ledger", "ledger-wal-shm"])
def test_a_ledger_deleted_while_the_agent_runs_is_noticed_and_reopened(tmp_path, caplog, removed) -> None:
    """Reproduction: `rm driftwatch.db` while the agent runs (on main every later change went into the deleted
    file, nothing counted). Now the next write notices (device and inode), counts and logs it, and the changes
    from then on are in a new ledger at the path; the host's calls return within the bound."""
    path = str(tmp_path / "dw.db")
    caplog.set_level(logging.WARNING, logger="driftwatch")
    with capture(ledger=path, ledger_wait_s=WAIT_S) as cap:
        times = [_track("bot", "v1"), _track("bot", "v2")]
        assert cap.runtime.ledger.flush(timeout=30) and _states(path) == ["v1", "v2"]
        for suffix in removed:
            os.unlink(path + suffix)
        times += [_track("bot", "v3"), _track("bot", "v4")]
        assert cap.runtime.ledger.flush(timeout=30) and cap.runtime.pending_writes == 0
        assert max(times) < BOUND, times
        assert cap.runtime.error_counts["ledger"] == 1
        assert cap.value("driftwatch_changes_total", agent="bot", component="prompt", kind="custom",
                         source="runtime") == 3
    assert _states(path) == ["v3", "v4"]  # the new file: every change made after the deletion
    assert any("was deleted while in use" in r.getMessage() for r in caplog.records)


def test_a_ledger_replaced_by_a_directory_keeps_the_writes_until_it_is_a_file_again(tmp_path) -> None:
    """The ledger's path becomes a directory: counted, the changes are kept; when the path is free again they
    are written there, in order."""
    path = str(tmp_path / "dw.db")
    with capture(ledger=path, ledger_wait_s=WAIT_S) as cap:
        _track("bot", "v1")
        assert cap.runtime.ledger.flush(timeout=30)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)
        os.mkdir(path)
        times = [_track("bot", "v2"), _track("bot", "v3")]
        assert max(times) < BOUND, times
        deadline = time.monotonic() + 30
        while cap.runtime.error_counts.get("ledger", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # replaced (one), then "it is a directory" at the retries
        assert cap.runtime.error_counts["ledger"] >= 2 and cap.runtime.pending_writes == 2
        os.rmdir(path)
        assert cap.runtime.ledger.flush(timeout=30) and cap.runtime.pending_writes == 0
    assert _states(path) == ["v2", "v3"]


# -- faults of the file the issue did not list -----------------------------------------------------

def test_a_ledger_whose_directory_does_not_exist_yet(tmp_path) -> None:
    """The directory is missing at start (a volume not mounted yet): calls return within the bound, the writes
    are kept and counted, and written in order once the directory appears."""
    path = str(tmp_path / "later" / "dw.db")
    with capture(ledger=path, ledger_wait_s=WAIT_S) as cap:
        times = [_track("bot", f"v{i}") for i in range(1, 4)]
        assert max(times) < BOUND, times
        assert cap.runtime.pending_writes == 3 and cap.runtime.error_counts["ledger"] >= 1
        assert cap.runtime.error_counts["ledger_wait"] >= 2
        os.mkdir(tmp_path / "later")
        assert cap.runtime.ledger.flush(timeout=30) and cap.runtime.pending_writes == 0
    assert _states(path) == ["v1", "v2", "v3"]


def test_a_corrupt_ledger_file_is_left_alone(tmp_path) -> None:
    """The file is not an SQLite database (garbage): calls return within the bound, the failure is counted,
    the writes are kept (bounded) and the file is not touched."""
    path = tmp_path / "dw.db"
    garbage = os.urandom(8192)
    path.write_bytes(garbage)
    with capture(ledger=str(path), ledger_wait_s=WAIT_S, ledger_drain_s=0.2) as cap:
        times = [_track("bot", f"v{i}") for i in range(1, 4)]
        assert max(times) < BOUND, times
        assert cap.runtime.pending_writes == 3
        assert cap.runtime.error_counts["ledger"] >= 1
        assert cap.value("driftwatch_changes_total", agent="bot", component="prompt", kind="custom",
                         source="runtime") == 2
    assert path.read_bytes() == garbage and not os.path.exists(str(path) + "-wal")


def test_a_full_disk(tmp_path) -> None:
    """The ledger's filesystem fills up (a 512 KiB tmpfs): calls return within the bound, "database or disk is
    full" is counted, the writes are kept, and written in order once there is room again."""
    try:
        fs = small_filesystem(512)
        where = fs.__enter__()
    except OSError as exc:
        pytest.skip(f"a small filesystem needs root and mount(2) here: {exc}")
    try:
        path = os.path.join(where, "dw.db")
        big = "x" * 20_000
        with capture(ledger=path, ledger_wait_s=WAIT_S) as cap:
            _track("bot", f"v0 {big}")
            assert cap.runtime.ledger.flush(timeout=30) and cap.runtime.pending_writes == 0
            filler = os.path.join(where, "filler")
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            with contextlib.suppress(OSError):  # until the filesystem is full
                while True:
                    os.write(fd, b"\0" * 4096)
            os.close(fd)
            times = [_track("bot", f"v{i} {big}") for i in range(1, 4)]
            assert max(times) < BOUND, times
            deadline = time.monotonic() + 30
            while cap.runtime.error_counts.get("ledger", 0) < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert cap.runtime.pending_writes == 3
            os.unlink(filler)
            assert cap.runtime.ledger.flush(timeout=30) and cap.runtime.pending_writes == 0
            assert [s.split(" ")[0] for s in _states(path)] == ["v0", "v1", "v2", "v3"]
            assert cap.runtime.error_counts["ledger"] >= 1
    finally:
        fs.__exit__(None, None, None)


# -- item 10: private files ------------------------------------------------------------------------

@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_files_driftwatch_creates_are_private_under_the_usual_umask(tmp_path) -> None:
    """Reproduction: under umask 022 the ledger, its -wal and -shm, the audit log and the report were created
    0644 (world-readable prompts). Now 0600."""
    ledger, audit, report = str(tmp_path / "dw.db"), str(tmp_path / "audit.jsonl"), str(tmp_path / "report.html")
    with _umask(0o022):
        with capture(ledger=ledger, audit_logger=None, audit_log=audit) as cap:
            driftwatch.track("bot", "prompt", "You are a secret prompt.")
            driftwatch.track("bot", "prompt", "You are another secret prompt.")
            assert cap.runtime.ledger.flush(timeout=30)
            modes = {name: _mode(p) for name, p in
                     (("ledger", ledger), ("-wal", ledger + "-wal"), ("-shm", ledger + "-shm"), ("audit", audit))}
        out = subprocess.run([PY, "-m", "driftwatch", "report", "--ledger", ledger, "--out", report],
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    modes["report"] = _mode(report)
    assert modes == dict.fromkeys(("ledger", "-wal", "-shm", "audit", "report"), 0o600)


def test_file_mode_setting_widens_the_mode(tmp_path, monkeypatch) -> None:
    """DRIFTWATCH_FILE_MODE=0640 (a group of readers): files are created 0640, whatever the umask."""
    ledger, report = str(tmp_path / "dw.db"), str(tmp_path / "report.html")
    monkeypatch.setenv("DRIFTWATCH_FILE_MODE", "0640")
    with _umask(0o077):
        with capture(ledger=ledger) as cap:
            driftwatch.track("bot", "prompt", "one")
            assert cap.runtime.ledger.flush(timeout=30)
            assert (_mode(ledger), _mode(ledger + "-wal"), _mode(ledger + "-shm")) == (0o640, 0o640, 0o640)
        out = subprocess.run([PY, "-m", "driftwatch", "report", "--ledger", ledger, "--out", report],
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert _mode(report) == 0o640


def test_an_existing_file_keeps_its_mode(tmp_path) -> None:
    """driftwatch never changes the mode of a file it did not create (an audit log the operator made 0644)."""
    audit = tmp_path / "audit.jsonl"
    audit.write_text("")
    audit.chmod(0o644)
    with capture(audit_logger=None, audit_log=str(audit)):
        driftwatch.track("bot", "prompt", "one")
    assert _mode(str(audit)) == 0o644 and "driftwatch.baseline" in audit.read_text()


@pytest.mark.parametrize("value", ["0777", "0400", "rw-r--r--", "0o1600", "9"])
def test_a_bad_file_mode_is_one_line_naming_the_variable(value: str, tmp_path) -> None:
    """A mode that is not octal, lacks owner read/write, or has execute bits: one line naming the variable, from
    the CLI (exit 1) and from configure()."""
    env = {**os.environ, "DRIFTWATCH_FILE_MODE": value}
    out = subprocess.run([PY, "-m", "driftwatch", "history", "--ledger", str(tmp_path / "none.db")],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"driftwatch: error: DRIFTWATCH_FILE_MODE={value!r}: expected an octal file mode")
    with pytest.raises(ConfigError, match=r"^configure\(file_mode\)="):
        driftwatch.configure(file_mode=value, ledger=":memory:")


# -- item 9: a user who may only read --------------------------------------------------------------

@pytest.fixture
def shared_dir() -> Iterator[str]:
    """A directory every user can enter and read but only root can write (the ledger's usual place), and a
    world-writable one beside it for the report."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("switching to an unprivileged user needs root and setpriv (tests run as root in CI)")
    where = tempfile.mkdtemp(prefix="driftwatch-ro-", dir="/tmp")
    os.chmod(where, 0o755)
    os.mkdir(os.path.join(where, "out"))
    os.chmod(os.path.join(where, "out"), 0o1777)
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _populate(path: str) -> list[str]:
    env = {**os.environ, "DRIFTWATCH_FILE_MODE": "0644"}  # the operator let others read it
    script = textwrap.dedent(f"""
        import driftwatch
        driftwatch.configure(ledger={path!r}, tracing=False, metrics=False, audit=False)
        for text in ("be brief", "be thorough", "be kind"):
            change = driftwatch.track("bot", "system_prompt", text, kind="system_prompt")
            print(change.id if change is not None else "baseline")
    """)
    out = subprocess.run([PY, "-c", script], check=True, timeout=60, env=env, capture_output=True, text=True)
    return out.stdout.split()[1:]  # the changes' ids (not read back here: a reader would leave a -shm behind)


def _read_as_nobody(path: str, where: str, change_id: str) -> dict[str, subprocess.CompletedProcess[str]]:
    cli = [PY, "-m", "driftwatch"]
    return {
        "history": as_nobody([*cli, "history", "--ledger", path], cwd=where),
        "show": as_nobody([*cli, "show", change_id[:8], "--ledger", path], cwd=where),
        "report": as_nobody([*cli, "report", "--ledger", path, "--out", os.path.join(where, "out", "r.html")],
                            cwd=where),
    }


def test_a_read_only_user_reads_a_ledger_nobody_is_writing(shared_dir: str) -> None:
    """Reproduction: history/show/report as a user who may only read the file failed with "attempt to write a
    readonly database" (WAL mode needs the -shm, which it cannot create). Now they work (the log is empty: the
    file is read as immutable)."""
    path = os.path.join(shared_dir, "dw.db")
    ids = _populate(path)
    assert not os.path.exists(path + "-shm")  # the writer closed: nothing left but the file
    results = _read_as_nobody(path, shared_dir, ids[-1])
    for name, out in results.items():
        assert out.returncode == 0, (name, out.stderr)
    assert ids[-1][:12] in results["history"].stdout
    assert "+be kind" in results["show"].stdout
    assert os.path.getsize(os.path.join(shared_dir, "out", "r.html")) > 0
    assert sorted(os.listdir(shared_dir)) == ["dw.db", "out"]  # nothing written beside the ledger


def test_a_read_only_user_reads_while_an_agent_writes(shared_dir: str) -> None:
    """The agent is running (its -wal holds changes not yet in the main file, its -shm is readable): the reader
    sees the latest change."""
    path = os.path.join(shared_dir, "dw.db")
    _populate(path)
    env = {**os.environ, "DRIFTWATCH_FILE_MODE": "0644"}
    script = textwrap.dedent(f"""
        import sys, driftwatch
        rt = driftwatch.configure(ledger={path!r}, tracing=False, metrics=False, audit=False)
        change = driftwatch.track("bot", "system_prompt", "be very kind", kind="system_prompt")
        assert rt.pending_writes == 0
        sys.stdout.write(change.id + "\\n"); sys.stdout.flush()
        sys.stdin.readline()
    """)
    agent = subprocess.Popen([PY, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        latest = agent.stdout.readline().strip()
        assert os.path.getsize(path + "-wal") > 0
        results = _read_as_nobody(path, shared_dir, latest)
        for name, out in results.items():
            assert out.returncode == 0, (name, out.stderr)
        assert "+be very kind" in results["show"].stdout
    finally:
        agent.stdin.close()
        agent.wait(timeout=30)
        agent.stdout.close()


def test_a_private_ledger_stays_private_and_an_unreadable_log_is_one_clear_line(shared_dir: str) -> None:
    """Negative controls: the default 0600 ledger cannot be read by another user (one line, exit 1); a log with
    entries whose -shm the reader may not open gives one line naming the file to make readable."""
    path = os.path.join(shared_dir, "dw.db")
    _populate(path)
    os.chmod(path, 0o600)
    out = as_nobody([PY, "-m", "driftwatch", "history", "--ledger", path], cwd=shared_dir)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    os.chmod(path, 0o644)
    conn = sqlite3.connect(path, isolation_level=None)  # a writer holding the log open, with an entry in it
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("INSERT INTO drift_commands (agent, action, ts) VALUES ('bot', 'accept', 0)")
    try:
        os.chmod(path + "-shm", 0o600)
        out = as_nobody([PY, "-m", "driftwatch", "history", "--ledger", path], cwd=shared_dir)
        assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
        assert f"{path}-shm" in out.stderr and "read access" in out.stderr
    finally:
        conn.close()


def test_a_second_ledger_object_in_a_process_keeps_the_first_ones_locks(tmp_path) -> None:
    """Opening the ledger again in the same process (a CLI helper, a test) must not open the file outside SQLite:
    closing any descriptor of a file drops every POSIX lock the process holds on it, and another process then
    takes itself for the last connection and deletes the -wal and -shm under the open ones (their reads go
    stale). The files stay, and the first connection sees the other process's write."""
    path = str(tmp_path / "dw.db")
    with capture(ledger=path):
        driftwatch.track("bot", "prompt", "one")
    first = open_ledger(path)
    second = open_ledger(path)
    try:
        assert len(first.changes(baselines=True)) == len(second.changes(baselines=True)) == 1
        script = (f"import driftwatch\ndriftwatch.configure(ledger={path!r}, tracing=False)\n"
                  "driftwatch.track('bot', 'prompt', 'two')\n")
        subprocess.run([PY, "-c", script], check=True, timeout=60)
        assert os.path.exists(path + "-wal") and os.path.exists(path + "-shm")
        assert len(first.changes(baselines=True)) == 2
    finally:
        first.close()
        second.close()
