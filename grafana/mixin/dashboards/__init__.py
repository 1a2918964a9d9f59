"""The dashboards, one module each; :mod:`.layout` holds what they share.

A new dashboard is a module with a ``(cfg) -> dict`` builder, listed in :func:`dashboards`.
"""

from __future__ import annotations

from typing import Any

from ..config import CONFIG
from .agent import agent_drilldown
from .optimizers import optimizer_runs
from .overview import overview

__all__ = ["agent_drilldown", "dashboards", "optimizer_runs", "overview"]


def dashboards(cfg: dict[str, Any] = CONFIG) -> dict[str, dict[str, Any]]:
    """File name (in ``grafana/dashboards/``) → dashboard JSON model."""
    return {
        "driftwatch-overview.json": overview(cfg),
        "driftwatch-agent.json": agent_drilldown(cfg),
        "driftwatch-optimizers.json": optimizer_runs(cfg),
    }
