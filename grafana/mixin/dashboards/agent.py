"""Driftwatch / Agent: one agent — its changes as annotations, each behavioural signal around the last change,
optimizer runs and scores, with exemplar links to traces."""

from __future__ import annotations

from typing import Any

from driftwatch import promql

from ..config import CONFIG
from . import panels
from .layout import Layout, behaviour_panels, target

AGENT = 'agent="$agent"'


def agent_drilldown(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    lay = Layout(cfg, "agent", "Driftwatch / Agent",
                 "One agent: its changes as annotations, each behavioural signal around the last change, "
                 "optimizer runs and scores, with exemplar links to traces.")
    lay.variable("agent", "Agent", "driftwatch_calls_total", multi=False)
    s, m = lay.sel(AGENT), lay.matchers(AGENT)
    by_signal = ("signal",)
    lay.change_annotation("Self-modifications", s, "component, kind, source", "{{kind}} change of {{component}}",
                          "kind,source", "orange")
    lay.annotation("Drift alarms", f"{promql.DRIFT_ALARM.render(m, by=by_signal)} > 0",
                   "drift alarm: {{signal}}", "signal {{signal}} left its reference", "signal", "red")
    stat = panels.stat

    lay.row("Last change")
    lay.panel(stat().unit("s"), "Since last change", "Time since the agent's last recorded self-modification.",
              [(f"time() - max(driftwatch_last_change_timestamp_seconds{s})", "")], width=6, height=5)
    lay.panel(stat(), "Changes in range", "Self-modifications recorded in the time range.",
              [(f"sum(increase(driftwatch_changes_total{s}[$__range]))", "")], width=6, height=5)
    lay.panel(stat().thresholds(panels.thresholds((None, "green"), (1, "red"))), "Signals in alarm",
              "Drift signals latched in alarm.",
              [(f"sum(driftwatch_drift_alarm{s}) or vector(0)", "")], width=6, height=5)
    lay.panel(stat(), "Reference calls", "Calls in the reference anchored at the last change.",
              [(f"max(driftwatch_reference_calls{s})", "")], width=6, height=5)
    lay.panel(panels.bars(), "Changes by component and kind", "Self-modifications; click an exemplar for the trace.",
              [(f"sum by (component, kind, source) (increase(driftwatch_changes_total{s}[$__rate_interval]))",
                "{{component}} {{kind}} ({{source}})")], width=12, exemplars=True)
    lay.panel(panels.timeseries(), "Change magnitude (p90)", "Normalized edit distance of the changes.",
              [target(promql.CHANGE_MAGNITUDE_QUANTILE, m, by=("kind",), q=0.9)], width=12, unit="percentunit")
    lay.panel(panels.threshold_lines((None, "green"), (1, "red")), "Drift score by signal (1 = alarm)",
              "Each signal's drift statistic ÷ threshold since the reference was anchored.",
              [target(promql.DRIFT_SCORE, m, by=by_signal)], width=12)
    lay.panel(panels.state_timeline(), "Drift alarm by signal", "Latched drift alarms.",
              [target(promql.DRIFT_ALARM, m, by=by_signal)], width=12)

    lay.row("Signals around the last change")
    behaviour_panels(lay, AGENT)

    lay.row("Guardrails")
    lay.panel(stat().thresholds(panels.thresholds((None, "green"), (1, "orange"))), "Changes held for approval",
              "Self-modifications waiting for driftwatch approve / reject.",
              [(f"max({promql.HELD_CHANGES.render(m)}) or vector(0)", "")], width=6, height=5)
    lay.panel(stat().thresholds(panels.thresholds((None, "green"), (1, "orange"))), "Frozen",
              "1 while the agent's self-tuning is frozen.",
              [(f"max({promql.GUARD_FROZEN.render(m)}) or vector(0)", "")], width=6, height=5)
    lay.panel(panels.bars(), "Guard actions", "What the agent's guard did, by action.",
              [target(promql.GUARD_ACTIONS, m, by=("action",))], width=12, unit="short")

    lay.row("Optimizer runs and revisions")
    lay.panel(panels.bars(), "Optimizer runs", "Optimizer (compile) runs by outcome.",
              [(f"sum by (optimizer, outcome) (increase(driftwatch_optimizer_runs_total{s}[$__rate_interval]))",
                "{{optimizer}} {{outcome}}")], width=12, unit="short")
    lay.panel(panels.timeseries().min(0).max(1), "Best optimizer score",
              "Best candidate score of the last run of each optimizer.",
              [(f"max by (optimizer) (driftwatch_optimizer_best_score{s})", "{{optimizer}}")], width=12)
    lay.panel(panels.table(), "Current revisions", "Current revision of each component.",
              [(f"max by (component, revision) (driftwatch_revision_info{s} == 1)", "")], width=24, height=6,
              instant=True)
    return lay.build()
