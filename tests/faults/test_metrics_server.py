"""Issue 11 item 8: ``configure()`` no longer kills a ``/metrics`` server started before it.

The server keeps serving, and follows the new runtime's registry. Checked with real HTTP scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import driftwatch
from driftwatch.runtime import current_runtime, set_runtime


@pytest.fixture
def process_runtime() -> Iterator[None]:
    """configure() replaces the process runtime: put the one before the test back afterwards."""
    previous = current_runtime()
    try:
        yield
    finally:
        rt = set_runtime(previous)
        if rt is not None and rt is not previous:
            rt.close()


def _calls(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {s.labels["agent"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "driftwatch_calls_total" and s.labels["status"] == "ok"}


def test_a_server_started_before_configure_keeps_serving_the_new_runtime(process_runtime) -> None:
    """start_http_server(), then configure(): the same port answers, now with the new runtime's metrics."""
    driftwatch.configure(ledger=":memory:", registry=CollectorRegistry(), tracing=False, audit=False)
    server = driftwatch.start_http_server(0)
    port = server.server_port
    try:
        assert driftwatch.watch(lambda: "one", agent="before")() == "one"
        assert _calls(port) == {"before": 1.0}
        new = driftwatch.configure(ledger=":memory:", registry=CollectorRegistry(), tracing=False, audit=False)
        assert driftwatch.watch(lambda: "two", agent="after")() == "two"
        assert _calls(port) == {"after": 1.0}  # the new runtime's registry, on the same port
        assert new.http_server is server
        # configuring the same port again adopts the server instead of failing to bind it
        newer = driftwatch.configure(ledger=":memory:", registry=CollectorRegistry(), tracing=False, audit=False,
                                     metrics_port=port)
        assert newer.http_servers == [server] and newer.error_counts == {}
        assert driftwatch.watch(lambda: "three", agent="latest")() == "three"
        assert _calls(port) == {"latest": 1.0}
    finally:
        current_runtime().close()  # the runtime that holds the server shuts it down
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
