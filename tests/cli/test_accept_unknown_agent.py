"""`driftwatch accept AGENT` / `reset AGENT` for an agent the ledger does not know (issue 12 item 9): nothing is
queued, one line on stderr names the agents it knows, exit 1; a known agent is queued as before."""

from __future__ import annotations

from pathlib import Path

import pytest

import driftwatch
from driftwatch.cli import main
from driftwatch.ledger import open_ledger
from driftwatch.testing import capture


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    path = str(tmp_path / "dw.db")
    with capture(ledger=path):
        driftwatch.track("support-bot", "system_prompt", "You help.", kind="system_prompt")
    return path


@pytest.mark.parametrize("command", ["accept", "reset"])
def test_an_unknown_agent_is_refused_in_one_line(ledger: str, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "support-bto", "--ledger", ledger]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "no agent 'support-bto' in the ledger" in err and "(agents: support-bot)" in err and "nothing queued" in err
    assert open_ledger(ledger, readonly=True).commands() == []


def test_a_known_agent_and_all_agents_are_queued(ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The positive control: the agent the ledger knows (and --all) gets its command queued, exit 0."""
    assert main(["accept", "support-bot", "--ledger", ledger]) == 0
    assert main(["reset", "--all", "--ledger", ledger]) == 0
    assert "accept queued for agent support-bot" in capsys.readouterr().out
    assert [(c[1], c[2]) for c in open_ledger(ledger, readonly=True).commands()] == [("support-bot", "accept"),
                                                                                    ("*", "reset")]


def test_an_agent_known_only_by_its_calls_is_queued(tmp_path: Path) -> None:
    """A plain watched function that never tracked a change has call windows in the ledger: it is known."""
    path = str(tmp_path / "calls.db")
    with capture(ledger=path) as cap:
        @driftwatch.watch(agent="calls-only")
        def run() -> str:
            return "ok"

        run()
        cap.runtime.windows.flush()
    assert main(["accept", "calls-only", "--ledger", path]) == 0
