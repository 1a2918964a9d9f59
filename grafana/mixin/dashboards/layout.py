"""Shared dashboard building blocks: the :class:`Layout` that numbers panels and refIds, signal targets,
and the behaviour panels the overview and the agent drill-down share (panel styles are in :mod:`.panels`).

Built with grafana-foundation-sdk (pinned ``1769699379!11.6.0``: Grafana 11.6 types).
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders.dashboard import (
    AnnotationQuery,
    Dashboard,
    DashboardLink,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DashboardLinkType, DataSourceRef, VariableRefresh
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from driftwatch import promql

from ..config import matchers, sel
from . import panels

__all__ = ["DS", "RATE_INTERVAL", "Layout", "Target", "behaviour_panels", "target"]

#: the rate window of every panel: Grafana picks it from the scrape interval and the time range
RATE_INTERVAL = "$__rate_interval"

#: every panel, target, variable and annotation queries the dashboard's `datasource` variable
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")

Target = tuple[str, str]  # (PromQL, legend format)


class Layout:
    """One dashboard being built: numbers panels and refIds as they are added (never id 0 or an empty refId).

    Panels flow left to right in rows of 24 columns; :meth:`row` starts a new row. Adding a panel or a
    row to a dashboard is one call in that dashboard's module.
    """

    def __init__(self, cfg: dict[str, Any], uid: str, title: str, description: str) -> None:
        d = cfg["dashboards"]
        self.cfg = cfg
        self.next_id = 1
        self.annotation_extra: list[dict[str, Any]] = []  # Prometheus annotation fields the SDK has no setter for
        self.dash = (
            Dashboard(title).uid(f"{d['uid_prefix']}-{uid}").tags(d["tags"]).description(description)
            .refresh(d["refresh"]).time(d["time_from"], "now").timezone("browser").editable()
            .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
            .link(DashboardLink("Driftwatch").type(DashboardLinkType.DASHBOARDS).tags(["driftwatch"])
                  .as_dropdown(True).include_vars(True).keep_time(True))
        )

    def matchers(self, *extra: str) -> tuple[str, ...]:
        """The configured matchers, then ``extra`` (for :func:`target`)."""
        return matchers(self.cfg, *extra)

    def sel(self, *extra: str) -> str:
        """The configured selector with ``extra`` matchers: ``{job="driftwatch", agent=~"$agent"}``."""
        return sel(self.cfg, *extra)

    def variable(self, name: str, label: str, metric: str, *extra: str, multi: bool) -> None:
        """A variable listing the values of label ``name`` on ``metric`` (multi-select ones offer All = ``.*``)."""
        query = f"label_values({metric}{self.sel(*extra)}, {name})"
        v = (QueryVariable(name).label(label).datasource(DS)
             .query({"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1})
             .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).multi(multi).include_all(multi).sort(1))
        if multi:
            v = v.all_value(".*")
        self.dash = self.dash.with_variable(v)

    def row(self, title: str) -> None:
        self.dash = self.dash.with_row(Row(title).id(self.next_id))
        self.next_id += 1

    def panel(self, builder: Any, title: str, description: str, targets: list[Target], *,
              width: int = 8, height: int = 8, unit: str | None = None, instant: bool = False,
              exemplars: bool = False) -> None:
        """Add a panel with one Prometheus query per ``(expr, legend)``; refIds A, B, …"""
        b = builder.id(self.next_id).title(title).description(description).datasource(DS).span(width).height(height)
        self.next_id += 1
        if unit:
            b = b.unit(unit)
        for i, (expr, legend) in enumerate(targets):
            q = Dataquery().expr(expr).ref_id(chr(ord("A") + i)).datasource(DS)
            q = q.instant().format(PromQueryFormat.TABLE) if instant else q.range()
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

    def change_annotation(self, name: str, selector: str, by: str, title: str, tags: str, color: str) -> None:
        """Mark each recorded self-modification (``driftwatch_changes_total`` moving), grouped ``by``."""
        self.annotation(name, f"sum by ({by}) (changes(driftwatch_changes_total{selector}[$__interval])) > 0",
                        title, "by {{source}}", tags, color)

    def build(self) -> dict[str, Any]:
        out = json.loads(json.dumps(self.dash.build(), cls=JSONEncoder))
        for ann, extra in zip(out.get("annotations", {}).get("list", []), self.annotation_extra, strict=True):
            ann.update(extra)
        return out


def target(signal: promql.Signal, matchers: tuple[str, ...], *, by: tuple[str, ...] | None = None, suffix: str = "",
           **params: object) -> Target:
    """A panel query rendering ``signal`` over :data:`RATE_INTERVAL`; the legend names its grouping labels."""
    grouping = signal.by if by is None else by
    legend = " ".join("{{" + label + "}}" for label in grouping) + (f" {suffix}" if suffix else "")
    window = RATE_INTERVAL if signal.windowed else None
    return signal.render(matchers, window, by=grouping, **params), legend


def behaviour_panels(lay: Layout, agent: str) -> None:
    """The behavioural signals (the overview and the drill-down); ``agent`` is the agent matcher."""
    m = lay.matchers(agent)
    line, bars = panels.timeseries, panels.bars
    lay.panel(line(), "Calls / s by status", "Watched agent calls per second, by status.",
              [target(promql.CALLS, m)], unit="reqps", exemplars=True)
    lay.panel(line().thresholds(panels.thresholds((None, "green"), (0.05, "red"))), "Error ratio",
              "Share of watched calls that raised.", [target(promql.ERROR, m)], unit="percentunit")
    lay.panel(line(), "Refusal ratio", "Share of answers the drift engine classified as refusals.",
              [target(promql.REFUSAL, m)], unit="percentunit")
    lay.panel(line(), "Output length (p50, p90)", "Characters per answer, from the output-size histogram.",
              [target(promql.OUTPUT_CHARS_QUANTILE, m, q=0.5, suffix="p50"),
               target(promql.OUTPUT_CHARS_QUANTILE, m, q=0.9, suffix="p90")], unit="none")
    lay.panel(line(), "Mean output length", "Mean characters per answer.",
              [target(promql.OUTPUT_CHARS, m)], unit="none")
    lay.panel(line(), "Format failure ratio", "Share of answers that failed the declared format check.",
              [target(promql.FORMAT_FAILURE, m)], unit="percentunit")
    lay.panel(line().max(1).min(0), "Mean score", "Mean evaluation/feedback score (record_score), by metric.",
              [target(promql.SCORE, m)], unit="none")
    lay.panel(bars(), "Tool calls / s", "Tool calls by tool: a shift in the mix is a tool_mix drift signal.",
              [target(promql.TOOL_CALLS, m)], unit="ops")
    lay.panel(line(), "Tokens / s", "Language-model tokens, by type.", [target(promql.TOKENS, m)], unit="short")
    lay.panel(line(), "Call duration p95", "95th percentile of watched call duration (an operational signal).",
              [target(promql.LATENCY_QUANTILE, m, q=0.95)], unit="s", exemplars=True)
