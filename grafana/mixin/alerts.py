"""Alert rules in Prometheus format (``grafana/alerts/driftwatch_alerts.yaml``): the master copy.

The Grafana-managed copy (:mod:`.grafana_alerting`) and the Kubernetes ``PrometheusRule``
(:mod:`.kubernetes`) are derived from :func:`alert_rules`. An alert's ``for:``, severity and thresholds
are in ``CONFIG["alerts"]`` (:mod:`.config`); its runbook is the ``## <AlertName>`` section of
``grafana/runbooks.md``; ``grafana/alerts/tests.yaml`` tests it on both sides of its ``for:``.
"""

from __future__ import annotations

import re
from typing import Any

from driftwatch import promql

from .config import CONFIG, matchers, sel
from .rules import recorded

__all__ = ["alert_rules", "runbook_anchor"]

_HINT = "Find the change with `driftwatch history --agent {{ $labels.agent }} --since 2h`."


def runbook_anchor(alert: str) -> str:
    """The anchor of an alert's section in ``grafana/runbooks.md`` (GitHub heading slug)."""
    return alert.lower()


def _seconds(duration: str) -> int:
    m = re.fullmatch(r"(\d+)([smhd])", duration)
    if not m:
        raise ValueError(f"duration={duration!r}: expected a Prometheus duration such as 10m or 1h")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _alert(cfg: dict[str, Any], name: str, expr: str, summary: str, description: str) -> dict[str, Any]:
    a = cfg["alerts"].get(name)
    if a is None:
        raise ValueError(f'CONFIG["alerts"] has no entry for {name} (its "for" and "severity")')
    return {
        "alert": name,
        "expr": expr,
        "for": a["for"],
        "labels": {"severity": a["severity"]},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{cfg['runbook_base_url']}#{runbook_anchor(name)}",
        },
    }


def _rise(short: str, base: str, window: str, threshold: dict[str, Any]) -> str:
    """``short`` above ``factor`` × its value ``window`` ago (0 when there was none), and above ``min_ratio``."""
    return (f"(\n  {short}\n    > on (agent) clamp_min(\n"
            f"      {threshold['factor']} * ({base} offset {window} >= 0 or on (agent) 0 * {short}),\n"
            f"      {threshold['min_ratio']}\n    )\n)\n")


def _rules(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    n = recorded(cfg)
    a = cfg["alerts"]
    short, base, after = cfg["short_window"], cfg["baseline_window"], cfg["after_change"]
    recent_change = f"(time() - {n['last_change']} < {_seconds(after)})"
    min_calls = cfg["min_calls"]
    enough_calls = f"sum by (agent) (increase(driftwatch_calls_total{sel(cfg)}[{short}])) >= {min_calls}"
    storm, reg, err, ref = (a["DriftwatchSelfModificationStorm"], a["DriftwatchScoreRegressionAfterChange"],
                            a["DriftwatchErrorRateRiseAfterChange"], a["DriftwatchRefusalSpike"])
    ops = "|".join(cfg["operational_signals"])
    behavioural = promql.DRIFT_ALARM.render(matchers(cfg, f'signal!~"{ops}"'))
    operational = promql.DRIFT_ALARM.render(matchers(cfg, f'signal=~"{ops}"'))
    return [
        _alert(cfg, "DriftwatchBehaviorDrift", f"{behavioural} > 0",
               "The behaviour of a self-modifying agent drifted away from its reference.",
               "Agent {{ $labels.agent }}: the {{ $labels.signal }} signal drifted away from the reference "
               "anchored at its last self-modification. " + _HINT),
        _alert(cfg, "DriftwatchOperationalDrift", f"{operational} > 0",
               "The latency or cost of an agent's calls shifted away from its reference.",
               "Agent {{ $labels.agent }}: the {{ $labels.signal }} signal moved away from the calls before its last "
               "self-modification. Provider load moves latency too: compare with other agents first. " + _HINT),
        _alert(cfg, "DriftwatchSelfModificationStorm",
               f"sum by (agent) (increase(driftwatch_changes_total{sel(cfg)}[{storm['window']}])) > {storm['changes']}",
               "An agent is rewriting its prompts or scaffolding unusually often.",
               "Agent {{ $labels.agent }} recorded {{ $value | printf \"%.0f\" }} self-modifications in the last "
               f"{storm['window']} (threshold {storm['changes']}). " + _HINT),
        _alert(cfg, "DriftwatchScoreRegressionAfterChange",
               f"(\n  {n['score_short']}\n    < on (agent, metric) ({n['score_base']} offset {base})"
               f" - {reg['drop']}\n)\n"
               f"and on (agent) {recent_change}\n"
               f"and on (agent, metric) sum by (agent, metric) "
               f"(increase(driftwatch_score_count{sel(cfg)}[{reg['window']}])) >= {min_calls}",
               "Evaluation scores of an agent fell after a self-modification.",
               "Mean {{ $labels.metric }} score of agent {{ $labels.agent }} is {{ $value | printf \"%.2f\" }}, "
               f"more than {reg['drop']} below the {base} before its last self-modification. " + _HINT),
        _alert(cfg, "DriftwatchErrorRateRiseAfterChange",
               _rise(n["errors_short"], n["errors_base"], base, err)
               + f"and on (agent) {recent_change}\nand on (agent) {enough_calls}",
               "The error rate of an agent rose after a self-modification.",
               "{{ $value | humanizePercentage }} of the calls of agent {{ $labels.agent }} failed in the last "
               f"{short}, at least {err['factor']}x the rate before its last self-modification. " + _HINT),
        _alert(cfg, "DriftwatchRefusalSpike",
               _rise(n["refusals_short"], n["refusals_base"], base, ref) + f"and on (agent) {enough_calls}",
               "An agent refuses far more requests than before.",
               "{{ $value | humanizePercentage }} of the answers of agent {{ $labels.agent }} were refusals in the "
               f"last {short}, at least {ref['factor']}x the rate of the {base} before. " + _HINT),
        _alert(cfg, "DriftwatchTargetDown",
               f"up{sel(cfg)} == 0",
               "Prometheus cannot scrape a driftwatch /metrics endpoint.",
               "{{ $labels.instance }} (job {{ $labels.job }}) has been down for "
               f"{a['DriftwatchTargetDown']['for']}: self-modifications and drift of the agents it serves are not "
               "monitored."),
        _alert(cfg, "DriftwatchMetricsAbsent",
               f"absent(driftwatch_build_info{sel(cfg)})",
               "No driftwatch metrics reach Prometheus.",
               f"No series of driftwatch_build_info{sel(cfg)} for {a['DriftwatchMetricsAbsent']['for']}: "
               "driftwatch is not running, not serving /metrics, or not scraped."),
        _alert(cfg, "DriftwatchInternalErrors",
               f"sum by (job, instance, stage) (increase(driftwatch_internal_errors_total{sel(cfg)}"
               f"[{a['DriftwatchInternalErrors']['window']}])) > 0",
               "driftwatch keeps catching errors inside its own hooks.",
               "{{ $labels.instance }}: {{ $value | printf \"%.0f\" }} internal errors in stage {{ $labels.stage }} "
               f"in the last {a['DriftwatchInternalErrors']['window']}. The agents keep running, but what "
               "driftwatch records may be incomplete."),
    ]


def alert_rules(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    """The alert group (Prometheus rule-file shape). Every alert has a ``CONFIG["alerts"]`` entry and vice versa."""
    rules = _rules(cfg)
    unused = sorted(set(cfg["alerts"]) - {r["alert"] for r in rules})
    if unused:
        raise ValueError(f'CONFIG["alerts"] configures {", ".join(unused)}, which grafana/mixin/alerts.py does not '
                         "define")
    return {"groups": [{"name": "driftwatch.alerts", "interval": cfg["rule_interval"], "rules": rules}]}
