"""Helpers shared by the Grafana/rules tests and the end-to-end test: the shipped files, the PromQL in them."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from driftwatch.metrics import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
ALERTS = GRAFANA / "alerts"
RULE_FILES = (ALERTS / "driftwatch_rules.yaml", ALERTS / "driftwatch_alerts.yaml")
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
INTEGRATIONS = ROOT / "integrations"

#: labels every scraped series has, besides the catalogue's own
TARGET_LABELS = frozenset({"job", "instance"})
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
_PROMETHEUS_OWN = {"up": frozenset()}  # series Prometheus makes itself, with their extra labels
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and",
                       "or", "unless", "inf", "nan", "atan2"})
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


@cache
def load_mixin() -> ModuleType:
    """The ``grafana/mixin/`` package imported by path (``grafana/`` is not a Python package)."""
    package = GRAFANA / "mixin"
    spec = importlib.util.spec_from_file_location("driftwatch_grafana_mixin", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@cache
def load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("driftwatch_grafana_build", GRAFANA / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules(path: Path) -> list[dict[str, Any]]:
    return [r for g in load_yaml(path)["groups"] for r in g["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return rules(ALERTS / "driftwatch_alerts.yaml")


def recording_rules() -> list[dict[str, Any]]:
    return rules(ALERTS / "driftwatch_rules.yaml")


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in DASHBOARDS}


@dataclass(frozen=True)
class Query:
    """One PromQL expression a dashboard runs: where it is, and how Grafana runs it."""

    dashboard: str
    where: str  # "panel 3 'Calls / s' A", "annotation 'Self-modifications'", "variable agent"
    expr: str
    instant: bool = False


def dashboard_queries(name: str, dash: dict[str, Any]) -> list[Query]:
    """Every PromQL expression of a dashboard: panel targets, annotations, query variables."""
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append(Query(name, f"panel {p['id']} {p['title']!r} {t['refId']}", t["expr"], bool(t.get("instant"))))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append(Query(name, f"annotation {a['name']!r}", a["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip(), re.S)
            assert m, f"{name}: variable {v['name']}: expected label_values(selector, label), got {q!r}"
            out.append(Query(name, f"variable {v['name']}", m.group(1), instant=True))
    return out


def all_dashboard_queries() -> list[Query]:
    return [q for name, d in load_dashboards().items() for q in dashboard_queries(name, d)]


def substitute(expr: str, *, rate_interval: str = "1m", interval: str = "15s", range_: str = "1h",
               variables: dict[str, str] | None = None) -> str:
    """Replace Grafana's macros and ``$var`` references with concrete values (PromQL that Prometheus parses)."""
    out = (expr.replace("$__rate_interval", rate_interval).replace("$__interval", interval)
           .replace("$__range", range_))
    for name, value in (variables or {"agent": ".*", "optimizer": ".*"}).items():
        out = out.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in out, f"unsubstituted variable in {out!r}"
    return out


# -- metric and label names ------------------------------------------------------------------------

CATALOGUE_LABELS: dict[str, frozenset[str]] = {s.name: frozenset(s.labels) for s in CATALOGUE}
_TYPES = {s.name: s.type for s in CATALOGUE}


def base_metric(series: str) -> str | None:
    """The catalogue metric an exposed series name belongs to (``x_bucket`` → ``x``), or ``None``."""
    if series in _TYPES:
        return series
    for suffix in _HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and _TYPES.get(base) == "histogram":
            return base
    return None


def references(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """``([(series name, labels in its matchers)], labels in by/on/without/ignoring clauses)``.

    A small tokenizer rather than a parser: strings, range/offset durations and grouping clauses are
    taken out first, then ``name{matchers}`` and bare names not followed by ``(`` are the series.
    The expressions are also parsed by the real Prometheus parser (promtool) in the tests.
    """
    text = _STRING.sub('""', expr)
    grouping: set[str] = set()
    for m in _GROUPING.finditer(text):
        grouping.update(x.strip() for x in m.group(2).split(",") if x.strip())
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\boffset\s+\w+", " ", text)
    series: list[tuple[str, set[str]]] = []
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*(\{[^}]*\})|([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        if m.group(2) is not None:  # selector with matchers (a name or a bare {...})
            labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2)))
            name = m.group(1) or ""
            labels.discard("__name__")
            series.append((name, labels))
        elif m.group(3) and not m.group(4) and m.group(3) not in _KEYWORDS:
            if re.fullmatch(r"[0-9.e+-]+", m.group(3)):
                continue
            series.append((m.group(3), set()))
    return series, grouping


def check_names(expr: str, recorded: dict[str, frozenset[str]] | None = None) -> list[str]:
    """Problems with the metric and label names of ``expr`` (empty when every name is in the catalogue).

    ``recorded`` maps recording-rule names to the labels they keep.
    """
    recorded = recorded or {}
    problems = []
    series, grouping = references(expr)
    allowed_grouping: set[str] = set()
    for name, labels in series:
        known: frozenset[str] | None
        if name in recorded:
            known = recorded[name]
        elif name in _PROMETHEUS_OWN:
            known = _PROMETHEUS_OWN[name] | TARGET_LABELS
        else:
            base = base_metric(name)
            if base is None:
                problems.append(f"metric {name!r} is not in driftwatch.metrics.CATALOGUE")
                continue
            known = CATALOGUE_LABELS[base] | TARGET_LABELS
            if name.endswith("_bucket"):
                known = known | {"le"}
        unknown = labels - known
        if unknown:
            problems.append(f"{name}: labels {sorted(unknown)} are not among {sorted(known)}")
        allowed_grouping |= known
    bad = grouping - allowed_grouping
    if bad:
        problems.append(f"grouping labels {sorted(bad)} are not labels of {[n for n, _ in series]}")
    return problems


def recorded_labels() -> dict[str, frozenset[str]]:
    """Recording-rule name → the labels it keeps (its ``by (...)`` clause)."""
    out = {}
    for r in recording_rules():
        _, grouping = references(r["expr"])
        out[r["record"]] = frozenset(grouping)
    return out
