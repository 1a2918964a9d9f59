"""integrations/ and grafana/provisioning/: Alertmanager routing, Prometheus config, Kubernetes objects,
Grafana-managed alerts kept in step with the Prometheus rules, data sources, collector and compose files."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.promql import (
    ALERTS,
    GRAFANA,
    INTEGRATIONS,
    RULE_FILES,
    load_dashboards,
    load_mixin,
    load_yaml,
)

AM_CONFIG = INTEGRATIONS / "alertmanager.yml"
_DURATION = re.compile(r"^(\d+[smhdw])+$")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: `make test` installs the Debian package {package}")
    return path


def _routes(*labels: str, config: Path = AM_CONFIG) -> str:
    out = subprocess.run([_tool("amtool", "prometheus-alertmanager"), "config", "routes", "test",
                          f"--config.file={config}", *labels], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip()


# -- Alertmanager -----------------------------------------------------------------------------------

@pytest.mark.servers
def test_alertmanager_config_passes_amtool() -> None:
    """`amtool check-config` accepts integrations/alertmanager.yml with its four receivers and inhibition."""
    out = subprocess.run([_tool("amtool", "prometheus-alertmanager"), "check-config", str(AM_CONFIG)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout and "1 inhibit rules" in out.stdout and "4 receivers" in out.stdout


@pytest.mark.servers
def test_alerts_route_by_severity() -> None:
    """critical pages (PagerDuty) and goes to Slack; warning goes to Slack; anything else to the webhook.
    Behavioural drift also reaches the guard receiver (driftwatch guard --listen), which applies the agent's policy."""
    assert _routes("alertname=DriftwatchBehaviorDrift", "severity=critical", "agent=bot") == \
        "driftwatch-guard,pagerduty,slack"
    assert _routes("alertname=DriftwatchOperationalDrift", "severity=critical", "agent=bot") == "pagerduty,slack"
    assert _routes("alertname=DriftwatchRefusalSpike", "severity=warning", "agent=bot") == "slack"
    assert _routes("alertname=DriftwatchSomethingNew", "severity=info") == "webhook"
    assert _routes("alertname=OtherTeamAlert", "severity=critical") == "webhook"


@pytest.mark.servers
def test_every_shipped_alert_has_a_route_for_its_severity() -> None:
    """Each alert of the shipped rules reaches the receivers its severity promises."""
    want = {"critical": "pagerduty,slack", "warning": "slack", "info": "webhook"}
    rules = [r for g in load_yaml(ALERTS / "driftwatch_alerts.yaml")["groups"] for r in g["rules"]]
    for r in rules:
        sev = r["labels"]["severity"]
        guard = "driftwatch-guard," if r["alert"] == "DriftwatchBehaviorDrift" else ""
        assert _routes(f"alertname={r['alert']}", f"severity={sev}", "agent=a") == guard + want[sev], r["alert"]


def test_warnings_are_inhibited_by_criticals_of_the_same_agent() -> None:
    """The inhibit rule mutes Driftwatch warnings while a Driftwatch critical of the same agent fires."""
    cfg = load_yaml(AM_CONFIG)
    [rule] = cfg["inhibit_rules"]
    assert 'severity="critical"' in rule["source_matchers"]
    assert 'severity="warning"' in rule["target_matchers"]
    assert rule["equal"] == ["agent"]
    assert cfg["route"]["group_by"] == ["alertname", "agent"]


# -- Prometheus -------------------------------------------------------------------------------------

@pytest.mark.servers
def test_prometheus_example_config_passes_promtool(tmp_path: Path) -> None:
    """integrations/prometheus.yml is valid, loads both rule files, and scrapes the job the rules select."""
    shutil.copy(INTEGRATIONS / "prometheus.yml", tmp_path / "prometheus.yml")
    (tmp_path / "rules").mkdir()
    for f in RULE_FILES:
        shutil.copy(f, tmp_path / "rules" / f.name)
    out = subprocess.run([_tool("promtool", "prometheus"), "check", "config", str(tmp_path / "prometheus.yml")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 7 rules found" in out.stdout and "SUCCESS: 9 rules found" in out.stdout
    cfg = load_yaml(INTEGRATIONS / "prometheus.yml")
    config = load_mixin().CONFIG
    assert [j["job_name"] for j in cfg["scrape_configs"]] == [config["job"]]
    assert f'job="{config["job"]}"' in config["selector"]


# -- Kubernetes -------------------------------------------------------------------------------------

def test_prometheus_rule_holds_exactly_the_shipped_rules() -> None:
    """The PrometheusRule's groups equal the two Prometheus rule files, in order."""
    obj = load_yaml(INTEGRATIONS / "kubernetes" / "prometheusrule.yaml")
    assert (obj["apiVersion"], obj["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    groups = [g for f in RULE_FILES for g in load_yaml(f)["groups"]]
    assert obj["spec"]["groups"] == groups


def test_service_monitor_selects_the_metrics_port_as_the_driftwatch_job() -> None:
    """The ServiceMonitor scrapes `metrics` ports of Services named driftwatch, whose job label the rules select."""
    obj = load_yaml(INTEGRATIONS / "kubernetes" / "servicemonitor.yaml")
    assert (obj["apiVersion"], obj["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    spec = obj["spec"]
    job = load_mixin().CONFIG["job"]
    assert spec["selector"]["matchLabels"][spec["jobLabel"]] == job
    assert [e["port"] for e in spec["endpoints"]] == ["metrics"]
    assert all(_DURATION.match(e["interval"]) for e in spec["endpoints"])


# -- Grafana-managed alerting -----------------------------------------------------------------------

def grafana_rule_problems(doc: dict[str, Any]) -> list[str]:
    """Checks Grafana applies when it loads an alerting provisioning file (after rules_types.go)."""
    problems = []
    if doc.get("apiVersion") != 1:
        problems.append("apiVersion must be 1")
    uids: set[str] = set()
    for g in doc.get("groups", []):
        for key in ("name", "folder"):
            if not g.get(key):
                problems.append(f"rule group has no {key} set")
        if not _DURATION.match(str(g.get("interval", ""))):
            problems.append(f"group {g.get('name')}: bad interval {g.get('interval')!r}")
        for r in g.get("rules", []):
            title = r.get("title")
            if not r.get("uid") or len(r["uid"]) > 40 or not re.fullmatch(r"[A-Za-z0-9_-]+", r["uid"]):
                problems.append(f"rule {title!r}: bad uid {r.get('uid')!r}")
            if r.get("uid") in uids:
                problems.append(f"rule {title!r}: duplicate uid")
            uids.add(r.get("uid"))
            if not title:
                problems.append("rule without title")
            data = r.get("data") or []
            if not data:
                problems.append(f"rule {title!r}: no data")
            refs = [d.get("refId") for d in data]
            if r.get("condition") not in refs:
                problems.append(f"rule {title!r}: condition {r.get('condition')!r} is not a refId of data")
            for d in data:
                if not d.get("datasourceUid") or not isinstance(d.get("model"), dict):
                    problems.append(f"rule {title!r} refId {d.get('refId')}: datasourceUid and model are required")
                elif d["model"].get("refId") != d.get("refId"):
                    problems.append(f"rule {title!r} refId {d.get('refId')}: model refId differs")
            if not _DURATION.match(str(r.get("for", ""))):
                problems.append(f"rule {title!r}: bad 'for' {r.get('for')!r}")
            if r.get("noDataState") not in ("NoData", "Alerting", "OK", "KeepLast"):
                problems.append(f"rule {title!r}: bad noDataState")
            if r.get("execErrState") not in ("Alerting", "Error", "OK", "KeepLast"):
                problems.append(f"rule {title!r}: bad execErrState")
    return problems


def test_grafana_managed_alerts_are_valid_provisioning() -> None:
    """grafana/provisioning/alerting/driftwatch.yaml passes the checks Grafana applies on load."""
    doc = load_yaml(GRAFANA / "provisioning" / "alerting" / "driftwatch.yaml")
    assert grafana_rule_problems(doc) == []
    broken = load_yaml(GRAFANA / "provisioning" / "alerting" / "driftwatch.yaml")
    broken["groups"][0]["rules"][0]["condition"] = "Z"
    broken["groups"][0]["rules"][1]["for"] = "5 minutes"
    broken["groups"][0]["rules"][2]["uid"] = broken["groups"][0]["rules"][3]["uid"]
    assert len(grafana_rule_problems(broken)) == 3


def test_grafana_managed_alerts_are_in_step_with_the_prometheus_rules() -> None:
    """Same alerts, same PromQL, same for:, labels and annotations (templates translated to Grafana's $values)."""
    doc = load_yaml(GRAFANA / "provisioning" / "alerting" / "driftwatch.yaml")
    grafana = {r["title"]: r for g in doc["groups"] for r in g["rules"]}
    prom = {r["alert"]: r for g in load_yaml(ALERTS / "driftwatch_alerts.yaml")["groups"] for r in g["rules"]}
    assert set(grafana) == set(prom)
    datasources = {d["uid"] for d in load_yaml(GRAFANA / "provisioning" / "datasources" / "driftwatch.yaml")
                   ["datasources"]}
    for name, p in prom.items():
        g = grafana[name]
        query = next(d for d in g["data"] if d["refId"] == "A")
        assert query["model"]["expr"] == p["expr"], name
        assert query["datasourceUid"] in datasources, name
        assert g["for"] == p["for"] and g["labels"] == p["labels"], name
        for key, text in p["annotations"].items():
            assert g["annotations"][key] == text.replace("$value ", "$values.A.Value "), (name, key)
        assert "$value " not in str(g["annotations"])
        # Grafana interpolates environment variables in labels ($VAR), not in annotations or query models
        assert "$" not in str(g["labels"]), name


# -- Grafana data sources, dashboards provider, collector, compose ----------------------------------

def test_datasources_provide_what_dashboards_and_exemplars_reference() -> None:
    """A default Prometheus data source, exemplar trace links to an existing Tempo uid, the dashboards provider path."""
    ds = load_yaml(GRAFANA / "provisioning" / "datasources" / "driftwatch.yaml")["datasources"]
    by_uid = {d["uid"]: d for d in ds}
    prom = [d for d in ds if d["type"] == "prometheus"]
    assert len(prom) == 1 and prom[0]["isDefault"] is True
    links = prom[0]["jsonData"]["exemplarTraceIdDestinations"]
    assert [(link["name"], by_uid[link["datasourceUid"]]["type"]) for link in links] == [("trace_id", "tempo")]
    assert load_mixin().CONFIG["dashboards"]["trace_datasource_uid"] in by_uid
    assert load_mixin().CONFIG["grafana_alerting"]["datasource_uid"] == prom[0]["uid"]
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "driftwatch.yaml")["providers"][0]
    assert provider["type"] == "file" and provider["folder"] == "Driftwatch"
    compose = load_yaml(INTEGRATIONS / "compose.yaml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"../grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert load_dashboards()  # the directory mounted there holds the dashboards


def test_otel_collector_pipelines_reference_defined_components() -> None:
    """Every receiver, processor, exporter and extension a pipeline names is defined; traces go out over OTLP."""
    cfg = load_yaml(INTEGRATIONS / "otel-collector.yaml")
    service = cfg["service"]
    assert set(service["extensions"]) <= set(cfg["extensions"])
    assert "traces" in service["pipelines"]
    for name, pipe in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            missing = set(pipe.get(kind, [])) - set(cfg[kind])
            assert not missing, (name, kind, missing)
    assert {"grpc", "http"} <= set(cfg["receivers"]["otlp"]["protocols"])
    assert any(e.split("/")[0] == "otlp" for e in service["pipelines"]["traces"]["exporters"])
    assert service["pipelines"]["traces"]["processors"][0] == "memory_limiter"  # first, as the collector advises


def test_compose_mounts_only_files_that_exist() -> None:
    """Every bind mount of integrations/compose.yaml points at a shipped file or directory."""
    compose = load_yaml(INTEGRATIONS / "compose.yaml")
    assert {"app", "prometheus", "alertmanager", "grafana", "otel-collector", "tempo"} <= set(compose["services"])
    named = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src in named:
                continue
            if src == "./secrets":  # the user creates the secrets (see the header of alertmanager.yml)
                continue
            assert (INTEGRATIONS / src).exists(), (name, vol)
    assert "--enable-feature=exemplar-storage" in compose["services"]["prometheus"]["command"]
