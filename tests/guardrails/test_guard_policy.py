"""Guard policies: configure_agent's on_alarm / approve / max_rate and the DRIFTWATCH_GUARD format, with one-line
errors naming the setting, the agent and the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

import driftwatch
from driftwatch.config import ConfigError, Settings
from driftwatch.guardrails.policy import GuardPolicy, parse_policies, parse_rate
from driftwatch.testing import Captured


def test_configure_agent_sets_a_policy(cap: Captured) -> None:
    """configure_agent's guard options become the agent's GuardPolicy; without them the agent has none."""
    opts = driftwatch.configure_agent("bot", on_alarm="rollback", approve=["tools", "system_prompt"], max_rate="3/hour")
    assert opts.guard == GuardPolicy("rollback", frozenset({"tools", "system_prompt"}), 3, 3600.0)
    assert driftwatch.guard("bot").policy == opts.guard
    assert driftwatch.configure_agent("plain", format="json").guard is None
    assert driftwatch.guard("plain").policy is None


@pytest.mark.parametrize(("options", "message"), [
    ({"on_alarm": "stop"}, "configure_agent(on_alarm='stop'): expected page, freeze or rollback"),
    ({"approve": ["tool"]}, "configure_agent(approve=['tool']): unknown change kind 'tool'"),
    ({"approve": 3}, "configure_agent(approve=3): expected change kinds"),
    ({"max_rate": "3/fortnight"}, "configure_agent(max_rate='3/fortnight'): expected a rate such as 3/hour"),
    ({"max_rate": "0/hour"}, "expected at least 1 change per window"),
    ({"max_rate": (3, 0.1)}, "expected a window from 1 second to 31 days"),
])
def test_bad_policy_options_are_one_line(cap: Captured, options: dict, message: str) -> None:
    """A bad guard option raises ValueError naming the argument, on one line."""
    with pytest.raises(ValueError) as info:
        driftwatch.configure_agent("bot", **options)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_rates() -> None:
    """max_rate forms: N/unit (plural or short), N/<number><unit>, and (n, seconds)."""
    assert parse_rate("3/hour") == (3, 3600.0)
    assert parse_rate("10/days") == (10, 86400.0)
    assert parse_rate("1/min") == (1, 60.0)
    assert parse_rate("5/30m") == (5, 1800.0)
    assert parse_rate("2/90s") == (2, 90.0)
    assert parse_rate((4, 120)) == (4, 120.0)


def test_the_environment_format() -> None:
    """DRIFTWATCH_GUARD: entries separated by ';', AGENT: key=value ..., '*' for every other agent."""
    policies = Settings.from_env({"DRIFTWATCH_GUARD": "support-bot: on_alarm=rollback approve=tools,system_prompt "
                                                      "max_rate=3/hour ;  *: on_alarm=freeze ;"}).guard
    assert policies == {"support-bot": GuardPolicy("rollback", frozenset({"tools", "system_prompt"}), 3, 3600.0),
                        "*": GuardPolicy("freeze")}
    assert policies["support-bot"].describe() == "on_alarm=rollback approve=system_prompt,tools max_rate=3/hour"
    assert parse_policies(policies["support-bot"].describe().join(["x: ", ""])) == {"x": policies["support-bot"]}


@pytest.mark.parametrize(("text", "message"), [
    ("bot on_alarm=freeze", "DRIFTWATCH_GUARD: entry 1 ('bot on_alarm=freeze'): expected 'AGENT: key=value ...'"),
    ("bot: on_alarm=stop", "DRIFTWATCH_GUARD: agent 'bot': on_alarm=stop: expected page, freeze or rollback"),
    ("bot: colour=red", "DRIFTWATCH_GUARD: agent 'bot': unknown key 'colour' (known: on_alarm, approve, max_rate)"),
    ("bot: on_alarm", "DRIFTWATCH_GUARD: agent 'bot': 'on_alarm': expected key=value"),
    ("bot: max_rate=lots", "DRIFTWATCH_GUARD: agent 'bot': max_rate=lots: expected a rate such as 3/hour"),
    ("bot: approve=tool", "DRIFTWATCH_GUARD: agent 'bot': approve=tool: unknown change kind 'tool'"),
    ("bot: on_alarm=freeze; bot: on_alarm=page", "DRIFTWATCH_GUARD: agent 'bot' is given twice"),
])
def test_bad_environment_entries_are_one_line(text: str, message: str) -> None:
    """Each malformed DRIFTWATCH_GUARD raises ConfigError with one line naming the variable, agent and key."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DRIFTWATCH_GUARD": text})
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_the_cli_reports_a_bad_variable_in_one_line(tmp_path) -> None:
    """`driftwatch history` with a bad DRIFTWATCH_GUARD exits 1 with the one-line error, no traceback."""
    env = {"PATH": "/usr/bin:/bin", "DRIFTWATCH_GUARD": "bot: on_alarm=stop"}
    proc = subprocess.run([sys.executable, "-m", "driftwatch", "history", "--ledger", str(tmp_path / "x.db")],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 1
    assert proc.stderr == ("driftwatch: error: DRIFTWATCH_GUARD: agent 'bot': on_alarm=stop: expected page, freeze "
                           "or rollback\n")


def test_configure_agent_wins_over_the_environment(tmp_path) -> None:
    """The agent's own policy comes from configure_agent; DRIFTWATCH_GUARD gives the others theirs (or '*')."""
    from driftwatch.testing import capture

    with capture(guard="bot: on_alarm=freeze; *: max_rate=2/hour", drift=False) as cap:
        rt = cap.runtime
        assert rt.policy_of("bot") == GuardPolicy("freeze")
        assert rt.policy_of("someone") == GuardPolicy(max_changes=2)
        driftwatch.configure_agent("bot", on_alarm="rollback")
        assert rt.policy_of("bot") == GuardPolicy("rollback")
