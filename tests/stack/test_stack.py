"""driftwatch.stack: real Prometheus and Alertmanager processes on loopback ports, started and stopped cleanly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from driftwatch.stack import (
    Alertmanager,
    Prometheus,
    Stack,
    StackError,
    fast_rules,
    find_binary,
    poll,
    prometheus_config,
    webhook_config,
    webhook_receivers,
)
from tests.helpers.servers import WebhookReceiver

pytestmark = pytest.mark.servers


def test_missing_binary_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the binaries on PATH, the error is one line naming the Debian packages."""
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StackError, match="apt-get install prometheus prometheus-alertmanager"):
        find_binary(("prometheus",))
    with pytest.raises(StackError, match="binary='nope': not found"):
        find_binary(("prometheus",), "nope")


def test_bad_arguments_are_reported_by_name(tmp_path: Path) -> None:
    """A target without a port and a missing rule file are rejected before anything starts."""
    with pytest.raises(ValueError, match="targets: 'localhost' is not host:port"):
        Stack(targets=["localhost"], workdir=tmp_path / "a")
    with pytest.raises(StackError, match=r"rule_files: .*missing\.yaml does not exist"):
        Stack(targets=["127.0.0.1:1"], rule_files=[tmp_path / "missing.yaml"], workdir=tmp_path / "b")


def test_a_server_that_dies_fails_fast_with_its_log(tmp_path: Path) -> None:
    """An invalid config makes Prometheus exit: start() raises at once with the log line, not after the timeout."""
    prom = Prometheus({"global": {"scrape_interval": "not-a-duration"}}, workdir=tmp_path)
    t0 = time.monotonic()
    with pytest.raises(StackError, match=r"prometheus exited with status \d+: .*not-a-duration"):
        prom.start(timeout=30)
    assert time.monotonic() - t0 < 10
    assert not prom.running


def test_poll_times_out_with_what_it_waited_for() -> None:
    """poll() gives up after its timeout and says what it was waiting for."""
    with pytest.raises(StackError, match=r"timed out after 0\.2s waiting for the moon"):
        poll(lambda: None, timeout=0.2, what="the moon")
    with pytest.raises(StackError, match="an empty result"):
        poll(lambda: [], timeout=0.1, what="an empty result")  # e.g. a query that matches nothing yet
    assert poll(lambda: 42, timeout=1, what="x") == 42


def test_stack_scrapes_evaluates_and_notifies(tmp_path: Path) -> None:
    """A Stack scrapes a real exporter, evaluates a rule file, and Alertmanager delivers the alert; stop() ends both."""
    registry = CollectorRegistry()
    counter = Counter("stack_test_events", "events", registry=registry)
    counter.inc(3)
    server, _thread = start_http_server(0, "127.0.0.1", registry=registry)
    rules = tmp_path / "rules.yaml"
    rules.write_text("groups:\n- name: t\n  rules:\n  - alert: StackTestFiring\n"
                     "    expr: stack_test_events_total > 2\n    labels: {agent: stack}\n")
    hook = WebhookReceiver()
    stack = Stack(targets=[f"127.0.0.1:{server.server_port}"], rule_files=[rules],
                  alertmanager_config=webhook_config(hook.url + "/hook"), workdir=tmp_path / "stack")
    try:
        stack.start()
        for srv in (stack.prometheus, stack.alertmanager):
            assert srv is not None and srv.running and srv.url.startswith("http://127.0.0.1:")
        stack.wait_until_scraping(timeout=30)
        [sample] = stack.prometheus.query('stack_test_events_total{job="driftwatch"}')
        assert float(sample["value"][1]) == 3.0
        path, alert, _ = hook.wait_for(lambda p, a: a["labels"]["alertname"] == "StackTestFiring", timeout=20)
        assert path == "/hook" and alert["labels"]["agent"] == "stack"
        assert stack.prometheus.alertmanagers() == [f"{stack.alertmanager.url}/api/v2/alerts"]
        stack.prometheus.reload()
        with pytest.raises(StackError, match="parse error"):
            stack.prometheus.query("sum by (")
    finally:
        stack.stop()
        hook.close()
        server.shutdown()
        server.server_close()
    assert not stack.prometheus.running
    assert stack.alertmanager is not None and not stack.alertmanager.running


def test_alertmanager_alone_accepts_and_lists_alerts(tmp_path: Path) -> None:
    """Alertmanager on its own: alerts posted through its API are listed back, filtered by label."""
    am = Alertmanager(webhook_config("http://127.0.0.1:9/unused"), workdir=tmp_path)
    am.start()
    try:
        am.post_alerts([{"labels": {"alertname": "A", "agent": "x"}}, {"labels": {"alertname": "B", "agent": "y"}}])
        assert [a["labels"]["alertname"] for a in am.alerts(agent="y")] == ["B"]
        with pytest.raises(StackError, match="rejected"):
            am.post_alerts([{"labels": {}}])
    finally:
        am.stop()
    assert prometheus_config(targets=["h:1"], alertmanagers=["h:2"])["alerting"]["alertmanagers"][0] == {
        "static_configs": [{"targets": ["h:2"]}]}


def test_fast_rules_change_only_intervals_and_for(tmp_path: Path) -> None:
    """fast_rules() rewrites group intervals and alert `for:` and leaves every expression, label and annotation."""
    import yaml

    from tests.helpers.promql import RULE_FILES

    for src, fast in zip(RULE_FILES, fast_rules(RULE_FILES, tmp_path, interval="2s", for_="0s"), strict=True):
        before, after = yaml.safe_load(src.read_text()), yaml.safe_load(fast.read_text())
        for g_before, g_after in zip(before["groups"], after["groups"], strict=True):
            assert g_after["interval"] == "2s"
            for r_before, r_after in zip(g_before["rules"], g_after["rules"], strict=True):
                if "alert" in r_before:
                    assert r_after.pop("for") == "0s"
                    r_before.pop("for")
                assert r_after == r_before


def test_webhook_receivers_keep_routing_and_inhibition() -> None:
    """webhook_receivers() swaps receivers for webhooks at /<name> and keeps the routing tree and inhibit rules."""
    import yaml

    from tests.helpers.promql import INTEGRATIONS

    shipped = yaml.safe_load((INTEGRATIONS / "alertmanager.yml").read_text())
    cfg = webhook_receivers(shipped, "http://127.0.0.1:5/")
    assert [r["name"] for r in cfg["receivers"]] == [r["name"] for r in shipped["receivers"]]
    assert cfg["receivers"][0]["webhook_configs"][0]["url"] == f"http://127.0.0.1:5/{shipped['receivers'][0]['name']}"
    assert cfg["inhibit_rules"] == shipped["inhibit_rules"]
    assert [r["matchers"] for r in cfg["route"]["routes"]] == [r["matchers"] for r in shipped["route"]["routes"]]
    assert cfg["route"]["group_wait"] == "0s" and shipped["route"]["group_wait"] != "0s"
