"""driftwatch.promql, the PromQL signal set: catalogue names only, valid PromQL, one definition for rules,
panels and the report."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import httpx
import pytest
import yaml

from driftwatch import promql
from driftwatch.promql import SIGNALS, Signal, matcher
from driftwatch.report import PrometheusSource
from tests.helpers.promql import check_names, load_dashboards, recording_rules, substitute

DASHBOARD_MATCHERS = ('job="driftwatch"', 'agent=~"$agent"')


def _render(s: Signal, matchers: tuple[str, ...] = DASHBOARD_MATCHERS, window: str = "$__rate_interval",
            **kw: Any) -> str:
    params = {"q": 0.9} if "q" in s.parameters else {}
    return s.render(matchers, window if s.windowed else None, **params, **kw)


def test_every_signal_names_only_catalogue_metrics_and_labels() -> None:
    """Each signal's metrics, its own matchers and its grouping labels are in driftwatch.metrics.CATALOGUE."""
    assert len(SIGNALS) >= 10
    assert len({s.name for s in SIGNALS}) == len(SIGNALS)
    problems = {s.name: check_names(substitute(_render(s))) for s in SIGNALS}
    assert {name: p for name, p in problems.items() if p} == {}


def test_the_signal_check_catches_names_outside_the_catalogue() -> None:
    """The check is not vacuous: a misspelt metric or a grouping label the metric lacks is reported."""
    misspelt = Signal("x", "x", "share", "sum by ({by}) (rate(driftwatch_refusal_total{sel}[{w}]))")
    assert "driftwatch_refusal_total" in str(check_names(substitute(_render(misspelt))))
    foreign_label = Signal("x", "x", "share", promql.REFUSAL.template, ("agent", "tool"))
    assert "tool" in str(check_names(substitute(_render(foreign_label))))


def test_every_signal_parses_with_promtool(tmp_path) -> None:
    """Each signal, rendered as the dashboards and as the report render it, is valid PromQL for promtool."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `make test` installs the Debian package prometheus")
    exprs = [substitute(_render(s)) for s in SIGNALS]
    exprs += [_render(s, (matcher("agent", 'bot "x"'),), "1m", by=("agent",)) for s in SIGNALS]
    rules = [{"record": f"signal_check:expr:n{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "signals.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "signals", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout


def test_render_fills_selector_window_grouping_and_parameters() -> None:
    """The caller's matchers come first, the signal's own after; `by` and parameters replace the defaults."""
    assert promql.ERROR.render(['job="a"', 'agent="b"'], "5m") == (
        'sum by (agent) (rate(driftwatch_calls_total{job="a", agent="b", status="error"}[5m]))\n/\n'
        'sum by (agent) (rate(driftwatch_calls_total{job="a", agent="b"}[5m]))')
    assert promql.OUTPUT_CHARS_QUANTILE.render([], "1m", by=("job",), q=0.5) == (
        "histogram_quantile(0.5, sum by (job, le) (rate(driftwatch_output_chars_bucket{}[1m])))")
    assert promql.DRIFT_SCORE.render([matcher("agent", 'say "hi"\\')], by=("signal",)) == (
        'max by (signal) (driftwatch_drift_score{agent="say \\"hi\\"\\\\"})')
    assert promql.SCORE.by == ("agent", "metric") and not promql.DRIFT_ALARM.windowed
    assert promql.LATENCY_QUANTILE.parameters == {"q"}


@pytest.mark.parametrize(("call", "message"), [
    (lambda: promql.ERROR.render(['agent="a"']), "signal error: window= is required"),
    (lambda: promql.LATENCY_QUANTILE.render([], "5m"),
     "signal latency_quantile: expected the parameters ['q'], got []"),
    (lambda: promql.REFUSAL.render([], "5m", q=0.5), "signal refusal: expected the parameters [], got ['q']"),
    (lambda: promql.REFUSAL.render([], "5m", by=()), "signal refusal: by= needs at least one label"),
    (lambda: promql.signal("latencyy"), "signal 'latencyy': expected one of calls, change_magnitude_quantile"),
])
def test_bad_arguments_are_named_in_one_line(call: Any, message: str) -> None:
    """A missing window or parameter, an unknown parameter, an empty `by` or name: ValueError naming it."""
    with pytest.raises(ValueError) as err:
        call()
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_rules_panels_and_report_render_the_same_signal() -> None:
    """The refusal ratio is written once: the recording rule, the overview panel and the report's query all
    render promql.REFUSAL (the report's queries are captured at its httpx transport seam)."""
    rule = next(r for r in recording_rules() if r["record"] == "agent:driftwatch_refusals:ratio_rate10m")
    assert rule["expr"] == promql.REFUSAL.render(['job="driftwatch"'], "10m")

    overview = load_dashboards()["driftwatch-overview.json"]
    panel = next(p for p in overview["panels"] if p["title"] == "Refusal ratio")
    assert panel["targets"][0]["expr"] == promql.REFUSAL.render(DASHBOARD_MATCHERS, "$__rate_interval")

    queries: list[str] = []

    def prometheus(request: httpx.Request) -> httpx.Response:
        queries.append(request.url.params["query"])
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": []}})

    source = PrometheusSource("http://prometheus.test", transport=httpx.MockTransport(prometheus), rate_window="2m")
    try:
        assert source.signals("bot", 0.0, 600.0) == {}
    finally:
        source.close()
    assert promql.REFUSAL.render(['agent="bot"'], "2m") in queries
    assert promql.DRIFT_SCORE.render(['agent="bot"'], by=("signal",)) in queries
    assert len(queries) == 8  # seven behaviour signals and the drift scores
