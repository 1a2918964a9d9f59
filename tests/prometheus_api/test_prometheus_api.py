"""driftwatch.prometheus_api: one client for Prometheus's and Alertmanager's HTTP APIs, with one-line errors.

Against real Prometheus and Alertmanager processes (started by driftwatch.stack) and a loopback server that is
not Prometheus. One test swaps the httpx transport: the seam for tests that cannot reach a real server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import httpx
import pytest

from driftwatch.prometheus_api import AlertmanagerAPI, PrometheusAPI, PrometheusAPIError
from driftwatch.stack import Stack, StackError, free_port, poll, webhook_config

RULES = """groups:
- name: api-test
  rules:
  - record: api_test:answer
    expr: vector(42)
  - alert: ApiTestFiring
    expr: vector(1) > 0
    labels: {agent: api}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Prometheus scraping itself, with one recording rule and one alert, and an Alertmanager."""
    tmp = tmp_path_factory.mktemp("api")
    (tmp / "rules.yaml").write_text(RULES)
    port = free_port()
    s = Stack(targets=[f"127.0.0.1:{port}"], rule_files=[tmp / "rules.yaml"], prometheus_port=port,
              alertmanager_config=webhook_config("http://127.0.0.1:9/unused"), workdir=tmp / "stack")
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.mark.servers
def test_queries_targets_rules_and_alerts_of_a_real_prometheus(stack: Stack) -> None:
    """A plain PrometheusAPI on a running server: ready, instant and range queries, targets, rules, alerts."""
    api = PrometheusAPI(stack.prometheus.url)
    try:
        assert api.ready()
        assert api.query("1 + 1")[0][1] == "2"  # a scalar comes back as [time, "value"]
        [series] = poll(lambda: api.query_range("api_test:answer", time.time() - 30, time.time(), 1),
                        timeout=20, what="the recording rule's first samples")
        assert series["metric"] == {"__name__": "api_test:answer"} and series["values"][-1][1] == "42"
        [target] = poll(lambda: [t for t in api.targets() if t["health"] == "up"], timeout=20, what="the target up")
        assert target["scrapeUrl"] == f"{stack.prometheus.url}/metrics"
        assert {r["name"] for r in api.rules()} == {"api_test:answer", "ApiTestFiring"}
        [alert] = poll(lambda: [a for a in api.alerts() if a["state"] == "firing"], timeout=20, what="the alert")
        assert alert["labels"] == {"alertname": "ApiTestFiring", "agent": "api"}
        assert poll(api.alertmanagers, timeout=20, what="the Alertmanager") == [
            f"{stack.alertmanager.url}/api/v2/alerts"]  # type: ignore[union-attr]  # the fixture has one
    finally:
        api.close()


@pytest.mark.servers
def test_a_bad_query_is_one_line_with_prometheus_own_explanation(stack: Stack) -> None:
    """A query Prometheus rejects (HTTP 400) names the server, the path and Prometheus's error text."""
    api = PrometheusAPI(stack.prometheus.url)
    with pytest.raises(PrometheusAPIError) as info:
        api.query("sum by (")
    api.close()
    message = str(info.value)
    assert message.startswith(f"{stack.prometheus.url}: /api/v1/query answered HTTP 400: bad_data: ")
    assert "parse error" in message and "\n" not in message
    with pytest.raises(StackError, match="parse error"):  # the stack's server objects raise their own error
        stack.prometheus.query("sum by (")


@pytest.mark.servers
def test_alertmanager_lists_what_it_holds_and_names_what_it_rejects(stack: Stack) -> None:
    """AlertmanagerAPI posts alerts and lists them back filtered by label; a rejected post is one line."""
    am = AlertmanagerAPI(stack.alertmanager.url)  # type: ignore[union-attr]  # the fixture has one
    try:
        assert am.ready()
        am.post_alerts([{"labels": {"alertname": "Posted", "agent": "x"}}, {"labels": {"alertname": "Other"}}])
        assert [a["labels"]["alertname"] for a in am.alerts(agent="x")] == ["Posted"]
        with pytest.raises(PrometheusAPIError, match=r": Alertmanager rejected alerts: HTTP 400: "):
            am.post_alerts([{"labels": {}}])
    finally:
        am.close()


def test_an_unreachable_server_is_not_ready_and_is_named() -> None:
    """Nothing listening: ready() is False and a query names the URL and the connection error."""
    url = f"http://127.0.0.1:{free_port()}"
    api = PrometheusAPI(url)
    assert api.ready() is False
    with pytest.raises(PrometheusAPIError, match=rf"^{url}: cannot reach Prometheus \(ConnectError: "):
        api.query("1")
    api.close()


class _NotPrometheus:
    """A loopback web server that answers 200 "hi" at /api/v1/query and 404 elsewhere."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = self.path.startswith("/api/v1/query?")
                self.send_response(200 if ok else 404)
                self.end_headers()
                self.wfile.write(b"hi")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_server_that_is_not_prometheus_is_reported_clearly() -> None:
    """An answer that is not the API's JSON, or an HTTP error without a body, is one line naming the path."""
    web = _NotPrometheus()
    api = PrometheusAPI(web.url + "/")
    try:
        assert api.url == web.url
        with pytest.raises(PrometheusAPIError, match=rf"^{web.url}: /api/v1/query did not answer JSON \(is this"):
            api.query("1")
        with pytest.raises(PrometheusAPIError, match=rf"^{web.url}: /api/v1/targets answered HTTP 404$"):
            api.targets()
    finally:
        api.close()
        web.close()


def test_a_url_that_is_not_http_is_refused() -> None:
    """Only http:// and https:// URLs are accepted; the message quotes the URL."""
    with pytest.raises(PrometheusAPIError, match=r"^'ftp://x': expected an http:// or https:// URL$"):
        PrometheusAPI("ftp://x")


def test_the_transport_is_the_seam_for_tests() -> None:
    """An injected httpx transport sees each request: path and parameters as Prometheus expects them.

    (httpx.MockTransport stands in for a server here only to show the seam; the tests above use real ones.)
    """
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"job": "x"}, "values": [[10, "1"]]}]}})

    api = PrometheusAPI("http://prom.test", transport=httpx.MockTransport(handler))
    assert api.query_range("up", 10, 70, 15) == [{"metric": {"job": "x"}, "values": [[10, "1"]]}]
    [request] = seen
    assert request.url.path == "/api/v1/query_range"
    assert dict(request.url.params) == {"query": "up", "start": "10.000", "end": "70.000", "step": "15.000"}


def test_the_module_does_not_load_httpx_until_a_request(tmp_path: Path) -> None:
    """Importing the client (as the CLI does at start) leaves httpx unloaded; the first request loads it."""
    import subprocess
    import sys

    code = ("import sys\nfrom driftwatch.prometheus_api import PrometheusAPI\nprint('httpx' in sys.modules)\n"
            "PrometheusAPI('http://127.0.0.1:1').ready(timeout=0.1)\nprint('httpx' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          cwd=tmp_path)
    assert proc.stdout.split() == ["False", "True"], proc.stderr
