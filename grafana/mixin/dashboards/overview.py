"""Driftwatch / Overview: every watched agent — self-modifications, drift alarms, behaviour, current revisions."""

from __future__ import annotations

from typing import Any

from driftwatch import promql

from ..config import CONFIG
from . import panels
from .layout import Layout, behaviour_panels, target

AGENT = 'agent=~"$agent"'


def overview(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    lay = Layout(cfg, "overview", "Driftwatch / Overview",
                 "Every watched agent: self-modifications, drift alarms, behaviour and current revisions.")
    lay.variable("agent", "Agent", "driftwatch_calls_total", multi=True)
    s, m = lay.sel(AGENT), lay.matchers(AGENT)
    lay.change_annotation("Self-modifications", s, "agent, component, kind, source",
                          "{{agent}}: {{kind}} change of {{component}}", "agent,kind,source", "orange")
    stat = panels.stat

    lay.row("Self-modifications and drift")
    lay.panel(stat().thresholds(panels.thresholds((None, "green"), (1, "red"))), "Agents in drift alarm",
              "Agents with at least one latched drift alarm.",
              [(f"count({promql.DRIFT_ALARM.render(m, by=('agent',))} > 0) or vector(0)", "")], width=6, height=5)
    lay.panel(stat().thresholds(panels.thresholds((None, "blue"))), "Self-modifications in range",
              "Changes recorded in the dashboard's time range.",
              [(f"sum(increase(driftwatch_changes_total{s}[$__range]))", "")], width=6, height=5)
    lay.panel(stat().thresholds(panels.thresholds((None, "green"), (1, "orange"))), "Internal errors in range",
              "Errors inside driftwatch, caught before they reached an agent.",
              [(f"sum(increase(driftwatch_internal_errors_total{lay.sel()}[$__range])) or vector(0)", "")],
              width=6, height=5)
    lay.panel(stat().thresholds(panels.thresholds((None, "red"), (1, "green"))), "Exporters up",
              "driftwatch /metrics endpoints Prometheus scrapes successfully.",
              [(f"sum(up{lay.sel()})", "")], width=6, height=5)
    lay.panel(panels.bars(), "Self-modifications by agent and kind", "Recorded changes of prompts and scaffolding.",
              [(f"sum by (agent, kind) (increase(driftwatch_changes_total{s}[$__rate_interval]))",
                "{{agent}} {{kind}}")],
              width=12, unit="short", exemplars=True)
    lay.panel(panels.state_timeline(), "Drift alarms", "1 while a drift alarm is latched, per agent and signal.",
              [target(promql.DRIFT_ALARM, m)], width=12)
    lay.panel(panels.threshold_lines((None, "green"), (1, "red")), "Drift score (1 = alarm)",
              "Each signal's drift statistic divided by its alarm threshold.",
              [target(promql.DRIFT_SCORE, m)], width=12)
    lay.panel(panels.timeseries(), "Reference calls",
              "Calls in each agent's drift reference (below target: warming up).",
              [(f"max by (agent) (driftwatch_reference_calls{s})", "{{agent}}")], width=12, unit="short")

    lay.row("Guardrails")
    lay.panel(stat().thresholds(panels.thresholds((None, "green"), (1, "orange"))), "Changes held for approval",
              "Self-modifications waiting for driftwatch approve / reject (the previous revision serves meanwhile).",
              [(f"sum({promql.HELD_CHANGES.render(m)}) or vector(0)", "")], width=6, height=5)
    lay.panel(stat().thresholds(panels.thresholds((None, "green"), (1, "orange"))), "Frozen agents",
              "Agents whose self-tuning is frozen (driftwatch freeze, or on_alarm=freeze).",
              [(f"count({promql.GUARD_FROZEN.render(m)} == 1) or vector(0)", "")], width=6, height=5)
    lay.panel(panels.bars(), "Guard actions by agent and action",
              "Changes blocked or held, approvals and rejections, rollbacks, freezes, confirmed rollbacks.",
              [(f"sum by (agent, action) (increase(driftwatch_guard_actions_total{s}[$__rate_interval]))",
                "{{agent}} {{action}}")], width=12, unit="short")
    lay.panel(panels.table(), "Held changes by agent",
              "Changes held for approval per agent: driftwatch history --held lists them, driftwatch approve "
              "CHANGE_ID lets one take effect.",
              [(promql.HELD_CHANGES.render(m), "")], width=24, height=6, instant=True)

    lay.row("Behaviour")
    behaviour_panels(lay, AGENT)

    lay.row("Revisions")
    lay.panel(panels.table(), "Current revisions", "The current revision of every component (short id).",
              [(f"max by (agent, component, revision) (driftwatch_revision_info{s} == 1)", "")],
              width=12, height=8, instant=True)
    lay.panel(panels.table(), "Time since last change", "Seconds since each component's last recorded change.",
              [(f"time() - max by (agent, component) (driftwatch_last_change_timestamp_seconds{s})", "")],
              width=12, height=8, instant=True, unit="s")
    return lay.build()
