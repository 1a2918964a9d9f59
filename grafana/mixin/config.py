"""The one place for the mixin's selectors, thresholds, windows, ``for:`` durations and the runbook location.

Every builder takes a config dict (default :data:`CONFIG`): copy it, change it, pass it on, the way
kubernetes-mixin's ``_config`` works.
"""

from __future__ import annotations

from typing import Any

from driftwatch.promql import selector

__all__ = ["CONFIG", "matchers", "sel"]

CONFIG: dict[str, Any] = {
    # label matchers added to every driftwatch metric selector (alerts, rules and dashboards)
    "selector": 'job="driftwatch"',
    # the scrape job name used in the example configs (keep it equal to the selector above)
    "job": "driftwatch",
    # runbook_url = runbook_base_url + "#" + lower-cased alert name (an anchor of grafana/runbooks.md)
    "runbook_base_url": "https://github.com/driftwatch/driftwatch-agents/blob/main/grafana/runbooks.md",
    "rule_interval": "1m",
    # "after a change" = the agent's last recorded self-modification is at most this old
    "after_change": "1h",
    # short (current) and baseline windows; the baseline is read with `offset <baseline>` (before the change)
    "short_window": "10m",
    "baseline_window": "1h",
    # minimum calls (or scores) in the short window before a ratio may alert
    "min_calls": 20,
    # drift signals of the operational detector (load-dependent): a warning of their own, never a page
    "operational_signals": ["latency", "cost"],
    # per alert: `for:`, severity and its own thresholds (grafana/mixin/alerts.py reads them)
    "alerts": {
        "DriftwatchBehaviorDrift": {"for": "1m", "severity": "critical"},
        "DriftwatchOperationalDrift": {"for": "5m", "severity": "warning"},
        "DriftwatchSelfModificationStorm": {"for": "5m", "severity": "warning", "window": "15m", "changes": 10},
        "DriftwatchScoreRegressionAfterChange": {"for": "10m", "severity": "critical", "drop": 0.1,
                                                 "window": "15m"},
        "DriftwatchErrorRateRiseAfterChange": {"for": "5m", "severity": "critical", "factor": 2.0,
                                               "min_ratio": 0.05},
        "DriftwatchRefusalSpike": {"for": "10m", "severity": "warning", "factor": 3.0, "min_ratio": 0.1},
        "DriftwatchTargetDown": {"for": "5m", "severity": "warning"},
        "DriftwatchMetricsAbsent": {"for": "15m", "severity": "warning"},
        "DriftwatchInternalErrors": {"for": "15m", "severity": "warning", "window": "10m"},
    },
    "dashboards": {
        "uid_prefix": "driftwatch",
        "tags": ["driftwatch", "llm"],
        "refresh": "30s",
        "time_from": "now-6h",
        # the trace datasource exemplar links point at (see grafana/provisioning/datasources)
        "trace_datasource_uid": "tempo",
    },
    "grafana_alerting": {"folder": "Driftwatch", "datasource_uid": "prometheus", "org_id": 1},
}


def matchers(cfg: dict[str, Any], *extra: str) -> tuple[str, ...]:
    """The configured matchers, then ``extra``: what :meth:`driftwatch.promql.Signal.render` takes."""
    return (cfg["selector"], *extra)


def sel(cfg: dict[str, Any], *extra: str) -> str:
    """A label selector with the configured matchers first: ``{job="driftwatch", status="error"}``."""
    return selector(*matchers(cfg, *extra))
