"""Settings from arguments and DRIFTWATCH_* variables, and the driftwatch CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import driftwatch
from driftwatch.cli import main
from driftwatch.config import ConfigError, Settings
from driftwatch.testing import capture


def test_environment_then_arguments() -> None:
    """DRIFTWATCH_* variables override defaults, and configure() arguments override both."""
    env = {"DRIFTWATCH_LEDGER": "/tmp/x.db", "DRIFTWATCH_CAPTURE_CONTENT": "yes",
           "DRIFTWATCH_DRIFT_FALSE_ALARM_RATE": "1e-5", "DRIFTWATCH_METRICS_PORT": "9999"}
    s = Settings.from_env(env)
    assert (s.ledger, s.capture_content, s.drift_false_alarm_rate, s.metrics_port) == ("/tmp/x.db", True, 1e-5, 9999)
    s = Settings.from_env(env, capture_content=False, ledger=":memory:")
    assert (s.ledger, s.capture_content) == (":memory:", False)
    assert Settings.from_env({}).ledger == "driftwatch.db"


@pytest.mark.parametrize(("env", "message"), [
    ({"DRIFTWATCH_CAPTURE_CONTENT": "maybe"}, "DRIFTWATCH_CAPTURE_CONTENT='maybe': expected true or false"),
    ({"DRIFTWATCH_METRICS_PORT": "http"}, "DRIFTWATCH_METRICS_PORT='http': expected a whole number"),
    ({"DRIFTWATCH_METRICS_PORT": "70000"}, "DRIFTWATCH_METRICS_PORT='70000': expected a number from 1 to 65535"),
    ({"DRIFTWATCH_DRIFT_FALSE_ALARM_RATE": "2"}, "expected a rate between 0 and 1"),
])
def test_bad_environment_values_name_the_variable(env: dict, message: str) -> None:
    """A bad variable raises ConfigError with one line naming it."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_configure_arguments_name_the_setting() -> None:
    """configure() rejects unknown settings and wrong types with one line naming the setting."""
    with pytest.raises(ConfigError, match=r"^unknown driftwatch setting 'ledgr'; known settings: .*ledger"):
        driftwatch.configure(ledgr="x.db")
    with pytest.raises(ConfigError, match=r"^configure\(capture_content='no'\): expected True or False$"):
        driftwatch.configure(capture_content="no")
    with pytest.raises(ConfigError, match=r"^configure\(redact=3\): expected a function"):
        driftwatch.configure(redact=3)


def _populated(path: str) -> list[str]:
    with capture(ledger=path):
        for p in ("You are helpful.", "You are helpful. Be brief.", "You are terse."):
            driftwatch.track("bot", "system_prompt", p, kind="system_prompt", source="agent")
        driftwatch.track("other", "tools", {"tools": ["a"]})
        driftwatch.track("other", "tools", {"tools": ["a", "b"]}, kind="tools", source="MIPROv2")
    from driftwatch.ledger import open_ledger

    return [c.id for c in open_ledger(path).changes()]


def test_history_table_json_and_filters(ledger_url, capsys) -> None:
    """history prints a table, JSON with --json, and filters by agent and component."""
    path = ledger_url
    ids = _populated(path)
    assert main(["history", "--ledger", path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["TIME", "ID", "AGENT", "COMPONENT"]
    assert len(out) == 1 + 3
    assert [line.split()[2] for line in out[1:]] == [ids[0][:12], ids[1][:12], ids[2][:12]]
    assert main(["history", "--ledger", path, "--json", "--agent", "other", "--baselines"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["type"], r["kind"], r["source"]) for r in rows] == [("baseline", "custom", "runtime"),
                                                                   ("change", "tools", "MIPROv2")]
    assert main(["history", "--ledger", path, "--component", "nope"]) == 0
    assert capsys.readouterr().out.strip() == "no entries matching the filters"
    assert main(["history", "--ledger", path, "--since", "1h", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_show_prints_the_unified_diff(ledger_url, capsys) -> None:
    """show CHANGE_ID (or a prefix) prints the change and a unified diff of its revisions."""
    path = ledger_url
    ids = _populated(path)
    assert main(["show", ids[1][:8], "--ledger", path]) == 0
    out = capsys.readouterr().out
    assert f"change     {ids[1]}" in out
    assert "-You are helpful. Be brief.\n+You are terse.\n" in out


@pytest.mark.parametrize(("args", "message"), [
    (["show", "deadbeef"], "driftwatch: error: no change, optimizer run or alarm 'deadbeef' in {path}"),
    (["history", "--since", "yesterday"], "driftwatch: error: --since 'yesterday': expected a duration"),
    (["history", "--ledger", "{dir}/missing.db"], "driftwatch: error: no ledger at {dir}/missing.db"),
    (["history", "--ledger", "{dir}/junk.db"], "driftwatch: error: cannot open ledger {dir}/junk.db: file is not"),
])
def test_cli_errors_are_one_line_without_traceback(tmp_path, args: list[str], message: str) -> None:
    """Bad input to the CLI prints one error line and exits non-zero, with no traceback."""
    path = str(tmp_path / "dw.db")
    _populated(path)
    (tmp_path / "junk.db").write_text("garbage" * 200)
    args = [a.format(dir=tmp_path, path=path) for a in args]
    if "--ledger" not in args:
        args += ["--ledger", path]
    proc = subprocess.run([sys.executable, "-m", "driftwatch.cli", *args], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(message.format(dir=tmp_path, path=path))


def test_cli_bad_environment_value_is_one_line(tmp_path) -> None:
    """A bad DRIFTWATCH_* value seen by the CLI is reported in one line."""
    proc = subprocess.run([sys.executable, "-m", "driftwatch.cli", "history"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "DRIFTWATCH_LEDGER": str(tmp_path / "x.db"),
                               "DRIFTWATCH_CAPTURE_CONTENT": "perhaps"}, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == "driftwatch: error: DRIFTWATCH_CAPTURE_CONTENT='perhaps': expected true or false\n"


def test_show_an_alarm_and_an_optimizer_run(ledger_url, capsys) -> None:
    """show ALARM_ID prints the alarm and its anchor change (and how to accept); show RUN_ID the run, its
    candidates (a candidate without a stored revision is not restorable) and its changes."""
    import time

    from driftwatch.alarm import Alarm
    from driftwatch.change import new_id

    path = ledger_url
    with capture(ledger=path) as cap:
        scope = cap.runtime.begin_run("bot", "COPRO")
        run = scope.run
        driftwatch.track("bot", "system_prompt", "You are helpful.")
        scope.candidate(0.5, None)
        scope.candidate(0.75, "f" * 32)
        scope.finish()
        change = driftwatch.track("bot", "system_prompt", "You are terse.", kind="system_prompt", source="agent")
        alarm = Alarm(id=new_id(), agent="bot", signal="output_chars", score=1.25, timestamp=time.time(),
                      anchor_change_id=change.id, calls_since_anchor=42,
                      attributes={"reference": "before_change", "reference_calls": 1000})
        cap.runtime.record_alarm(alarm, change)
    assert main(["show", alarm.id[:10], "--ledger", path]) == 0
    out = capsys.readouterr().out
    assert f"drift alarm      {alarm.id}" in out and "signal           output_chars" in out
    assert f"anchor           change {change.id} (system_prompt, system_prompt, by agent)" in out
    assert "calls            42 after the anchor" in out and "reference calls  1000" in out
    assert f"driftwatch show {change.id[:12]}" in out and "driftwatch accept bot" in out
    assert main(["show", run.id[:10], "--ledger", path]) == 0
    out = capsys.readouterr().out
    assert f"optimizer run  {run.id}" in out and "candidates     2, best score 0.750" in out
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert rows == [["0", "0.500", "-", "no"], ["1", "0.750", "f" * 16, "no"]]
    assert "restore(program" not in out  # nothing restorable: no hint
