"""Recording rules (``grafana/alerts/driftwatch_rules.yaml``), named ``level:metric:operations``.

The alerts compare a short window with the baseline before a change; these rules pre-compute both.
Signal expressions come from :mod:`driftwatch.promql`; the level is the signal's grouping labels.
"""

from __future__ import annotations

from typing import Any

from driftwatch import promql

from .config import CONFIG, matchers, sel

__all__ = ["recorded", "recording_rules"]


def _signal_rule(cfg: dict[str, Any], signal: promql.Signal, metric_operation: str, window: str) -> dict[str, str]:
    """``{level}:{metric}:{operation}{window}`` recording ``signal`` over ``window``."""
    return {"record": f"{'_'.join(signal.by)}:{metric_operation}{window}",
            "expr": signal.render(matchers(cfg), window)}


def _rules(cfg: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each recording rule by the role the alerts read it in."""
    short, base = cfg["short_window"], cfg["baseline_window"]
    score_window = cfg["alerts"]["DriftwatchScoreRegressionAfterChange"]["window"]
    return {
        "last_change": {"record": "agent:driftwatch_last_change_timestamp_seconds:max",
                        "expr": f"max by (agent) (driftwatch_last_change_timestamp_seconds{sel(cfg)})"},
        "errors_short": _signal_rule(cfg, promql.ERROR, "driftwatch_calls_errors:ratio_rate", short),
        "errors_base": _signal_rule(cfg, promql.ERROR, "driftwatch_calls_errors:ratio_rate", base),
        "refusals_short": _signal_rule(cfg, promql.REFUSAL, "driftwatch_refusals:ratio_rate", short),
        "refusals_base": _signal_rule(cfg, promql.REFUSAL, "driftwatch_refusals:ratio_rate", base),
        "score_short": _signal_rule(cfg, promql.SCORE, "driftwatch_score:mean", score_window),
        "score_base": _signal_rule(cfg, promql.SCORE, "driftwatch_score:mean", base),
    }


def recorded(cfg: dict[str, Any] = CONFIG) -> dict[str, str]:
    """The recorded series' names by role (``errors_short`` → ``agent:driftwatch_calls_errors:ratio_rate10m``)."""
    return {role: rule["record"] for role, rule in _rules(cfg).items()}


def recording_rules(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    """The recording rule group (Prometheus rule-file shape: ``{"groups": [...]}``)."""
    rules = list(_rules(cfg).values())
    return {"groups": [{"name": "driftwatch.rules", "interval": cfg["rule_interval"], "rules": rules}]}
