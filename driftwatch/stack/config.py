"""The servers' configurations: Prometheus scraping targets, Alertmanager routing to webhooks.

Plain dicts (written as JSON, which is YAML too), timed for tests and the demo: 1 s scrape and rule
evaluation, ``group_wait: 0s``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["alertmanager_config", "prometheus_config", "webhook_config", "webhook_receivers", "with_guard"]


def prometheus_config(*, targets: Sequence[str], job: str = "driftwatch", alertmanagers: Sequence[str] = (),
                      scrape_interval: str = "1s", evaluation_interval: str = "1s") -> dict[str, Any]:
    """A minimal Prometheus config scraping ``targets`` (``host:port``) as ``job``."""
    cfg: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                   "evaluation_interval": evaluation_interval},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }
    if alertmanagers:
        cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    return cfg


def webhook_config(url: str, *, group_by: Sequence[str] = ("alertname", "agent")) -> dict[str, Any]:
    """An Alertmanager config sending every alert to one webhook at once (``group_wait: 0s``)."""
    return {
        "route": {"receiver": "webhook", "group_by": list(group_by), "group_wait": "0s", "group_interval": "1s",
                  "repeat_interval": "1h"},
        "receivers": [{"name": "webhook", "webhook_configs": [{"url": url, "send_resolved": True}]}],
    }


def webhook_receivers(config: Mapping[str, Any], url: str) -> dict[str, Any]:
    """An Alertmanager config with its routing and inhibition kept, every receiver replaced by a webhook
    at ``<url>/<receiver name>``, and no waiting (``group_wait: 0s``, ``group_interval: 1s``)."""
    cfg = copy.deepcopy(dict(config))
    cfg["receivers"] = [{"name": r["name"], "webhook_configs": [{"url": f"{url.rstrip('/')}/{r['name']}",
                                                                 "send_resolved": True}]}
                        for r in cfg.get("receivers", [])]

    def fast(route: dict[str, Any]) -> None:
        for key, value in (("group_wait", "0s"), ("group_interval", "1s")):
            if key in route:
                route[key] = value
        for child in route.get("routes", []):
            fast(child)

    fast(cfg["route"])
    cfg["route"].update(group_wait="0s", group_interval="1s")
    return cfg


def alertmanager_config(webhook: str | None) -> dict[str, Any]:
    """Route every alert at once (``group_wait: 0s``) to a webhook, or to a receiver that sends nothing."""
    if webhook:
        return webhook_config(webhook)
    return {"route": {"receiver": "none", "group_by": ["alertname", "agent"], "group_wait": "0s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "none"}]}


def with_guard(config: Mapping[str, Any], url: str, token_file: str) -> dict[str, Any]:
    """``config`` with ``DriftwatchBehaviorDrift`` also sent, at once, to a guard receiver (``driftwatch guard``) at
    ``url`` with the bearer token in ``token_file`` (the shipped ``driftwatch-guard`` route, at test speed)."""
    cfg = copy.deepcopy(dict(config))
    route = cfg["route"]
    # a matching child route takes an alert from its parent's receiver, even with `continue`: the last child
    # (matching everything) keeps the parent's receiver for what no other child takes
    route["routes"] = [{"receiver": "driftwatch-guard", "matchers": ['alertname="DriftwatchBehaviorDrift"'],
                        "group_by": ["alertname", "agent", "signal"], "group_wait": "0s", "group_interval": "1s",
                        "continue": True}, *route.get("routes", []), {"receiver": route["receiver"]}]
    cfg["receivers"] = [*cfg.get("receivers", []), {"name": "driftwatch-guard", "webhook_configs": [{
        "url": url, "send_resolved": False,
        "http_config": {"authorization": {"type": "Bearer", "credentials_file": token_file}}}]}]
    return cfg
