"""The generated Grafana dashboards: up to date, structurally sound, and every PromQL expression valid."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.helpers.promql import (
    GRAFANA,
    ROOT,
    all_dashboard_queries,
    check_names,
    dashboard_queries,
    load_build,
    load_dashboards,
    substitute,
)

DS = {"type": "prometheus", "uid": "${datasource}"}


def lint(dash: dict[str, Any]) -> list[str]:
    """Structural problems Grafana would silently paper over (ids, refIds, datasources, layout, variables)."""
    problems: list[str] = []
    panels = dash.get("panels", [])
    ids = [p.get("id") for p in panels]
    if any(not isinstance(i, int) or i <= 0 for i in ids):
        problems.append(f"panel ids must be positive integers: {ids}")
    if len(set(ids)) != len(ids):
        problems.append(f"duplicate panel ids: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    titles = [p.get("title") for p in panels if p.get("type") != "row"]
    if len(set(titles)) != len(titles):
        problems.append("duplicate panel titles")
    boxes = []
    for p in panels:
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"panel {p.get('id')}: gridPos must have integer x, y, w, h: {g}")
            continue
        if g["w"] <= 0 or g["h"] <= 0 or g["x"] < 0 or g["y"] < 0 or g["x"] + g["w"] > 24:
            problems.append(f"panel {p.get('id')}: gridPos outside the 24-column grid: {g}")
        for other_id, o in boxes:
            if g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"] and g["y"] < o["y"] + o["h"] \
                    and o["y"] < g["y"] + g["h"]:
                problems.append(f"panels {other_id} and {p.get('id')} overlap")
        boxes.append((p.get("id"), g))
        if p.get("type") == "row":
            continue
        if p.get("datasource") != DS:
            problems.append(f"panel {p.get('id')}: datasource {p.get('datasource')} is not {DS}")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"panel {p.get('id')}: no targets")
        refs = [t.get("refId") for t in targets]
        if any(not r for r in refs) or len(set(refs)) != len(refs):
            problems.append(f"panel {p.get('id')}: refIds must be non-empty and unique: {refs}")
        for t in targets:
            if t.get("datasource") != DS:
                problems.append(f"panel {p.get('id')} {t.get('refId')}: target datasource {t.get('datasource')}")
            if not (t.get("expr") or "").strip():
                problems.append(f"panel {p.get('id')} {t.get('refId')}: empty expr")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("query") != "prometheus":
        problems.append("no `datasource` variable of type prometheus")
    for v in variables.values():
        if v["type"] == "query" and v.get("datasource") != DS:
            problems.append(f"variable {v['name']}: datasource {v.get('datasource')}")
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("datasource") != DS:
            problems.append(f"annotation {a.get('name')}: datasource {a.get('datasource')}")
    used = set()
    for q in dashboard_queries(dash.get("uid", "?"), dash):
        used |= {m for m in re.findall(r"\$\{?(\w+)", q.expr) if not m.startswith("__")}
    for name in sorted(used - set(variables)):
        problems.append(f"variable ${name} is used but not defined")
    return problems


def test_regenerating_changes_nothing_committed() -> None:
    """`grafana/build.py --check` (what `make dashboards` writes) finds every generated file up to date."""
    out = subprocess.run([sys.executable, str(GRAFANA / "build.py"), "--check"], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    stale = [p for p, text in load_build().outputs().items() if not p.exists() or p.read_text() != text]
    assert stale == []


def test_the_check_notices_a_stale_file(tmp_path, monkeypatch) -> None:
    """--check exits 1 and names the file when a generated file differs from what the code produces."""
    build = load_build()
    real = build.outputs()
    target = next(p for p in real if p.name == "driftwatch-overview.json")
    stale = tmp_path / target.name
    stale.write_text(real[target].replace("Driftwatch / Overview", "Edited by hand"))
    monkeypatch.setattr(build, "outputs", lambda: {stale: real[target]})
    monkeypatch.setattr(build, "ROOT", tmp_path)
    assert build.main(["--check"]) == 1
    assert stale.read_text() != real[target]  # --check writes nothing


def test_dashboards_are_the_three_promised_ones() -> None:
    """Overview, Agent drill-down and Optimizer runs, with distinct uids and a Grafana 11 schema."""
    dashes = load_dashboards()
    assert set(dashes) == {"driftwatch-overview.json", "driftwatch-agent.json", "driftwatch-optimizers.json"}
    uids = [d["uid"] for d in dashes.values()]
    assert len(set(uids)) == 3
    for d in dashes.values():
        assert d["title"].startswith("Driftwatch / ")
        assert 39 <= d["schemaVersion"] <= 41  # Grafana 11.x


@pytest.mark.parametrize("name", sorted(load_dashboards()))
def test_dashboard_lint(name: str) -> None:
    """Unique positive panel ids, unique refIds, Prometheus datasource refs, non-overlapping grid, variables."""
    assert lint(load_dashboards()[name]) == []


def test_lint_catches_broken_dashboards() -> None:
    """The lint is not vacuous: duplicate ids, empty refIds, foreign datasources and overlaps are reported."""
    dash = load_dashboards()["driftwatch-overview.json"]
    broken = copy.deepcopy(dash)
    panels = [p for p in broken["panels"] if p["type"] != "row"]
    panels[1]["id"] = panels[0]["id"]
    panels[2]["targets"][0]["refId"] = ""
    panels[3]["datasource"] = {"type": "prometheus", "uid": "hardcoded"}
    panels[4]["gridPos"] = dict(panels[5]["gridPos"])
    panels[6]["targets"][0]["expr"] += ' + on() vector($missing)'
    problems = "\n".join(lint(broken))
    for expected in ("duplicate panel ids", "refIds must be non-empty", "hardcoded", "overlap",
                     "$missing is used but not defined"):
        assert expected in problems


def test_dashboards_cover_what_the_issue_asks() -> None:
    """Overview, drill-down (agent variable, change annotations, exemplars) and optimizer panels: right metrics."""
    dashes = load_dashboards()

    def exprs(name: str) -> str:
        return "\n".join(q.expr for q in dashboard_queries(name, dashes[name]))

    overview = exprs("driftwatch-overview.json")
    for metric in ("driftwatch_changes_total", "driftwatch_drift_alarm", "driftwatch_calls_total",
                   "driftwatch_refusals_total", "driftwatch_output_chars_bucket", "driftwatch_score_sum",
                   "driftwatch_revision_info"):
        assert metric in overview, metric
    agent = dashes["driftwatch-agent.json"]
    assert [v["name"] for v in agent["templating"]["list"]] == ["datasource", "agent"]
    assert any("driftwatch_changes_total" in a["expr"] for a in agent["annotations"]["list"])
    assert any(t.get("exemplar") for p in agent["panels"] for t in p.get("targets", []))
    for metric in ("driftwatch_optimizer_runs_total", "driftwatch_optimizer_best_score", "driftwatch_drift_score"):
        assert metric in exprs("driftwatch-agent.json"), metric
    for metric in ("driftwatch_optimizer_runs_total", "driftwatch_optimizer_candidates_total",
                   "driftwatch_optimizer_best_score"):
        assert metric in exprs("driftwatch-optimizers.json"), metric


def test_every_dashboard_expression_names_only_catalogue_metrics_and_labels() -> None:
    """Panels, annotations and variables use only metric and label names from driftwatch.metrics.CATALOGUE."""
    queries = all_dashboard_queries()
    assert len(queries) > 50
    problems = {q.where: check_names(substitute(q.expr)) for q in queries}
    assert {k: v for k, v in problems.items() if v} == {}
    for d in load_dashboards().values():  # legends name labels too
        for p in d["panels"]:
            for t in p.get("targets", []):
                for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")):
                    assert check_names(f"sum by ({label}) ({substitute(t['expr'])})") == [], (p["title"], label)


def test_every_dashboard_expression_parses_with_promtool(tmp_path) -> None:
    """Every panel, annotation and variable expression is valid PromQL for the real Prometheus parser."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `make test` installs the Debian package prometheus")
    queries = all_dashboard_queries()
    rules = [{"record": f"dashboard_check:expr:n{i}", "expr": substitute(q.expr)} for i, q in enumerate(queries)]
    path = tmp_path / "dashboard_exprs.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout
    broken = [{"record": "dashboard_check:expr:bad", "expr": "sum by (agent (rate(driftwatch_calls_total[5m]))"}]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": broken}]}))
    assert subprocess.run([promtool, "check", "rules", str(path)], capture_output=True).returncode != 0
