"""End to end: a watched agent process that tunes itself and drifts → real Prometheus with the shipped rules →
real Alertmanager with the shipped routing → the on-call's webhook; and every dashboard expression has data.

Only two things differ from production, both in configuration: the rules run every 1 s with ``for: 0s``
(the production ``for:`` windows are covered by ``promtool test rules``), and each receiver of the shipped
alertmanager.yml (PagerDuty, Slack, webhook) is replaced by a webhook on this test's loopback receiver, at
``/<receiver name>``, with ``group_wait: 0s``. The language model in the agent process is driftwatch's
scripted model (a hosted LLM cannot run here).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftwatch import promql
from driftwatch.stack import Stack, fast_rules, poll, webhook_receivers
from tests.helpers.processes import AgentProcess
from tests.helpers.promql import INTEGRATIONS, RULE_FILES, all_dashboard_queries, substitute
from tests.helpers.servers import WebhookReceiver, require_servers

pytestmark = [pytest.mark.servers, pytest.mark.slow]

AGENT = "e2e-support-bot"
OPTIMIZER = "PromptOptimizer"


@dataclass
class OnCall:
    stack: Stack
    agent: AgentProcess
    webhook: WebhookReceiver
    ledger: Path
    started: float
    changes: list[str]
    alarm_at: float
    page: tuple[str, dict[str, Any], float]


@pytest.fixture(scope="module")
def oncall(tmp_path_factory: pytest.TempPathFactory, webhook: WebhookReceiver) -> Iterator[OnCall]:
    """The whole scenario, once: start everything, let the agent tune itself, wait for the page."""
    require_servers()
    tmp = tmp_path_factory.mktemp("oncall")
    ledger = tmp / "ledger.db"
    agent = AgentProcess(ledger)
    stack = None
    try:
        port = int(agent.expect("PORT", 60))
        routing = webhook_receivers(yaml.safe_load((INTEGRATIONS / "alertmanager.yml").read_text()), webhook.url)
        stack = Stack(targets=[f"127.0.0.1:{port}"], rule_files=fast_rules(RULE_FILES, tmp),
                      alertmanager_config=routing, workdir=tmp / "stack")
        stack.start()
        started = time.time()
        stack.wait_until_scraping(timeout=30)
        agent.send("go")
        changes = [agent.expect("CHANGE", 30).split()[0]]
        # let Prometheus see the first change before the second (counters must be seen moving, even when a
        # loaded machine makes scrapes time out)
        seen = f'driftwatch_changes_total{{agent="{AGENT}"}} == 1 and on () driftwatch_optimizer_runs_total == 1'
        poll(lambda: stack.prometheus.query(seen), timeout=30, what="the first change in Prometheus")
        agent.send("next")
        changes.append(agent.expect("CHANGE", 30).split()[0])
        while True:  # the engine may latch other behavioural signals too; output_chars is the one the change moves
            signal, at = agent.expect("ALARM", 60).split()
            if signal == "output_chars":
                alarm_at = float(at)
                break
        page = webhook.wait_for(lambda p, a: a["labels"].get("alertname") == "DriftwatchBehaviorDrift"
                                and a["labels"].get("signal") == "output_chars" and a["status"] == "firing",
                                timeout=30)
        print(f"\n[e2e] drift alarm latched in the agent process → webhook after {page[2] - alarm_at:.2f} s; "
              f"page {page[2] - started:.1f} s after Prometheus was ready; alarms: {agent.seen}")
        yield OnCall(stack, agent, webhook, ledger, started, changes, alarm_at, page)
    finally:
        agent.stop()
        if stack is not None:
            stack.stop()


def test_drift_pages_the_oncall_with_the_agents_label(oncall: OnCall) -> None:
    """DriftwatchBehaviorDrift reaches PagerDuty and Slack (by the shipped routing) with agent and signal, and the
    guard receiver (here the test's webhook too)."""
    _, alert, _ = oncall.page
    assert alert["labels"] == {"alertname": "DriftwatchBehaviorDrift", "agent": AGENT, "signal": "output_chars",
                               "severity": "critical"}
    assert alert["annotations"]["runbook_url"].endswith("/grafana/runbooks.md#driftwatchbehaviordrift")
    assert f"driftwatch history --agent {AGENT}" in alert["annotations"]["description"]
    for receiver in ("/driftwatch-guard", "/pagerduty", "/slack"):  # each receiver notifies on its own: wait for each
        oncall.webhook.wait_for(lambda p, a, r=receiver: p == r and a["labels"] == alert["labels"], timeout=10)
    receivers = {p for p, a, _ in oncall.webhook.alerts() if a["labels"].get("alertname") == "DriftwatchBehaviorDrift"}
    assert receivers == {"/driftwatch-guard", "/pagerduty", "/slack"}  # the guard receiver: an agent without policy
    assert alert["startsAt"] and alert["generatorURL"].startswith(oncall.stack.prometheus.url)


def test_the_page_leads_to_the_change_behind_it(oncall: OnCall) -> None:
    """`driftwatch history` shows the alarm anchored at the optimizer's last change; `driftwatch show` its diff."""
    cli = [sys.executable, "-m", "driftwatch"]
    out = subprocess.run([*cli, "history", "--ledger", str(oncall.ledger), "--agent", AGENT, "--json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    alarms = [r for r in rows if r["type"] == "alarm"]
    changes = [r for r in rows if r["type"] == "change" and r["status"] == "applied"]
    assert [c["id"] for c in changes] == oncall.changes
    (held,) = [r for r in rows if r["type"] == "change" and r["status"] == "held"]  # the refund tool, at start
    assert held["component"] == "tools" and held["source"] == "agent"
    assert all(c["source"] == OPTIMIZER for c in changes)
    output = [a for a in alarms if a["signal"] == "output_chars"]
    assert output and output[0]["anchor_change_id"] == oncall.changes[-1]
    assert all(a["anchor_change_id"] == oncall.changes[-1] for a in alarms)
    runs = [r for r in rows if r["type"] == "optimizer_run"]
    assert [r["outcome"] for r in runs] == ["ok", "ok"]
    show = subprocess.run([*cli, "show", oncall.changes[-1], "--ledger", str(oncall.ledger)], capture_output=True,
                          text=True, timeout=30)
    assert show.returncode == 0, show.stderr
    assert re.search(r"^\+.*step by step and in detail", show.stdout, re.M)


def _has_value(result: list[dict[str, Any]]) -> bool:
    for series in result:
        values = series.get("values") or ([series["value"]] if "value" in series else [])
        if any(math.isfinite(float(v)) for _, v in values):
            return True
    return False


def test_every_dashboard_expression_returns_data(oncall: OnCall) -> None:
    """Each panel, annotation and variable query of the three dashboards returns data from this Prometheus."""
    prom = oncall.stack.prometheus
    # rates need scrapes on both sides of the last change: wait until it has been scraped for 3 s
    settled = f'min_over_time(driftwatch_changes_total{{agent="{AGENT}"}}[3s]) == {len(oncall.changes)}'
    poll(lambda: prom.query(settled), timeout=20, what="3 s of scrapes after the last change")
    end = time.time()
    window = f"{int(end - oncall.started) + 5}s"
    empty = []
    queries = all_dashboard_queries()
    for q in queries:
        expr = substitute(q.expr, rate_interval="30s", interval="15s", range_=window,
                          variables={"agent": AGENT, "optimizer": OPTIMIZER})
        if q.instant:
            result = prom.query(expr, at=end)
        else:
            result = prom.query_range(expr, start=oncall.started, end=end, step=1)
        if not _has_value(result):
            empty.append(f"{q.dashboard} {q.where}: {expr}")
    assert empty == [], "\n".join(empty)
    assert len(queries) > 50
    # the check can fail: a misspelt metric or a wrong agent returns nothing
    assert not _has_value(prom.query_range('driftwatch_calls_totl{job="driftwatch"}', oncall.started, end, 1))
    assert not _has_value(prom.query_range('driftwatch_calls_total{agent="nobody"}', oncall.started, end, 1))


def test_every_promql_signal_returns_data(oncall: OnCall) -> None:
    """Each signal of driftwatch.promql (the report's too, not only the panels'), rendered for the agent, has data."""
    prom = oncall.stack.prometheus
    end = time.time()

    def render(s: promql.Signal, agent: str) -> str:
        return s.render([promql.matcher("agent", agent)], "30s" if s.windowed else None,
                        **({"q": 0.9} if s.parameters else {}))

    empty = [s.name for s in promql.SIGNALS
             if not _has_value(prom.query_range(render(s, AGENT), start=oncall.started, end=end, step=1))]
    assert empty == []
    # the check can fail: the same signals for an agent that never ran return nothing
    assert not _has_value(prom.query_range(render(promql.CALLS, "nobody"), start=oncall.started, end=end, step=1))


def test_changes_carry_trace_exemplars(oncall: OnCall) -> None:
    """driftwatch_changes_total samples carry the change span's trace id as an exemplar (the dashboards' trace link)."""
    data = oncall.stack.prometheus.api("query_exemplars", query=f'driftwatch_changes_total{{agent="{AGENT}"}}',
                                       start=oncall.started - 60, end=time.time())
    trace_ids = {e["labels"]["trace_id"] for s in data for e in s["exemplars"]}
    assert trace_ids and all(re.fullmatch(r"[0-9a-f]{32}", t) for t in trace_ids)


def test_shipped_rules_evaluate_without_errors(oncall: OnCall) -> None:
    """All 16 shipped rules are loaded and evaluate healthy against real driftwatch series."""
    rules = oncall.stack.prometheus.rules()
    assert len(rules) == 16
    assert {r["name"]: r["health"] for r in rules if r["health"] != "ok"} == {}
    firing = {a["labels"]["alertname"] for a in oncall.stack.prometheus.alerts() if a["state"] == "firing"}
    # nothing else fires in this low-error process (the change may also move latency/cost: operational drift)
    assert "DriftwatchBehaviorDrift" in firing
    assert firing <= {"DriftwatchBehaviorDrift", "DriftwatchOperationalDrift"}


def test_warnings_of_a_paged_agent_are_inhibited(oncall: OnCall) -> None:
    """While the agent's critical fires, the shipped inhibit rule mutes its warnings, not other agents' ones."""
    am = oncall.stack.alertmanager
    assert am is not None
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    warning = {"alertname": "DriftwatchRefusalSpike", "severity": "warning"}
    am.post_alerts([{"labels": {**warning, "agent": AGENT}, "startsAt": now},
                    {"labels": {**warning, "agent": "other-bot"}, "startsAt": now}])
    oncall.webhook.wait_for(lambda p, a: p == "/slack" and a["labels"] == {**warning, "agent": "other-bot"},
                            timeout=15)
    [muted] = am.alerts(alertname="DriftwatchRefusalSpike", agent=AGENT)
    assert muted["status"]["state"] == "suppressed" and muted["status"]["inhibitedBy"]
    assert not [a for _, a, _ in oncall.webhook.alerts() if a["labels"] == {**warning, "agent": AGENT}]


def test_accepting_the_new_behaviour_resolves_the_page(oncall: OnCall) -> None:
    """`driftwatch accept AGENT` from a shell unlatches the alarm in the running process; the page resolves."""
    t0 = time.time()
    out = subprocess.run([sys.executable, "-m", "driftwatch", "accept", AGENT, "--ledger", str(oncall.ledger),
                          "--note", "e2e: longer answers are intended"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    for receiver in ("/pagerduty", "/slack"):  # send_resolved: both receivers hear that it is over
        _, _, at = oncall.webhook.wait_for(lambda p, a, r=receiver: p == r and a["status"] == "resolved"
                                           and a["labels"] == oncall.page[1]["labels"], timeout=30)
    print(f"\n[e2e] driftwatch accept → resolved at the webhook after {at - t0:.2f} s")
    alarms = oncall.stack.prometheus.query(f'driftwatch_drift_alarm{{agent="{AGENT}"}} > 0')
    assert alarms == []
