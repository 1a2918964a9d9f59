"""Panel styles: grafana-foundation-sdk panel builders preset the way every driftwatch dashboard draws them."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as gcommon
from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.statetimeline import Panel as StateTimelinePanel
from grafana_foundation_sdk.builders.table import Panel as TablePanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.models import common as gmodels
from grafana_foundation_sdk.models.dashboard import DataTransformerConfig, Threshold, ThresholdsMode

__all__ = ["bars", "stat", "state_timeline", "table", "threshold_lines", "thresholds", "timeseries"]


def thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(value=v, color=c) for v, c in steps])


def timeseries(fill: int = 10) -> TimeseriesPanel:
    return (TimeseriesPanel().legend(gcommon.VizLegendOptions().display_mode(gmodels.LegendDisplayMode.LIST)
                                     .placement(gmodels.LegendPlacement.BOTTOM).show_legend(True))
            .tooltip(gcommon.VizTooltipOptions().mode(gmodels.TooltipDisplayMode.MULTI).sort(gmodels.SortOrder.DESCENDING))
            .fill_opacity(fill).line_width(1))


def threshold_lines(*steps: tuple[float | None, str]) -> TimeseriesPanel:
    """A time series drawing its thresholds as lines (drift scores: 1 = alarm)."""
    lines = gcommon.GraphThresholdsStyleConfig().mode(gmodels.GraphThresholdsStyleMode.LINE)
    return timeseries().thresholds_style(lines).thresholds(thresholds(*steps))


def bars() -> TimeseriesPanel:
    return timeseries(fill=60).draw_style(gmodels.GraphDrawStyle.BARS).stacking(
        gcommon.StackingConfig().mode(gmodels.StackingMode.NORMAL))


def stat() -> StatPanel:
    return (StatPanel().graph_mode(gmodels.BigValueGraphMode.NONE).color_mode(gmodels.BigValueColorMode.VALUE)
            .reduce_options(gcommon.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))


def table() -> TablePanel:
    hidden = {"Time": True, "__name__": True, "job": True, "instance": True}
    return TablePanel().with_transformation(DataTransformerConfig(id_val="organize", options={"excludeByName": hidden}))


def state_timeline() -> StateTimelinePanel:
    return (StateTimelinePanel().show_value(gmodels.VisibilityMode.NEVER).merge_values(True)
            .thresholds(thresholds((None, "green"), (1, "red"))))
