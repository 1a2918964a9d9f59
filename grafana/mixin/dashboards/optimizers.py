"""Driftwatch / Optimizer runs: runs, candidates evaluated and best scores, per agent and optimizer."""

from __future__ import annotations

from typing import Any

from driftwatch import promql

from ..config import CONFIG
from . import panels
from .layout import Layout, target

AGENTS = 'agent=~"$agent"'
OPTIMIZERS = 'optimizer=~"$optimizer"'
SOURCES = 'source=~"$optimizer"'  # a change's source is the optimizer that made it
FAILED = 'outcome="failed"'


def optimizer_runs(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    lay = Layout(cfg, "optimizers", "Driftwatch / Optimizer runs",
                 "Optimizer runs, candidates evaluated and best scores, per agent and optimizer.")
    lay.variable("agent", "Agent", "driftwatch_optimizer_runs_total", multi=True)
    lay.variable("optimizer", "Optimizer", "driftwatch_optimizer_runs_total", AGENTS, multi=True)
    s, deployed = lay.sel(AGENTS, OPTIMIZERS), lay.sel(AGENTS, SOURCES)
    best_score = f"max by (agent, optimizer) (driftwatch_optimizer_best_score{s})"
    lay.change_annotation("Changes deployed by optimizers", deployed, "agent, component, kind, source",
                          "{{agent}}: {{kind}} change of {{component}}", "agent,source", "purple")
    stat, bars = panels.stat, panels.bars

    lay.row("Runs")
    lay.panel(stat(), "Runs in range", "Optimizer runs finished in the time range.",
              [(f"sum(increase(driftwatch_optimizer_runs_total{s}[$__range]))", "")], width=8, height=5)
    lay.panel(stat().thresholds(panels.thresholds((None, "green"), (1, "red"))), "Failed runs in range",
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
    lay.panel(panels.timeseries().min(0).max(1), "Best score per run",
              "Best candidate score of each optimizer's last run.",
              [(best_score, "{{agent}} {{optimizer}}")], width=12)
    lay.panel(panels.table(), "Latest best scores", "Best candidate score of the last run, per agent and optimizer.",
              [(best_score, "")], width=12, instant=True)
    lay.panel(bars(), "Changes deployed by optimizers", "Self-modifications whose source is an optimizer.",
              [(f"sum by (agent, source, kind) (increase(driftwatch_changes_total{deployed}[$__rate_interval]))",
                "{{agent}} {{source}} {{kind}}")], width=12, unit="short", exemplars=True)
    lay.panel(panels.timeseries().min(0).max(1), "Production score after optimizer changes",
              "Mean evaluation score of the agents these optimizers tune.",
              [target(promql.SCORE, lay.matchers(AGENTS))], width=12)
    return lay.build()
