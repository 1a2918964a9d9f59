"""Driftwatch / Optimizer runs: runs, candidates evaluated and best scores, per agent and optimizer."""

from __future__ import annotations

from typing import Any

from driftwatch import promql

from ..config import CONFIG
from .layout import Layout, bars, stat, table, target, thresholds, timeseries

AGENTS = 'agent=~"$agent"'
OPTIMIZERS = 'optimizer=~"$optimizer"'
SOURCES = 'source=~"$optimizer"'  # a change's source is the optimizer that made it
FAILED = 'outcome="failed"'


def optimizer_runs(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    lay = Layout(cfg, "optimizers", "Driftwatch / Optimizer runs",
                 "Optimizer runs, candidates evaluated and best scores, per agent and optimizer.")
    lay.variable("agent", "Agent", f"label_values(driftwatch_optimizer_runs_total{lay.sel()}, agent)", multi=True,
                 include_all=True)
    lay.variable("optimizer", "Optimizer", f"label_values(driftwatch_optimizer_runs_total{lay.sel(AGENTS)}, optimizer)",
                 multi=True, include_all=True)
    s, deployed = lay.sel(AGENTS, OPTIMIZERS), lay.sel(AGENTS, SOURCES)
    best_score = f"max by (agent, optimizer) (driftwatch_optimizer_best_score{s})"
    lay.annotation("Changes deployed by optimizers",
                   "sum by (agent, component, kind, source) "
                   f"(changes(driftwatch_changes_total{deployed}[$__interval])) > 0",
                   "{{agent}}: {{kind}} change of {{component}}", "by {{source}}", "agent,source", "purple")

    lay.row("Runs")
    lay.panel(stat(), "Runs in range", "Optimizer runs finished in the time range.",
              [(f"sum(increase(driftwatch_optimizer_runs_total{s}[$__range]))", "")], width=8, height=5)
    lay.panel(stat().thresholds(thresholds((None, "green"), (1, "red"))), "Failed runs in range",
              "Optimizer runs that raised.",
              [(f"sum(increase(driftwatch_optimizer_runs_total{lay.sel(AGENTS, OPTIMIZERS, FAILED)}[$__range]))"
                " or vector(0)", "")],
              width=8, height=5)
    lay.panel(stat(), "Candidates in range", "Candidate programs evaluated in the time range.",
              [(f"sum(increase(driftwatch_optimizer_candidates_total{s}[$__range]))", "")], width=8, height=5)
    lay.panel(bars(), "Runs by outcome", "Finished optimizer runs.",
              [(f"sum by (agent, optimizer, outcome) (increase(driftwatch_optimizer_runs_total{s}[$__rate_interval]))",
                "{{agent}} {{optimizer}} {{outcome}}")], width=12, unit="short")
    lay.panel(bars(), "Candidates evaluated", "Candidate programs evaluated by the runs.",
              [(f"sum by (agent, optimizer) (increase(driftwatch_optimizer_candidates_total{s}[$__rate_interval]))",
                "{{agent}} {{optimizer}}")], width=12, unit="short")

    lay.row("Scores")
    lay.panel(timeseries().min(0).max(1), "Best score per run", "Best candidate score of each optimizer's last run.",
              [(best_score, "{{agent}} {{optimizer}}")], width=12)
    lay.panel(table(), "Latest best scores", "Best candidate score of the last run, per agent and optimizer.",
              [(best_score, "")], width=12, instant=True)
    lay.panel(bars(), "Changes deployed by optimizers", "Self-modifications whose source is an optimizer.",
              [(f"sum by (agent, source, kind) (increase(driftwatch_changes_total{deployed}[$__rate_interval]))",
                "{{agent}} {{source}} {{kind}}")], width=12, unit="short", exemplars=True)
    lay.panel(timeseries().min(0).max(1), "Production score after optimizer changes",
              "Mean evaluation score of the agents these optimizers tune.",
              [target(promql.SCORE, lay.matchers(AGENTS))], width=12)
    return lay.build()
