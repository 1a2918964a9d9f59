"""Issue 11, item 11 (part): ``driftwatch show`` takes an id or its first characters; ``%`` and ``_`` (which SQL's
``LIKE`` reads as wildcards, and which main silently dropped) are refused with one line, exit 2 like every other
usage error."""

from __future__ import annotations

import pytest

import driftwatch
from driftwatch.cli import main
from driftwatch.cli._common import EXIT_USAGE
from driftwatch.ledger import open_ledger
from driftwatch.testing import capture


@pytest.fixture
def ledger_with_a_change(tmp_path) -> tuple[str, str]:
    path = str(tmp_path / "dw.db")
    with capture(ledger=path):
        driftwatch.track("bot", "system_prompt", "be brief", kind="system_prompt")
        change = driftwatch.track("bot", "system_prompt", "be thorough", kind="system_prompt")
    return path, change.id


@pytest.mark.parametrize("wild", ["%", "_"])
def test_show_refuses_like_wildcards(ledger_with_a_change, capsys, wild: str) -> None:
    """Reproduction: `show 3f2a%9` showed the change whose id starts with 3f2a9 (the % was dropped). Now: one line
    naming the argument, exit 2."""
    path, change_id = ledger_with_a_change
    wildcard_id = change_id[:4] + wild + change_id[4:8]
    with pytest.raises(SystemExit) as info:
        main(["show", wildcard_id, "--ledger", path])
    assert info.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("driftwatch show: error: argument ID: ")
    assert f"{wildcard_id!r} is not an id" in err


def test_show_still_takes_a_prefix(ledger_with_a_change, capsys) -> None:
    """Positive control: the same characters without the wildcard show the change."""
    path, change_id = ledger_with_a_change
    assert main(["show", change_id[:8], "--ledger", path]) == 0
    assert "+be thorough" in capsys.readouterr().out


def test_the_ledger_never_matches_a_wildcard(ledger_with_a_change) -> None:
    """The library too: change()/run()/alarm() refuse such an id (KeyError), revision() finds nothing."""
    path, change_id = ledger_with_a_change
    led = open_ledger(path, readonly=True)
    try:
        with pytest.raises(KeyError, match="is not an id"):
            led.change(change_id[:4] + "%")
        assert led.revision(led.change(change_id).after_id[:6] + "_") is None
        assert led.change(change_id[:6]).id == change_id
    finally:
        led.close()
