"""The driftwatch monitoring mixin: alert rules, recording rules and dashboards, generated from one config.

Everything the SRE side of driftwatch ships is derived here from :data:`CONFIG` (selectors, thresholds,
windows, ``for:`` durations, the runbook location), the way kubernetes-mixin derives its output from
``_config``. ``grafana/build.py`` (``make dashboards``) writes the results:

- ``grafana/alerts/driftwatch_rules.yaml`` (recording rules) and ``driftwatch_alerts.yaml`` (alerts):
  the Prometheus-format master copy, tested by ``promtool test rules`` (``grafana/alerts/tests.yaml``);
- ``grafana/provisioning/alerting/driftwatch.yaml``: the same alerts as Grafana-managed rules;
- ``grafana/dashboards/*.json``: Overview, Agent drill-down, Optimizer runs (grafana-foundation-sdk,
  Grafana 11.6 types);
- ``integrations/kubernetes/prometheusrule.yaml`` and ``servicemonitor.yaml``.

Metric and label names come only from :data:`driftwatch.metrics.CATALOGUE` (a test checks every
expression). Recording rules are named ``level:metric:operations``.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from grafana_foundation_sdk.builders import common as gcommon
from grafana_foundation_sdk.builders.dashboard import (
    AnnotationQuery,
    Dashboard,
    DashboardLink,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.statetimeline import Panel as StateTimelinePanel
from grafana_foundation_sdk.builders.table import Panel as TablePanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as gmodels
from grafana_foundation_sdk.models.dashboard import DataSourceRef, Threshold, ThresholdsMode, VariableRefresh

__all__ = [
    "CONFIG",
    "alert_rules",
    "dashboards",
    "grafana_alert_provisioning",
    "kubernetes_prometheus_rule",
    "kubernetes_service_monitor",
    "recording_rules",
    "runbook_anchor",
]

#: The one place for selectors, thresholds and windows. Copy it, change it, pass it to the builders.
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


ERROR = 'status="error"'
FAILED = 'outcome="failed"'
AGENTS = 'agent=~"$agent"'
OPTIMIZERS = 'optimizer=~"$optimizer"'
SOURCES = 'source=~"$optimizer"'


def sel(cfg: dict[str, Any], *matchers: str) -> str:
    """A label selector with the configured matchers first: ``{job="driftwatch", status="error"}``."""
    parts = [m for m in (cfg["selector"], *matchers) if m]
    return "{" + ", ".join(parts) + "}"


def runbook_anchor(alert: str) -> str:
    """The anchor of an alert's section in ``grafana/runbooks.md`` (GitHub heading slug)."""
    return alert.lower()


def _seconds(duration: str) -> int:
    m = re.fullmatch(r"(\d+)([smhd])", duration)
    if not m:
        raise ValueError(f"duration={duration!r}: expected a Prometheus duration such as 10m or 1h")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


# -- recording rules -------------------------------------------------------------------------------

def _names(cfg: dict[str, Any]) -> dict[str, str]:
    short, base, score_w = cfg["short_window"], cfg["baseline_window"], \
        cfg["alerts"]["DriftwatchScoreRegressionAfterChange"]["window"]
    return {
        "last_change": "agent:driftwatch_last_change_timestamp_seconds:max",
        "errors_short": f"agent:driftwatch_calls_errors:ratio_rate{short}",
        "errors_base": f"agent:driftwatch_calls_errors:ratio_rate{base}",
        "refusals_short": f"agent:driftwatch_refusals:ratio_rate{short}",
        "refusals_base": f"agent:driftwatch_refusals:ratio_rate{base}",
        "score_short": f"agent_metric:driftwatch_score:mean{score_w}",
        "score_base": f"agent_metric:driftwatch_score:mean{base}",
    }


def recording_rules(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    """The recording rule group (Prometheus rule-file shape: ``{"groups": [...]}``)."""
    n = _names(cfg)
    short, base = cfg["short_window"], cfg["baseline_window"]
    score_w = cfg["alerts"]["DriftwatchScoreRegressionAfterChange"]["window"]

    def ratio(num: str, w: str) -> str:
        return f"sum by (agent) (rate({num}[{w}]))\n/\nsum by (agent) (rate(driftwatch_calls_total{sel(cfg)}[{w}]))"

    def score(w: str) -> str:
        return (f"sum by (agent, metric) (rate(driftwatch_score_sum{sel(cfg)}[{w}]))\n/\n"
                f"sum by (agent, metric) (rate(driftwatch_score_count{sel(cfg)}[{w}]))")

    rules = [
        {"record": n["last_change"], "expr": f"max by (agent) (driftwatch_last_change_timestamp_seconds{sel(cfg)})"},
        {"record": n["errors_short"], "expr": ratio(f'driftwatch_calls_total{sel(cfg, ERROR)}', short)},
        {"record": n["errors_base"], "expr": ratio(f'driftwatch_calls_total{sel(cfg, ERROR)}', base)},
        {"record": n["refusals_short"], "expr": ratio(f"driftwatch_refusals_total{sel(cfg)}", short)},
        {"record": n["refusals_base"], "expr": ratio(f"driftwatch_refusals_total{sel(cfg)}", base)},
        {"record": n["score_short"], "expr": score(score_w)},
        {"record": n["score_base"], "expr": score(base)},
    ]
    return {"groups": [{"name": "driftwatch.rules", "interval": cfg["rule_interval"], "rules": rules}]}


# -- alerts ------------------------------------------------------------------------------------------

def _alert(cfg: dict[str, Any], name: str, expr: str, summary: str, description: str,
           extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    a = cfg["alerts"][name]
    return {
        "alert": name,
        "expr": expr,
        "for": a["for"],
        "labels": {"severity": a["severity"], **(extra_labels or {})},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{cfg['runbook_base_url']}#{runbook_anchor(name)}",
        },
    }


def alert_rules(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    """The alert group (Prometheus rule-file shape)."""
    n = _names(cfg)
    a = cfg["alerts"]
    short, base, after = cfg["short_window"], cfg["baseline_window"], cfg["after_change"]
    recent_change = f"(time() - {n['last_change']} < {_seconds(after)})"
    min_calls = cfg["min_calls"]
    enough_calls = f"sum by (agent) (increase(driftwatch_calls_total{sel(cfg)}[{short}])) >= {min_calls}"
    storm, reg, err, ref = (a["DriftwatchSelfModificationStorm"], a["DriftwatchScoreRegressionAfterChange"],
                            a["DriftwatchErrorRateRiseAfterChange"], a["DriftwatchRefusalSpike"])
    hint = "Find the change with `driftwatch history --agent {{ $labels.agent }} --since 2h`."
    ops = "|".join(cfg["operational_signals"])
    behavioural, operational = f'signal!~"{ops}"', f'signal=~"{ops}"'
    rules = [
        _alert(cfg, "DriftwatchBehaviorDrift",
               f"max by (agent, signal) (driftwatch_drift_alarm{sel(cfg, behavioural)}) > 0",
               "The behaviour of a self-modifying agent drifted away from its reference.",
               "Agent {{ $labels.agent }}: the {{ $labels.signal }} signal drifted away from the reference "
               "anchored at its last self-modification. " + hint),
        _alert(cfg, "DriftwatchOperationalDrift",
               f"max by (agent, signal) (driftwatch_drift_alarm{sel(cfg, operational)}) > 0",
               "The latency or cost of an agent's calls shifted away from its reference.",
               "Agent {{ $labels.agent }}: the {{ $labels.signal }} signal moved away from the calls before its last "
               "self-modification. Provider load moves latency too: compare with other agents first. " + hint),
        _alert(cfg, "DriftwatchSelfModificationStorm",
               f"sum by (agent) (increase(driftwatch_changes_total{sel(cfg)}[{storm['window']}])) > {storm['changes']}",
               "An agent is rewriting its prompts or scaffolding unusually often.",
               "Agent {{ $labels.agent }} recorded {{ $value | printf \"%.0f\" }} self-modifications in the last "
               f"{storm['window']} (threshold {storm['changes']}). " + hint),
        _alert(cfg, "DriftwatchScoreRegressionAfterChange",
               f"(\n  {n['score_short']}\n    < on (agent, metric) ({n['score_base']} offset {base})"
               f" - {reg['drop']}\n)\n"
               f"and on (agent) {recent_change}\n"
               f"and on (agent, metric) sum by (agent, metric) "
               f"(increase(driftwatch_score_count{sel(cfg)}[{reg['window']}])) >= {min_calls}",
               "Evaluation scores of an agent fell after a self-modification.",
               "Mean {{ $labels.metric }} score of agent {{ $labels.agent }} is {{ $value | printf \"%.2f\" }}, "
               f"more than {reg['drop']} below the {base} before its last self-modification. " + hint),
        _alert(cfg, "DriftwatchErrorRateRiseAfterChange",
               f"(\n  {n['errors_short']}\n    > on (agent) clamp_min(\n"
               f"      {err['factor']} * ({n['errors_base']} offset "
               f"{base} >= 0 or on (agent) 0 * {n['errors_short']}),\n      {err['min_ratio']}\n    )\n)\n"
               f"and on (agent) {recent_change}\nand on (agent) {enough_calls}",
               "The error rate of an agent rose after a self-modification.",
               "{{ $value | humanizePercentage }} of the calls of agent {{ $labels.agent }} failed in the last "
               f"{short}, at least {err['factor']}x the rate before its last self-modification. " + hint),
        _alert(cfg, "DriftwatchRefusalSpike",
               f"(\n  {n['refusals_short']}\n    > on (agent) clamp_min(\n"
               f"      {ref['factor']} * ({n['refusals_base']} offset "
               f"{base} >= 0 or on (agent) 0 * {n['refusals_short']}),\n      {ref['min_ratio']}\n    )\n)\n"
               f"and on (agent) {enough_calls}",
               "An agent refuses far more requests than before.",
               "{{ $value | humanizePercentage }} of the answers of agent {{ $labels.agent }} were refusals in the "
               f"last {short}, at least {ref['factor']}x the rate of the {base} before. " + hint),
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
    return {"groups": [{"name": "driftwatch.alerts", "interval": cfg["rule_interval"], "rules": rules}]}


# -- Grafana-managed alerting (file provisioning) ------------------------------------------------------

def _grafana_template(text: str) -> str:
    """Prometheus annotation templates → Grafana's: ``$value`` is the query's value ``$values.A.Value``."""
    return text.replace("$value ", "$values.A.Value ").replace("$value}", "$values.A.Value}")


def grafana_alert_provisioning(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    """The alert rules as Grafana-managed rules (``apiVersion: 1`` provisioning file).

    Each rule runs the same PromQL as its Prometheus twin (query ``A``) and fires for every series it
    returns (condition ``B`` = ``is_number($A) || is_nan($A) || is_inf($A)``, as Grafana's own
    Prometheus-rule import does). The expressions read the recording rules, so Prometheus must load
    ``driftwatch_rules.yaml`` either way.
    """
    g = cfg["grafana_alerting"]
    group = alert_rules(cfg)["groups"][0]
    rules = []
    for r in group["rules"]:
        rules.append({
            "uid": "dw-" + re.sub(r"(?<!^)(?=[A-Z])", "-", r["alert"].removeprefix("Driftwatch")).lower(),
            "title": r["alert"],
            "condition": "B",
            "for": r["for"],
            "noDataState": "OK",
            "execErrState": "Error",
            "labels": dict(r["labels"]),
            "annotations": {k: _grafana_template(v) for k, v in r["annotations"].items()},
            "data": [
                {"refId": "A", "relativeTimeRange": {"from": 600, "to": 0}, "datasourceUid": g["datasource_uid"],
                 "model": {"refId": "A", "expr": r["expr"], "instant": True, "range": False}},
                {"refId": "B", "datasourceUid": "__expr__",
                 "model": {"refId": "B", "type": "math", "expression": "is_number($A) || is_nan($A) || is_inf($A)"}},
            ],
        })
    return {"apiVersion": 1, "groups": [{"orgId": g["org_id"], "name": group["name"], "folder": g["folder"],
                                          "interval": group["interval"], "rules": rules}]}


# -- Kubernetes (prometheus-operator) -------------------------------------------------------------------

def kubernetes_prometheus_rule(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    """A ``PrometheusRule`` holding the recording rules and alerts."""
    groups = recording_rules(cfg)["groups"] + alert_rules(cfg)["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "driftwatch", "labels": {"app.kubernetes.io/name": "driftwatch",
                                                      "app.kubernetes.io/part-of": "driftwatch",
                                                      "prometheus": "k8s", "role": "alert-rules"}},
        "spec": {"groups": copy.deepcopy(groups)},
    }


def kubernetes_service_monitor(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    """A ``ServiceMonitor`` scraping the ``metrics`` port of Services labelled ``app.kubernetes.io/name: driftwatch``.

    ``jobLabel`` makes the job label the Service's ``app.kubernetes.io/name`` (``driftwatch``), which the
    configured selector matches.
    """
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "driftwatch", "labels": {"app.kubernetes.io/name": "driftwatch"}},
        "spec": {
            "jobLabel": "app.kubernetes.io/name",
            "selector": {"matchLabels": {"app.kubernetes.io/name": cfg["job"]}},
            "namespaceSelector": {"any": True},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}],
        },
    }


# -- dashboards ---------------------------------------------------------------------------------------

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")


class _Layout:
    """Numbers panels and refIds as they are added, so the JSON never carries id 0 or an empty refId."""

    def __init__(self, cfg: dict[str, Any], uid: str, title: str, description: str) -> None:
        d = cfg["dashboards"]
        self.cfg = cfg
        self.next_id = 1
        self.annotation_extra: list[dict[str, Any]] = []  # Prometheus annotation fields the SDK has no setter for
        self.dash = (
            Dashboard(title).uid(f"{d['uid_prefix']}-{uid}").tags(d["tags"]).description(description)
            .refresh(d["refresh"]).time(d["time_from"], "now").timezone("browser").editable()
            .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
            .link(DashboardLink("Driftwatch").type(_dashboards_link_type()).tags(["driftwatch"])
                  .as_dropdown(True).include_vars(True).keep_time(True))
        )

    def variable(self, name: str, label: str, query: str, *, multi: bool, include_all: bool) -> None:
        v = (QueryVariable(name).label(label).datasource(DS)
             .query({"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1})
             .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).multi(multi).include_all(include_all).sort(1))
        if include_all:
            v = v.all_value(".*")
        self.dash = self.dash.with_variable(v)

    def row(self, title: str) -> None:
        self.dash = self.dash.with_row(Row(title).id(self.next_id))
        self.next_id += 1

    def panel(self, builder: Any, title: str, description: str, targets: list[tuple[str, str]], *,
              width: int = 8, height: int = 8, unit: str | None = None, instant: bool = False,
              exemplars: bool = False) -> None:
        """Add a panel with one Prometheus query per ``(expr, legend)``; refIds A, B, …"""
        b = builder.id(self.next_id).title(title).description(description).datasource(DS).span(width).height(height)
        self.next_id += 1
        if unit:
            b = b.unit(unit)
        for i, (expr, legend) in enumerate(targets):
            q = Dataquery().expr(expr).ref_id(chr(ord("A") + i)).datasource(DS)
            q = q.instant().format(_table_format()) if instant else q.range()
            if legend:
                q = q.legend_format(legend)
            if exemplars:
                q = q.exemplar(True)
            b = b.with_target(q)
        self.dash = self.dash.with_panel(b)

    def annotation(self, name: str, expr: str, title: str, text: str, tags: str, color: str) -> None:
        self.dash = self.dash.annotation(
            AnnotationQuery().name(name).datasource(DS).enable(True).hide(False).icon_color(color).expr(expr))
        self.annotation_extra.append({"titleFormat": title, "textFormat": text, "tagKeys": tags,
                                       "useValueForTime": False, "step": "$__interval"})

    def build(self) -> dict[str, Any]:
        out = json.loads(json.dumps(self.dash.build(), cls=JSONEncoder))
        for ann, extra in zip(out.get("annotations", {}).get("list", []), self.annotation_extra, strict=True):
            ann.update(extra)
        return out


def _dashboards_link_type() -> Any:
    from grafana_foundation_sdk.models.dashboard import DashboardLinkType

    return DashboardLinkType.DASHBOARDS


def _table_format() -> Any:
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat

    return PromQueryFormat.TABLE


def _thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(value=v, color=c) for v, c in steps])


def _ts(**kw: Any) -> TimeseriesPanel:
    return (TimeseriesPanel().legend(gcommon.VizLegendOptions().display_mode(gmodels.LegendDisplayMode.LIST)
                                     .placement(gmodels.LegendPlacement.BOTTOM).show_legend(True))
            .tooltip(gcommon.VizTooltipOptions().mode(gmodels.TooltipDisplayMode.MULTI).sort(gmodels.SortOrder.DESCENDING))
            .fill_opacity(kw.get("fill", 10)).line_width(1))


def _bars() -> TimeseriesPanel:
    return _ts(fill=60).draw_style(gmodels.GraphDrawStyle.BARS).stacking(
        gcommon.StackingConfig().mode(gmodels.StackingMode.NORMAL))


def _stat() -> StatPanel:
    return (StatPanel().graph_mode(gmodels.BigValueGraphMode.NONE).color_mode(gmodels.BigValueColorMode.VALUE)
            .reduce_options(gcommon.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))


def _table() -> TablePanel:
    return TablePanel().with_transformation(
        _transformation("organize", {"excludeByName": {"Time": True, "__name__": True, "job": True,
                                                       "instance": True}}))


def _transformation(kind: str, options: dict[str, Any]) -> Any:
    from grafana_foundation_sdk.models.dashboard import DataTransformerConfig

    return DataTransformerConfig(id_val=kind, options=options)


def _state_timeline() -> StateTimelinePanel:
    return (StateTimelinePanel().show_value(gmodels.VisibilityMode.NEVER).merge_values(True)
            .thresholds(_thresholds((None, "green"), (1, "red"))))


def _signals(lay: _Layout, a: str) -> None:
    """The behavioural signals (shared by the overview and the drill-down); ``a`` is the agent matcher."""
    s = sel(lay.cfg, a)
    ri = "$__rate_interval"
    lay.panel(_ts(), "Calls / s by status", "Watched agent calls per second, by status.",
              [(f"sum by (agent, status) (rate(driftwatch_calls_total{s}[{ri}]))", "{{agent}} {{status}}")],
              unit="reqps", exemplars=True)
    lay.panel(_ts().thresholds(_thresholds((None, "green"), (0.05, "red"))), "Error ratio",
              "Share of watched calls that raised.",
              [(f'sum by (agent) (rate(driftwatch_calls_total{sel(lay.cfg, a, ERROR)}[{ri}]))\n/\n'
                f"sum by (agent) (rate(driftwatch_calls_total{s}[{ri}]))", "{{agent}}")],
              unit="percentunit")
    lay.panel(_ts(), "Refusal ratio", "Share of answers the drift engine classified as refusals.",
              [(f"sum by (agent) (rate(driftwatch_refusals_total{s}[{ri}]))\n/\n"
                f"sum by (agent) (rate(driftwatch_calls_total{s}[{ri}]))", "{{agent}}")],
              unit="percentunit")
    lay.panel(_ts(), "Output length (p50, p90)", "Characters per answer, from the output-size histogram.",
              [(f"histogram_quantile(0.5, sum by (agent, le) (rate(driftwatch_output_chars_bucket{s}[{ri}])))",
                "{{agent}} p50"),
               (f"histogram_quantile(0.9, sum by (agent, le) (rate(driftwatch_output_chars_bucket{s}[{ri}])))",
                "{{agent}} p90")], unit="none")
    lay.panel(_ts(), "Mean output length", "Mean characters per answer.",
              [(f"sum by (agent) (rate(driftwatch_output_chars_sum{s}[{ri}]))\n/\n"
                f"sum by (agent) (rate(driftwatch_output_chars_count{s}[{ri}]))", "{{agent}}")], unit="none")
    lay.panel(_ts(), "Format failure ratio", "Share of answers that failed the declared format check.",
              [(f"sum by (agent) (rate(driftwatch_format_failures_total{s}[{ri}]))\n/\n"
                f"sum by (agent) (rate(driftwatch_calls_total{s}[{ri}]))", "{{agent}}")], unit="percentunit")
    lay.panel(_ts().max(1).min(0), "Mean score", "Mean evaluation/feedback score (record_score), by metric.",
              [(f"sum by (agent, metric) (rate(driftwatch_score_sum{s}[{ri}]))\n/\n"
                f"sum by (agent, metric) (rate(driftwatch_score_count{s}[{ri}]))", "{{agent}} {{metric}}")],
              unit="none")
    lay.panel(_bars(), "Tool calls / s", "Tool calls by tool: a shift in the mix is a tool_mix drift signal.",
              [(f"sum by (agent, tool) (rate(driftwatch_tool_calls_total{s}[{ri}]))", "{{agent}} {{tool}}")],
              unit="ops")
    lay.panel(_ts(), "Tokens / s", "Language-model tokens, by type.",
              [(f"sum by (agent, type) (rate(driftwatch_tokens_total{s}[{ri}]))", "{{agent}} {{type}}")],
              unit="short")
    lay.panel(_ts(), "Call duration p95", "95th percentile of watched call duration (an operational signal).",
              [("histogram_quantile(0.95, sum by (agent, le) "
                f"(rate(driftwatch_call_duration_seconds_bucket{s}[{ri}])))",
                "{{agent}}")], unit="s", exemplars=True)


def overview(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    lay = _Layout(cfg, "overview", "Driftwatch / Overview",
                  "Every watched agent: self-modifications, drift alarms, behaviour and current revisions.")
    lay.variable("agent", "Agent", f"label_values(driftwatch_calls_total{sel(cfg)}, agent)", multi=True,
                 include_all=True)
    a = 'agent=~"$agent"'
    s = sel(cfg, a)
    lay.annotation("Self-modifications",
                   f"sum by (agent, component, kind, source) (changes(driftwatch_changes_total{s}[$__interval])) > 0",
                   "{{agent}}: {{kind}} change of {{component}}", "by {{source}}", "agent,kind,source", "orange")
    lay.row("Self-modifications and drift")
    lay.panel(_stat().thresholds(_thresholds((None, "green"), (1, "red"))), "Agents in drift alarm",
              "Agents with at least one latched drift alarm.",
              [(f"count(max by (agent) (driftwatch_drift_alarm{s}) > 0) or vector(0)", "")], width=6, height=5)
    lay.panel(_stat().thresholds(_thresholds((None, "blue"))), "Self-modifications in range",
              "Changes recorded in the dashboard's time range.",
              [(f"sum(increase(driftwatch_changes_total{s}[$__range]))", "")], width=6, height=5)
    lay.panel(_stat().thresholds(_thresholds((None, "green"), (1, "orange"))), "Internal errors in range",
              "Errors inside driftwatch, caught before they reached an agent.",
              [(f"sum(increase(driftwatch_internal_errors_total{sel(cfg)}[$__range])) or vector(0)", "")],
              width=6, height=5)
    lay.panel(_stat().thresholds(_thresholds((None, "red"), (1, "green"))), "Exporters up",
              "driftwatch /metrics endpoints Prometheus scrapes successfully.",
              [(f"sum(up{sel(cfg)})", "")], width=6, height=5)
    lay.panel(_bars(), "Self-modifications by agent and kind", "Recorded changes of prompts and scaffolding.",
              [(f"sum by (agent, kind) (increase(driftwatch_changes_total{s}[$__rate_interval]))",
                "{{agent}} {{kind}}")],
              width=12, unit="short", exemplars=True)
    lay.panel(_state_timeline(), "Drift alarms", "1 while a drift alarm is latched, per agent and signal.",
              [(f"max by (agent, signal) (driftwatch_drift_alarm{s})", "{{agent}} {{signal}}")], width=12)
    lay.panel(_ts().thresholds_style(gcommon.GraphThresholdsStyleConfig().mode(gmodels.GraphThresholdsStyleMode.LINE))
              .thresholds(_thresholds((None, "green"), (1, "red"))), "Drift score (1 = alarm)",
              "Each signal's drift statistic divided by its alarm threshold.",
              [(f"max by (agent, signal) (driftwatch_drift_score{s})", "{{agent}} {{signal}}")], width=12)
    lay.panel(_ts(), "Reference calls", "Calls in each agent's drift reference (below target: warming up).",
              [(f"max by (agent) (driftwatch_reference_calls{s})", "{{agent}}")], width=12, unit="short")
    lay.row("Behaviour")
    _signals(lay, a)
    lay.row("Revisions")
    lay.panel(_table(), "Current revisions", "The current revision of every component (short id).",
              [(f"max by (agent, component, revision) (driftwatch_revision_info{s} == 1)", "")],
              width=12, height=8, instant=True)
    lay.panel(_table(), "Time since last change", "Seconds since each component's last recorded change.",
              [(f"time() - max by (agent, component) (driftwatch_last_change_timestamp_seconds{s})", "")],
              width=12, height=8, instant=True, unit="s")
    return lay.build()


def agent_drilldown(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    lay = _Layout(cfg, "agent", "Driftwatch / Agent",
                  "One agent: its changes as annotations, each behavioural signal around the last change, "
                  "optimizer runs and scores, with exemplar links to traces.")
    lay.variable("agent", "Agent", f"label_values(driftwatch_calls_total{sel(cfg)}, agent)", multi=False,
                 include_all=False)
    a = 'agent="$agent"'
    s = sel(cfg, a)
    lay.annotation("Self-modifications",
                   f"sum by (component, kind, source) (changes(driftwatch_changes_total{s}[$__interval])) > 0",
                   "{{kind}} change of {{component}}", "by {{source}}", "kind,source", "orange")
    lay.annotation("Drift alarms", f"max by (signal) (driftwatch_drift_alarm{s}) > 0",
                   "drift alarm: {{signal}}", "signal {{signal}} left its reference", "signal", "red")
    lay.row("Last change")
    lay.panel(_stat().unit("s"), "Since last change", "Time since the agent's last recorded self-modification.",
              [(f"time() - max(driftwatch_last_change_timestamp_seconds{s})", "")], width=6, height=5)
    lay.panel(_stat(), "Changes in range", "Self-modifications recorded in the time range.",
              [(f"sum(increase(driftwatch_changes_total{s}[$__range]))", "")], width=6, height=5)
    lay.panel(_stat().thresholds(_thresholds((None, "green"), (1, "red"))), "Signals in alarm",
              "Drift signals latched in alarm.",
              [(f"sum(driftwatch_drift_alarm{s}) or vector(0)", "")], width=6, height=5)
    lay.panel(_stat(), "Reference calls", "Calls in the reference anchored at the last change.",
              [(f"max(driftwatch_reference_calls{s})", "")], width=6, height=5)
    lay.panel(_bars(), "Changes by component and kind", "Self-modifications; click an exemplar for the trace.",
              [(f"sum by (component, kind, source) (increase(driftwatch_changes_total{s}[$__rate_interval]))",
                "{{component}} {{kind}} ({{source}})")], width=12, exemplars=True)
    lay.panel(_ts(), "Change magnitude (p90)", "Normalized edit distance of the changes.",
              [("histogram_quantile(0.9, sum by (kind, le) "
                f"(rate(driftwatch_change_magnitude_bucket{s}[$__rate_interval])))",
                "{{kind}}")], width=12, unit="percentunit")
    lay.panel(_ts().thresholds_style(gcommon.GraphThresholdsStyleConfig().mode(gmodels.GraphThresholdsStyleMode.LINE))
              .thresholds(_thresholds((None, "green"), (1, "red"))), "Drift score by signal (1 = alarm)",
              "Each signal's drift statistic ÷ threshold since the reference was anchored.",
              [(f"max by (signal) (driftwatch_drift_score{s})", "{{signal}}")], width=12)
    lay.panel(_state_timeline(), "Drift alarm by signal", "Latched drift alarms.",
              [(f"max by (signal) (driftwatch_drift_alarm{s})", "{{signal}}")], width=12)
    lay.row("Signals around the last change")
    _signals(lay, a)
    lay.row("Optimizer runs and revisions")
    lay.panel(_bars(), "Optimizer runs", "Optimizer (compile) runs by outcome.",
              [(f"sum by (optimizer, outcome) (increase(driftwatch_optimizer_runs_total{s}[$__rate_interval]))",
                "{{optimizer}} {{outcome}}")], width=12, unit="short")
    lay.panel(_ts().min(0).max(1), "Best optimizer score", "Best candidate score of the last run of each optimizer.",
              [(f"max by (optimizer) (driftwatch_optimizer_best_score{s})", "{{optimizer}}")], width=12)
    lay.panel(_table(), "Current revisions", "Current revision of each component.",
              [(f"max by (component, revision) (driftwatch_revision_info{s} == 1)", "")], width=24, height=6,
              instant=True)
    return lay.build()


def optimizer_runs(cfg: dict[str, Any] = CONFIG) -> dict[str, Any]:
    lay = _Layout(cfg, "optimizers", "Driftwatch / Optimizer runs",
                  "Optimizer runs, candidates evaluated and best scores, per agent and optimizer.")
    lay.variable("agent", "Agent", f"label_values(driftwatch_optimizer_runs_total{sel(cfg)}, agent)", multi=True,
                 include_all=True)
    lay.variable("optimizer", "Optimizer",
                 f'label_values(driftwatch_optimizer_runs_total{sel(cfg, AGENTS)}, optimizer)',
                 multi=True, include_all=True)
    s = sel(cfg, AGENTS, OPTIMIZERS)
    lay.annotation("Changes deployed by optimizers",
                   "sum by (agent, component, kind, source) "
                   f"(changes(driftwatch_changes_total{sel(cfg, AGENTS, SOURCES)}[$__interval])) > 0",
                   "{{agent}}: {{kind}} change of {{component}}", "by {{source}}", "agent,source", "purple")
    lay.row("Runs")
    lay.panel(_stat(), "Runs in range", "Optimizer runs finished in the time range.",
              [(f"sum(increase(driftwatch_optimizer_runs_total{s}[$__range]))", "")], width=8, height=5)
    lay.panel(_stat().thresholds(_thresholds((None, "green"), (1, "red"))), "Failed runs in range",
              "Optimizer runs that raised.",
              [(f"sum(increase(driftwatch_optimizer_runs_total{sel(cfg, AGENTS, OPTIMIZERS, FAILED)}[$__range]))"
                " or vector(0)", "")],
              width=8, height=5)
    lay.panel(_stat(), "Candidates in range", "Candidate programs evaluated in the time range.",
              [(f"sum(increase(driftwatch_optimizer_candidates_total{s}[$__range]))", "")], width=8, height=5)
    lay.panel(_bars(), "Runs by outcome", "Finished optimizer runs.",
              [(f"sum by (agent, optimizer, outcome) (increase(driftwatch_optimizer_runs_total{s}[$__rate_interval]))",
                "{{agent}} {{optimizer}} {{outcome}}")], width=12, unit="short")
    lay.panel(_bars(), "Candidates evaluated", "Candidate programs evaluated by the runs.",
              [(f"sum by (agent, optimizer) (increase(driftwatch_optimizer_candidates_total{s}[$__rate_interval]))",
                "{{agent}} {{optimizer}}")], width=12, unit="short")
    lay.row("Scores")
    lay.panel(_ts().min(0).max(1), "Best score per run", "Best candidate score of each optimizer's last run.",
              [(f"max by (agent, optimizer) (driftwatch_optimizer_best_score{s})", "{{agent}} {{optimizer}}")],
              width=12)
    lay.panel(_table(), "Latest best scores", "Best candidate score of the last run, per agent and optimizer.",
              [(f"max by (agent, optimizer) (driftwatch_optimizer_best_score{s})", "")], width=12, instant=True)
    lay.panel(_bars(), "Changes deployed by optimizers", "Self-modifications whose source is an optimizer.",
              [("sum by (agent, source, kind) "
                f"(increase(driftwatch_changes_total{sel(cfg, AGENTS, SOURCES)}[$__rate_interval]))",
                "{{agent}} {{source}} {{kind}}")], width=12, unit="short", exemplars=True)
    lay.panel(_ts().min(0).max(1), "Production score after optimizer changes",
              "Mean evaluation score of the agents these optimizers tune.",
              [(f'sum by (agent, metric) (rate(driftwatch_score_sum{sel(cfg, AGENTS)}[$__rate_interval]))\n/\n'
                f'sum by (agent, metric) (rate(driftwatch_score_count{sel(cfg, AGENTS)}[$__rate_interval]))',
                "{{agent}} {{metric}}")], width=12)
    return lay.build()


def dashboards(cfg: dict[str, Any] = CONFIG) -> dict[str, dict[str, Any]]:
    """File name → dashboard JSON model."""
    return {
        "driftwatch-overview.json": overview(cfg),
        "driftwatch-agent.json": agent_drilldown(cfg),
        "driftwatch-optimizers.json": optimizer_runs(cfg),
    }
