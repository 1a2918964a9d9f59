"""prometheus-operator objects (``integrations/kubernetes/``): a ``PrometheusRule`` and a ``ServiceMonitor``."""

from __future__ import annotations

import copy
from typing import Any

from .alerts import alert_rules
from .config import CONFIG
from .rules import recording_rules

__all__ = ["kubernetes_prometheus_rule", "kubernetes_service_monitor"]


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
