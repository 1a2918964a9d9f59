"""End to end, without a person: a DSPy program tuned by COPRO into a drifting revision → driftwatch's drift alarm →
real Prometheus with the shipped rules → real Alertmanager with the shipped routing → `driftwatch guard`'s receiver
applies the agent's policy (``on_alarm="rollback"``) → the agent process restores the student's revision → its
behaviour returns to the reference, the alarm clears and the page resolves. Every step is in the ledger, in order.

As in test_oncall.py, only configuration differs from production: rules every 1 s with ``for: 0s``, no group
waits, the PagerDuty / Slack / webhook receivers replaced by this test's loopback webhook; the guard receiver is the
real one (`driftwatch.cli.webhook`), reached with the shipped route and its bearer token. The language model is
driftwatch's scripted DSPy LM (a hosted LLM cannot run here).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftwatch.cli.webhook import GuardReceiver, serve
from driftwatch.ledger import open_ledger
from driftwatch.stack import Stack, fast_rules, webhook_receivers
from tests.helpers.processes import GUARD_AGENT_SCRIPT, AgentProcess
from tests.helpers.promql import INTEGRATIONS, RULE_FILES
from tests.helpers.servers import WebhookReceiver, require_servers

pytestmark = [pytest.mark.servers, pytest.mark.slow]

AGENT = "e2e-qa"
TOKEN = "e2e-guard-token-0123456789abcdef"


@dataclass
class Rollback:
    ledger: Path
    agent: AgentProcess
    times: dict[str, float]
    lengths: dict[str, float]
    changes: list[str]
    guard_log: list[str]
    webhook: WebhookReceiver


def _routing(webhook_url: str, guard_url: str, token_file: Path) -> dict[str, Any]:
    """The shipped alertmanager.yml with every receiver a webhook of this test, except the guard receiver, which keeps
    its route and bearer token and points at the real receiver."""
    cfg = webhook_receivers(yaml.safe_load((INTEGRATIONS / "alertmanager.yml").read_text()), webhook_url)
    shipped = {r["name"]: r for r in yaml.safe_load((INTEGRATIONS / "alertmanager.yml").read_text())["receivers"]}
    for receiver in cfg["receivers"]:
        if receiver["name"] == "driftwatch-guard":
            (hook,) = shipped["driftwatch-guard"]["webhook_configs"]
            hook["url"] = guard_url
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
            receiver["webhook_configs"] = [hook]
    return cfg


@pytest.fixture(scope="module")
def rolled_back(tmp_path_factory: pytest.TempPathFactory, webhook: WebhookReceiver) -> Iterator[Rollback]:
    require_servers()
    tmp = tmp_path_factory.mktemp("guard-e2e")
    ledger = tmp / "ledger.db"
    token_file = tmp / "guard-token"
    token_file.write_text(TOKEN + "\n")
    agent = AgentProcess(ledger, "--reference-calls", "60", "--poll", "0.2", script=GUARD_AGENT_SCRIPT)
    stack = receiver = guard_ledger = None
    guard_log: list[str] = []
    try:
        port = int(agent.expect("PORT", 60))
        guard_ledger = open_ledger(str(ledger))
        receiver = serve(GuardReceiver(guard_ledger, TOKEN, log=guard_log.append))
        guard_url = f"http://127.0.0.1:{receiver.server_port}/alerts"
        stack = Stack(targets=[f"127.0.0.1:{port}"], rule_files=fast_rules(RULE_FILES, tmp),
                      alertmanager_config=_routing(webhook.url, guard_url, token_file), workdir=tmp / "stack")
        stack.start()
        stack.wait_until_scraping(timeout=30)
        times: dict[str, float] = {}
        lengths: dict[str, float] = {}
        agent.send("go")
        lengths["before"] = float(agent.expect("LENGTH", 30).split()[1])
        changes = [agent.expect("CHANGE", 60).split()[0]]
        # COPRO's shorter answers move output_chars and the combined signal: whichever alarms first pages
        _signal, at = agent.expect("ALARM", 60).split()
        times["alarm"] = float(at)
        lengths["tuned"] = float(agent.expect("LENGTH", 60).split()[1])
        times["rolled_back"] = float(agent.expect("ROLLED_BACK", 60))
        lengths["after"] = float(agent.expect("LENGTH", 60).split()[1])
        times["cleared"] = float(agent.expect("CLEARED", 60))
        page = webhook.wait_for(lambda p, a: p == "/pagerduty" and a["labels"].get("alertname")
                                == "DriftwatchBehaviorDrift" and a["status"] == "firing", timeout=10)
        times["paged"] = page[2]
        resolved = webhook.wait_for(lambda p, a: p == "/pagerduty" and a["labels"] == page[1]["labels"]
                                    and a["status"] == "resolved", timeout=60)
        times["resolved"] = resolved[2]
        print(f"\n[guard e2e] alarm → page {times['paged'] - times['alarm']:.2f} s → rolled back in the agent "
              f"{times['rolled_back'] - times['paged']:.2f} s later; alarm → rolled back "
              f"{times['rolled_back'] - times['alarm']:.2f} s; rolled back → alarm cleared "
              f"{times['cleared'] - times['rolled_back']:.2f} s → page resolved "
              f"{times['resolved'] - times['cleared']:.2f} s; mean output chars {lengths}")
        yield Rollback(ledger, agent, times, lengths, changes, guard_log, webhook)
    finally:
        agent.stop()
        if stack is not None:
            stack.stop()
        if receiver is not None:
            receiver.shutdown()
            receiver.server_close()
        if guard_ledger is not None:
            guard_ledger.close()


def test_the_alert_rolls_the_program_back_without_a_person(rolled_back: Rollback) -> None:
    """The guard receiver got the firing alert and queued the rollback; the agent applied it; the page resolved."""
    (line,) = rolled_back.guard_log
    assert line.startswith(f"driftwatch guard: agent {AGENT} rolled back (drift alarm ")
    assert re.search(r"\((output_chars|combined)\) anchored at change", line), line
    t = rolled_back.times
    assert t["alarm"] < t["paged"] < t["rolled_back"] < t["cleared"] < t["resolved"]


def test_behaviour_returns_to_the_reference(rolled_back: Rollback) -> None:
    """The answers' length moved while the tuned program served; after the rollback it is back to the reference."""
    before, tuned, after = (rolled_back.lengths[k] for k in ("before", "tuned", "after"))
    assert abs(tuned - before) > 0.3 * before
    assert abs(after - before) < 0.2 * before  # the confirmation window is ~60 calls: some spread


def test_every_step_is_in_the_ledger_in_order(rolled_back: Rollback) -> None:
    """change (COPRO) → alarm anchored at it → rollback (the alert's, a guard change back to the student's revision)
    → confirmed (the rolled-back behaviour is the new reference)."""
    led = open_ledger(str(rolled_back.ledger), readonly=True)
    changes = led.changes(agent=AGENT)
    copro = [c for c in changes if c.source == "COPRO"]
    guard = [c for c in changes if c.source == "guard"]
    assert [c.id for c in copro] == rolled_back.changes and len(guard) == 1
    assert (guard[0].before_id, guard[0].after_id) == (copro[0].after_id, copro[0].before_id)
    actions = led.guard_actions(agent=AGENT)
    assert [a.action for a in actions] == ["rolled_back", "confirmed"]
    rollback, confirmed = actions
    assert rollback.origin.startswith("alert@") and rollback.change_id == guard[0].id
    # the alarm the alert paged for (output_chars or combined, whichever Prometheus saw first) is named in the reason
    (alarm,) = [a for a in led.alarms(agent=AGENT) if f"drift alarm {a.id[:12]} ({a.signal})" in rollback.reason]
    assert alarm.signal in ("output_chars", "combined") and alarm.anchor_change_id == copro[0].id
    assert f"alert DriftwatchBehaviorDrift ({alarm.signal}): policy on_alarm=rollback" in rollback.reason
    assert copro[0].timestamp < alarm.timestamp < rollback.timestamp <= guard[0].timestamp + 1 < confirmed.timestamp + 1
    assert rollback.timestamp < confirmed.timestamp
    assert led.head(AGENT, copro[0].component) == copro[0].before_id
    assert [c[1:3] for c in led.commands()] == [(AGENT, "rollback")]
    out = subprocess.run([sys.executable, "-m", "driftwatch", "history", "--ledger", str(rolled_back.ledger),
                          "--agent", AGENT, "--json"], capture_output=True, text=True, timeout=30)
    rows = json.loads(out.stdout)
    kinds = [r["type"] if r["type"] != "guard" else r["action"] for r in rows if r["type"] != "optimizer_run"]
    assert kinds.index("change") < kinds.index("alarm") < kinds.index("rolled_back") < kinds.index("confirmed")
