"""The alerts as Grafana-managed rules (``grafana/provisioning/alerting/driftwatch.yaml``), in step with
:func:`.alerts.alert_rules`: the same PromQL, ``for:``, labels and annotations."""

from __future__ import annotations

import re
from typing import Any

from .alerts import alert_rules
from .config import CONFIG

__all__ = ["grafana_alert_provisioning"]


def _grafana_template(text: str) -> str:
    """Prometheus annotation templates → Grafana's: ``$value`` is the query's value ``$values.A.Value``."""
    return text.replace("$value ", "$values.A.Value ").replace("$value}", "$values.A.Value}")


def _uid(alert: str) -> str:
    """``DriftwatchRefusalSpike`` → ``dw-refusal-spike``."""
    return "dw-" + re.sub(r"(?<!^)(?=[A-Z])", "-", alert.removeprefix("Driftwatch")).lower()


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
            "uid": _uid(r["alert"]),
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
