"""The shipped Prometheus rules: promtool checks and unit tests, mixin conventions, catalogue names, runbooks."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.helpers.promql import (
    ALERTS,
    GRAFANA,
    RULE_FILES,
    alert_rules,
    check_names,
    load_mixin,
    recorded_labels,
    recording_rules,
    references,
)

pytestmark = pytest.mark.servers  # uses the Debian prometheus package's promtool


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `make test` installs the Debian package prometheus")
    return path


def test_rule_files_pass_promtool_check() -> None:
    """`promtool check rules` accepts both shipped rule files (the real Prometheus parser)."""
    out = subprocess.run([_promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == 2


def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules grafana/alerts/tests.yaml` passes: every alert on both sides of its `for:`."""
    out = subprocess.run([_promtool(), "test", "rules", str(ALERTS / "tests.yaml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_unit_tests_cover_every_alert_on_both_sides_of_for() -> None:
    """tests.yaml has, for every alert, an evaluation where it is silent and one where it fires."""
    import yaml

    tests = yaml.safe_load((ALERTS / "tests.yaml").read_text())["tests"]
    silent, firing = set(), set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else silent).add(case["alertname"])
            for exp in case["exp_alerts"]:
                assert set(exp["exp_annotations"]) == {"summary", "description", "runbook_url"}, case
    names = {r["alert"] for r in alert_rules()}
    assert silent == names
    assert firing == names


def test_promtool_unit_tests_fail_when_an_alert_changes(tmp_path) -> None:
    """The unit tests are sensitive: raising the drift alert's `for:` makes them fail."""
    for f in RULE_FILES:
        shutil.copy(f, tmp_path / f.name)
    shutil.copy(ALERTS / "tests.yaml", tmp_path / "tests.yaml")
    path = tmp_path / "driftwatch_alerts.yaml"
    text = path.read_text()
    changed = re.sub(r"(alert: DriftwatchBehaviorDrift\n(?:.*\n)*?    for: )1m", r"\g<1>3m", text, count=1)
    assert changed != text
    path.write_text(changed)
    out = subprocess.run([_promtool(), "test", "rules", str(tmp_path / "tests.yaml")], capture_output=True,
                         text=True)
    assert out.returncode != 0
    assert "DriftwatchBehaviorDrift" in out.stdout + out.stderr


def test_alerts_follow_the_mixin_conventions() -> None:
    """Driftwatch prefix, CamelCase, severity label, summary (a sentence), description and runbook_url."""
    rules = alert_rules()
    assert len(rules) >= 7
    for r in rules:
        assert re.fullmatch(r"Driftwatch[A-Z][A-Za-z]+", r["alert"]), r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning", "info"), r["alert"]
        ann = r["annotations"]
        assert set(ann) == {"summary", "description", "runbook_url"}, r["alert"]
        assert ann["summary"].endswith(".") and "{{" not in ann["summary"], r["alert"]
        assert ann["description"].strip(), r["alert"]
        assert re.fullmatch(r"\d+[smh]", r["for"]), r["alert"]


def test_the_required_alerts_are_shipped() -> None:
    """Drift, self-modification storm, score regression, error-rate rise, refusal spike, absent/down, internal."""
    names = {r["alert"] for r in alert_rules()}
    assert {"DriftwatchBehaviorDrift", "DriftwatchSelfModificationStorm", "DriftwatchScoreRegressionAfterChange",
            "DriftwatchErrorRateRiseAfterChange", "DriftwatchRefusalSpike", "DriftwatchTargetDown",
            "DriftwatchMetricsAbsent", "DriftwatchInternalErrors"} <= names
    drift = next(r for r in alert_rules() if r["alert"] == "DriftwatchBehaviorDrift")
    assert "driftwatch_drift_alarm" in drift["expr"]


def test_every_runbook_url_points_at_a_section_of_runbooks_md() -> None:
    """Each alert's runbook_url anchor is a `## <Alert>` heading of grafana/runbooks.md, and vice versa."""
    text = (GRAFANA / "runbooks.md").read_text()
    headings = {h.strip() for h in re.findall(r"^## (.+)$", text, re.M)}
    anchors = {h.lower().replace(" ", "-") for h in headings}
    mixin = load_mixin()
    alerts = {r["alert"] for r in alert_rules()}
    for r in alert_rules():
        url = r["annotations"]["runbook_url"]
        assert url.startswith(mixin.CONFIG["runbook_base_url"] + "#"), url
        assert url.split("#", 1)[1] in anchors, url
    assert alerts <= headings
    assert {h for h in headings if h.startswith("Driftwatch")} == alerts
    for alert in alerts:  # each section says how to find the change and how to act
        section = text.split(f"## {alert}\n", 1)[1].split("\n## ", 1)[0]
        assert "**Act:**" in section, alert
    assert "driftwatch history" in text and "driftwatch show" in text and "Roll back" in text


def test_recording_rules_are_named_level_metric_operations() -> None:
    """Recording rules follow `level:metric:operations`, and every one is used by an alert."""
    alerts = " ".join(r["expr"] for r in alert_rules())
    for r in recording_rules():
        assert re.fullmatch(r"[a-z_]+:driftwatch_[a-z_]+:[a-z0-9_]+", r["record"]), r["record"]
        assert r["record"] in alerts, f"{r['record']} is recorded but no alert reads it"


def test_rules_name_only_catalogue_metrics_and_labels() -> None:
    """Every metric and label in the recording rules, alert expressions and templates is in the catalogue."""
    recorded = recorded_labels()
    for r in recording_rules():
        assert check_names(r["expr"]) == [], r["record"]
    for r in alert_rules():
        assert check_names(r["expr"], recorded) == [], r["alert"]
        series, grouping = references(r["expr"])
        templated = set(re.findall(r"\$labels\.(\w+)", r["annotations"]["description"]))
        kept = set(grouping) | {label for _, labels in series for label in labels} | {"job", "instance"}
        assert templated <= kept, (r["alert"], templated - kept)


def test_the_name_check_catches_unknown_metrics_and_labels() -> None:
    """The catalogue check is not vacuous: a misspelt metric or a foreign label is reported."""
    assert check_names('sum by (agent) (rate(driftwatch_calls_totl{job="x"}[5m]))') != []
    assert check_names('sum by (deployment) (rate(driftwatch_calls_total{job="x"}[5m]))') != []
    assert check_names('driftwatch_drift_alarm{prompt="x"}') != []
    assert check_names('histogram_quantile(0.9, sum by (agent, le) (rate(driftwatch_output_chars_bucket[5m])))') == []


def test_thresholds_and_selectors_are_configured_in_one_place() -> None:
    """Changing CONFIG (selector, a threshold, a for:) changes the generated rules accordingly."""
    import copy

    mixin = load_mixin()
    cfg = copy.deepcopy(mixin.CONFIG)
    cfg["selector"] = 'job="agents", env="prod"'
    cfg["alerts"]["DriftwatchSelfModificationStorm"]["changes"] = 25
    cfg["alerts"]["DriftwatchBehaviorDrift"]["for"] = "7m"
    alerts = {r["alert"]: r for r in mixin.alert_rules(cfg)["groups"][0]["rules"]}
    assert alerts["DriftwatchSelfModificationStorm"]["expr"].endswith("> 25")
    assert alerts["DriftwatchBehaviorDrift"]["for"] == "7m"
    generated = str(mixin.alert_rules(cfg)) + str(mixin.recording_rules(cfg)) + str(mixin.dashboards(cfg))
    assert 'job="driftwatch"' not in generated
    assert generated.count('job="agents", env="prod"') > 30


def test_every_alert_and_its_config_entry_come_together() -> None:
    """An alert without a CONFIG["alerts"] entry, or an entry without an alert, is a one-line error naming it."""
    import copy

    mixin = load_mixin()
    assert {r["alert"] for r in mixin.alert_rules()["groups"][0]["rules"]} == set(mixin.CONFIG["alerts"])
    missing = copy.deepcopy(mixin.CONFIG)
    del missing["alerts"]["DriftwatchBehaviorDrift"]
    with pytest.raises(ValueError, match=r'^CONFIG\["alerts"\] has no entry for DriftwatchBehaviorDrift \('):
        mixin.alert_rules(missing)
    extra = copy.deepcopy(mixin.CONFIG)
    extra["alerts"]["DriftwatchGuardHeld"] = {"for": "5m", "severity": "warning"}
    with pytest.raises(ValueError, match=r"configures DriftwatchGuardHeld, which grafana/mixin/alerts.py does not"):
        mixin.alert_rules(extra)


def test_operational_signals_match_the_drift_engine() -> None:
    """The alerts split drift signals exactly as the drift engine does (latency/cost never page as behaviour)."""
    from driftwatch.drift import BEHAVIOUR_SIGNALS, OPERATIONAL_SIGNALS

    config = load_mixin().CONFIG
    assert config["operational_signals"] == list(OPERATIONAL_SIGNALS)
    assert not set(config["operational_signals"]) & set(BEHAVIOUR_SIGNALS)
