"""The guard in a watched process, framework-free (driftwatch.track): freeze, rate limit, hold and approve or reject,
rollback, what each records (ledger rows, metrics, span events, audit events, history lines), and what a process
does when the ledger is unreachable. Commands come from the real CLI, on an SQLite file both sides share."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import driftwatch
from driftwatch.cli import main as cli
from driftwatch.revision import fingerprint
from driftwatch.testing import Captured, capture

AGENT = "bot"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Captured]:
    """A runtime on an SQLite file; the guard polls only when a test says so (``cap.runtime.guard.poll()``)."""
    with capture(ledger=str(tmp_path / "ledger.db"), drift=False, drift_poll_s=3600) as cap:
        yield cap


def _cli(cap: Captured, *argv: str) -> int:
    return cli([*argv, "--ledger", cap.runtime.ledger.location])


def test_a_frozen_agent_keeps_its_revision_and_each_attempt_is_recorded(guarded: Captured, capsys) -> None:
    """After `driftwatch freeze`, each new state is a blocked change (ledger row, action, metric, span event, audit,
    history line), the head stays, and track(enforce=True) raises with the state to keep serving."""
    cap = guarded
    driftwatch.track(AGENT, "system_prompt", "Be helpful.")
    assert driftwatch.track(AGENT, "system_prompt", "Be helpful and brief.") is not None  # positive control
    assert _cli(cap, "freeze", AGENT, "--note", "incident 42") == 0
    assert "agent bot frozen (command" in capsys.readouterr().out
    cap.runtime.guard.poll()
    head = cap.ledger.head(AGENT, "system_prompt")

    blocked = driftwatch.track(AGENT, "system_prompt", "Answer in French.")
    with pytest.raises(driftwatch.ChangeBlocked) as info:
        driftwatch.track(AGENT, "system_prompt", "Answer in German.", enforce=True)
    with pytest.raises(driftwatch.ChangeBlocked):  # the same refused state again: refused again, not re-recorded
        driftwatch.track(AGENT, "system_prompt", "Answer in German.", enforce=True)

    assert blocked is not None and blocked.status == "blocked"
    assert info.value.serving == head and info.value.serving_state == "Be helpful and brief."
    assert "the agent is frozen" in str(info.value)
    assert cap.ledger.head(AGENT, "system_prompt") == head
    assert [c.status for c in cap.changes()] == ["applied", "blocked", "blocked"]
    actions = cap.ledger.guard_actions(agent=AGENT)
    assert [(a.action, a.reason) for a in actions] == [("frozen", "incident 42"), ("blocked", "the agent is frozen"),
                                                       ("blocked", "the agent is frozen")]
    assert actions[1].change_id == blocked.id and actions[1].revision_id == head
    assert cap.value("driftwatch_guard_actions_total", agent=AGENT, action="blocked") == 2
    assert cap.value("driftwatch_guard_frozen", agent=AGENT) == 1
    assert cap.value("driftwatch_changes_total", agent=AGENT, component="system_prompt", kind="custom",
                     source="runtime") == 1  # only the applied change counts as a change
    events = [e for s in cap.spans("driftwatch.change") for e in s.events if e.name == "driftwatch.guard"]
    assert [e.attributes["driftwatch.guard.action"] for e in events] == ["blocked", "blocked"]
    assert {e["event"] for e in cap.audit if e.get("action") == "blocked"} == {"driftwatch.guard"}

    capsys.readouterr()
    assert _cli(cap, "history", "--agent", AGENT) == 0
    out = capsys.readouterr().out
    assert "GUARD frozen" in out and out.count("GUARD blocked") == 2 and out.count("[BLOCKED]") == 2


def test_unfreeze_judges_the_agents_own_state_again(guarded: Captured) -> None:
    """After `driftwatch unfreeze`, the state the agent reported while frozen takes effect as a change."""
    cap = guarded
    driftwatch.track(AGENT, "system_prompt", "v1")
    _cli(cap, "freeze", AGENT)
    cap.runtime.guard.poll()
    driftwatch.track(AGENT, "system_prompt", "v2")
    assert driftwatch.track(AGENT, "system_prompt", "v2") is None  # still refused, recorded once
    _cli(cap, "unfreeze", AGENT)
    cap.runtime.guard.poll()
    change = driftwatch.track(AGENT, "system_prompt", "v2")
    assert change is not None and change.status == "applied" and change.before_id == fingerprint("v1")
    assert cap.ledger.head(AGENT, "system_prompt") == fingerprint("v2")
    assert cap.value("driftwatch_guard_frozen", agent=AGENT) == 0


def test_past_the_rate_limit_changes_are_blocked(guarded: Captured) -> None:
    """max_rate=2/hour: the third self-modification is blocked; changes of one optimizer run count once."""
    cap = guarded
    driftwatch.configure_agent(AGENT, max_rate="2/hour")
    rt = cap.runtime
    driftwatch.track(AGENT, "a", "a0")
    driftwatch.track(AGENT, "b", "b0")
    run = rt.begin_run(AGENT, "MIPROv2")
    assert run is not None
    first = rt.observe(AGENT, "a", "a1", source="MIPROv2", run_id=run.run.id)
    second = rt.observe(AGENT, "b", "b1", source="MIPROv2", run_id=run.run.id)
    run.finish()
    third = driftwatch.track(AGENT, "a", "a2")
    fourth = driftwatch.track(AGENT, "b", "b2")
    assert [c.status for c in (first, second, third, fourth)] == ["applied", "applied", "applied", "blocked"]
    assert fourth.attributes["guard_reason"] == "past the rate limit of 2/hour self-modifications"


def test_a_held_change_waits_for_approval(guarded: Captured, capsys) -> None:
    """approve=tools: a tools change is held (previous revision serves, held gauge 1) until `driftwatch approve`."""
    cap = guarded
    driftwatch.configure_agent(AGENT, approve=["tools"])
    driftwatch.track(AGENT, "tools", ["search"], kind="tools")
    held = driftwatch.track(AGENT, "tools", ["search", "refund"], kind="tools")
    other = driftwatch.track(AGENT, "system_prompt", "p1", kind="system_prompt")
    other = driftwatch.track(AGENT, "system_prompt", "p2", kind="system_prompt")  # not an approval kind
    assert held is not None and held.status == "held" and other.status == "applied"
    assert cap.ledger.head(AGENT, "tools") == fingerprint(["search"])
    assert cap.value("driftwatch_held_changes", agent=AGENT) == 1
    assert [c.id for c in cap.ledger.changes(status="held")] == [held.id]
    capsys.readouterr()
    assert _cli(cap, "show", held.id[:8]) == 0
    shown = capsys.readouterr().out
    assert "status     held (a tools change needs approval" in shown and f"driftwatch approve {held.id[:12]}" in shown

    assert _cli(cap, "approve", held.id[:8]) == 0
    cap.runtime.guard.poll()
    assert cap.ledger.change(held.id).status == "approved"
    assert cap.ledger.head(AGENT, "tools") == fingerprint(["search", "refund"])
    assert cap.value("driftwatch_held_changes", agent=AGENT) == 0
    assert cap.value("driftwatch_guard_actions_total", agent=AGENT, action="approved") == 1
    assert driftwatch.track(AGENT, "tools", ["search", "refund"], kind="tools") is None  # in effect: nothing new
    assert cap.runtime.agent_version(AGENT) is not None


def test_a_rejected_change_stays_refused(guarded: Captured) -> None:
    """`driftwatch reject`: the previous revision keeps serving and a later change to that revision is blocked."""
    cap = guarded
    driftwatch.configure_agent(AGENT, approve=["tools"])
    driftwatch.track(AGENT, "tools", ["search"], kind="tools")
    held = driftwatch.track(AGENT, "tools", ["search", "refund"], kind="tools")
    assert _cli(cap, "reject", held.id) == 0
    cap.runtime.guard.poll()
    driftwatch.track(AGENT, "tools", ["search"], kind="tools")  # back to the serving revision: nothing
    again = driftwatch.track(AGENT, "tools", ["search", "refund"], kind="tools")
    assert cap.ledger.change(held.id).status == "rejected"
    assert again.status == "blocked" and "was rolled back or rejected" in again.attributes["guard_reason"]
    assert cap.ledger.head(AGENT, "tools") == fingerprint(["search"])


def test_rollback_to_a_revision_pins_it_until_an_allowed_change(guarded: Captured, capsys) -> None:
    """`driftwatch rollback --to`: recorded as a guard change, the tracker serves the target without a new change,
    a change back to the rolled-back revision is blocked, a new revision is allowed and releases the pin."""
    cap = guarded
    driftwatch.track(AGENT, "system_prompt", "good")
    drifting = driftwatch.track(AGENT, "system_prompt", "drifting")
    assert _cli(cap, "rollback", AGENT, "--to", fingerprint("good")[:10]) == 0
    assert "rolled back" in capsys.readouterr().out
    cap.runtime.guard.poll()
    assert driftwatch.track(AGENT, "system_prompt", "good") is None  # the process serves it: nothing to record
    back = driftwatch.track(AGENT, "system_prompt", "drifting")
    assert back.status == "blocked" and back.before_id == fingerprint("good")
    rollback = [c for c in cap.changes() if c.source == "guard"]
    assert [(c.before_id, c.after_id) for c in rollback] == [(drifting.after_id, fingerprint("good"))]
    assert [r.what for r in cap.ledger.guard_state(AGENT)] == ["pin", "rejected"]
    new = driftwatch.track(AGENT, "system_prompt", "better")
    assert new.status == "applied"
    cap.runtime.ledger.flush_pending()
    assert [r.what for r in cap.ledger.guard_state(AGENT)] == ["rejected"]  # the pin went with the allowed change


def test_guard_allowed_answers_without_recording(guarded: Captured) -> None:
    """driftwatch.guard(agent).allowed(): a Decision for a prospective change; nothing is written."""
    cap = guarded
    driftwatch.configure_agent(AGENT, approve=["system_prompt"])
    driftwatch.track(AGENT, "system_prompt", "v1", kind="system_prompt")
    g = driftwatch.guard(AGENT)
    assert g.allowed("system_prompt", "v1")  # no change at all
    decision = g.allowed("system_prompt", "v2", kind="system_prompt")
    assert not decision and decision.action == "hold" and decision.serve == fingerprint("v1")
    assert g.allowed("other", "x", kind="custom").action == "allow"
    assert cap.changes() == [] and cap.ledger.guard_actions() == []
    assert not g.frozen and g.held() == {}


def test_commands_apply_at_the_first_poll_after_they_are_queued(tmp_path: Path) -> None:
    """A process applies a freeze at its next call once drift_poll_s has passed, not before."""
    with capture(ledger=str(tmp_path / "l.db"), drift=False, drift_poll_s=0.3) as cap:
        driftwatch.track(AGENT, "p", "v1")
        rt = cap.runtime
        rt.guard.poll()
        cli(["freeze", AGENT, "--ledger", str(tmp_path / "l.db")])
        early = driftwatch.track(AGENT, "p", "v2")  # within the interval: not known yet
        deadline = time.monotonic() + 5
        while not rt.guard.frozen(AGENT) and time.monotonic() < deadline:
            driftwatch.track(AGENT, "p", "v2")  # each report is a chance to poll
            time.sleep(0.02)
        assert early.status == "applied" and rt.guard.frozen(AGENT)
        assert driftwatch.track(AGENT, "p", "v3").status == "blocked"


def test_an_unreachable_ledger_keeps_the_last_guard_state(postgres, pg_url: str) -> None:
    """With the ledger gone (a PostgreSQL database refusing connections), a frozen agent stays frozen; the refused
    change and its action are kept and written once the ledger is back."""
    database = pg_url.rsplit("/", 1)[1]
    with capture(ledger=pg_url, drift=False, drift_poll_s=3600) as cap:
        driftwatch.track(AGENT, "p", "v1")
        assert cli(["freeze", AGENT, "--ledger", pg_url]) == 0
        cap.runtime.guard.poll()
        assert cap.runtime.guard.frozen(AGENT)
        led = cap.runtime.ledger
        assert led.flush(timeout=30)
        postgres.admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        postgres.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
        try:
            assert cap.runtime.guard.poll() == 0  # nothing read: the state stays
            blocked = driftwatch.track(AGENT, "p", "v2")
            assert blocked.status == "blocked" and led.pending == 2  # the change and its action, kept in order
        finally:
            postgres.admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        assert led.flush(timeout=60)
        assert cap.ledger.change(blocked.id).status == "blocked"
        assert [a.action for a in cap.ledger.guard_actions()][-1] == "blocked"


def test_processes_publish_their_policies(guarded: Captured) -> None:
    """An agent's policy reaches the ledger (what the alert receiver applies): at the first poll, and on change."""
    cap = guarded
    driftwatch.configure_agent(AGENT, on_alarm="rollback")
    cap.runtime.guard.poll()
    (row,) = [r for r in cap.ledger.guard_state(AGENT) if r.what == "policy"]
    assert json.loads(row.note)["on_alarm"] == "rollback"
    driftwatch.configure_agent(AGENT, on_alarm="freeze")
    cap.runtime.ledger.flush_pending()
    (row,) = [r for r in cap.ledger.guard_state(AGENT) if r.what == "policy"]
    assert json.loads(row.note)["on_alarm"] == "freeze"


@pytest.mark.parametrize("pool", [True, False])
def test_the_one_poll_also_pools_fleet_evidence(tmp_path: Path, monkeypatch, pool: bool) -> None:
    """With drift_pool, each poll of the guard (the one poller) lets the drift engine pool its fleet evidence with
    the ledger it read; without it, not (the control)."""
    with capture(ledger=str(tmp_path / "l.db"), drift_pool=pool, drift_poll_s=3600) as cap:
        rounds: list[object] = []
        monkeypatch.setattr(cap.runtime.drift, "pool_evidence", rounds.append)
        driftwatch.track(AGENT, "p", "v1")  # its first poll is due at once
        before = len(rounds)
        cap.runtime.guard.poll()
        cap.runtime.guard.poll()
        assert (before, len(rounds)) == ((1, 3) if pool else (0, 0))
        assert all(led is cap.runtime.ledger.available() for led in rounds)
