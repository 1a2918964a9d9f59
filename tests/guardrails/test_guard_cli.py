"""`driftwatch freeze|unfreeze|rollback|approve|reject` on bad input: one line on stderr, exit status 1, nothing
written to the ledger. The commands run as a user runs them (subprocesses of the real CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import driftwatch
from driftwatch.alarm import Alarm
from driftwatch.ledger import open_ledger
from driftwatch.revision import fingerprint
from driftwatch.testing import capture
from tests.helpers.ledger_snapshot import snapshot


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two agents: bot (a prompt changed twice, one held tools change, an alarm without anchor) and other-bot."""
    path = tmp_path_factory.mktemp("guard-cli") / "ledger.db"
    with capture(ledger=str(path), drift=False) as cap:
        driftwatch.configure_agent("bot", approve=["tools"])
        driftwatch.track("bot", "system_prompt", "p1")
        driftwatch.track("bot", "system_prompt", "p2")
        driftwatch.track("bot", "tools", ["a"], kind="tools")
        driftwatch.track("bot", "tools", ["a", "b"], kind="tools")
        driftwatch.track("other-bot", "system_prompt", "theirs")
        cap.runtime.ledger.record_alarm(Alarm("al0", "bot", "refusal", 1.2, 1_700_000_000.0))
    return path


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driftwatch", *argv], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize(("argv", "message"), [
    (["rollback", "bot", "--to", "ffffffffffff"], "rollback --to 'ffffffffffff': no revision with that id"),
    (["rollback", "bot", "--to", fingerprint("theirs")[:12]],
     f"rollback --to {fingerprint('theirs')[:12]}: that revision belongs to agent other-bot, not 'bot'"),
    (["rollback", "bot", "--to", fingerprint("p1")[:12], "--component", "tools"],
     f"rollback --component 'tools': revision {fingerprint('p1')[:12]} is a revision of system_prompt"),
    (["rollback", "bot"], "drift alarm al0 of 'bot' is anchored at no change: name a revision with --to"),
    (["rollback", "nobody"], "no agent 'nobody' in ledger"),
    (["rollback", "other-bot"], "agent 'other-bot' has no drift alarm to roll back from: name a revision with --to"),
    (["approve", "ffff0000"], "approve: no change 'ffff0000' in"),
    (["approve", "ab"], "approve: change id 'ab' is too short: give at least 4 characters"),
    (["unfreeze", "bot"], "agent 'bot' is not frozen in"),
    (["freeze", "nobdy"], "no agent 'nobdy' in ledger"),
])
def test_bad_input_is_one_line_and_changes_nothing(ledger: Path, argv: list[str], message: str) -> None:
    """Unknown or foreign revisions, unknown agents or changes, an unfrozen agent: one line, exit 1, nothing written."""
    led = open_ledger(str(ledger))
    before = snapshot(led)
    proc = _run(*argv, "--ledger", str(ledger))
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith(f"driftwatch: error: {message}") and proc.stderr.count("\n") == 1, proc.stderr
    assert snapshot(led) == before


def test_approving_or_rejecting_a_change_that_is_not_held(ledger: Path) -> None:
    """approve/reject of an applied change: one line naming its status; nothing written. A held one is accepted."""
    led = open_ledger(str(ledger))
    applied = next(c for c in led.changes() if c.component == "system_prompt")
    held = next(c for c in led.changes() if c.status == "held")
    before = snapshot(led)
    for verb in ("approve", "reject"):
        proc = _run(verb, applied.id[:10], "--ledger", str(ledger))
        assert proc.returncode == 1
        assert proc.stderr == (f"driftwatch: error: {verb} {applied.id[:12]}: that change is not held (its status is "
                               f"applied): nothing to {verb}\n")
    assert snapshot(led) == before
    proc = _run("approve", held.id[:10], "--ledger", str(ledger))  # positive control
    assert proc.returncode == 0, proc.stderr
    assert led.change(held.id).status == "approved"
    again = _run("approve", held.id[:10], "--ledger", str(ledger))
    assert again.returncode == 1 and "its status is approved" in again.stderr


def test_a_missing_ledger_is_not_created(tmp_path: Path) -> None:
    """A typo in --ledger ends in one line; no empty ledger appears where the command would be queued."""
    proc = _run("freeze", "bot", "--ledger", str(tmp_path / "typo.db"))
    assert proc.returncode == 1 and "no ledger at" in proc.stderr
    assert not (tmp_path / "typo.db").exists()


def test_freezing_twice_says_so(tmp_path: Path) -> None:
    """A second freeze queues nothing and says the agent is already frozen."""
    path = tmp_path / "l.db"
    with capture(ledger=str(path), drift=False):
        driftwatch.track("bot", "p", "v1")
    assert _run("freeze", "bot", "--ledger", str(path)).returncode == 0
    proc = _run("freeze", "bot", "--ledger", str(path))
    assert (proc.returncode, proc.stdout) == (0, "agent bot is already frozen\n")
    assert [c[2] for c in open_ledger(str(path)).commands()] == ["freeze"]
