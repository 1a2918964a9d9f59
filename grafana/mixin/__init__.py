"""The driftwatch monitoring mixin: recording rules, alerts and dashboards, generated from one config.

Everything the SRE side of driftwatch ships is derived here from :data:`CONFIG` (selectors, thresholds,
windows, ``for:`` durations, the runbook location), the way kubernetes-mixin derives its output from
``_config``. One module per output kind:

- :mod:`.config`: ``CONFIG``, the one place for selectors, thresholds and windows;
- :mod:`.rules`: recording rules (``level:metric:operations``) → ``grafana/alerts/driftwatch_rules.yaml``;
- :mod:`.alerts`: alert rules, the Prometheus-format master copy → ``grafana/alerts/driftwatch_alerts.yaml``
  (tested by ``promtool test rules grafana/alerts/tests.yaml``);
- :mod:`.grafana_alerting`: the same alerts as Grafana-managed rules → ``grafana/provisioning/alerting/``;
- :mod:`.kubernetes`: ``PrometheusRule`` and ``ServiceMonitor`` → ``integrations/kubernetes/``;
- :mod:`.dashboards`: Overview, Agent drill-down, Optimizer runs → ``grafana/dashboards/*.json``
  (grafana-foundation-sdk, Grafana 11.6 types).

The PromQL of the signals (error and refusal ratios, mean score, output length, latency, drift scores…)
comes from :mod:`driftwatch.promql`, which ``driftwatch report`` reads too; metric and label names come
only from :data:`driftwatch.metrics.CATALOGUE` (a test checks every expression). ``grafana/build.py``
(``make dashboards``) writes the files.
"""

from __future__ import annotations

from .alerts import alert_rules, runbook_anchor
from .config import CONFIG
from .dashboards import dashboards
from .grafana_alerting import grafana_alert_provisioning
from .kubernetes import kubernetes_prometheus_rule, kubernetes_service_monitor
from .rules import recording_rules

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
