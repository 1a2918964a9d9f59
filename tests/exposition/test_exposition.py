"""/metrics, exemplars, the catalogue, and OTLP export on the wire."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry

import driftwatch
from driftwatch.metrics import CALL_METRICS, CATALOGUE, METRIC_NAMES
from driftwatch.testing import Captured, capture
from tests.helpers.otlp_receiver import OTLPReceiver, attributes


def _exercise() -> None:
    @driftwatch.watch(agent="bot")
    def run(prompt: str) -> str:
        driftwatch.track("bot", "system_prompt", prompt, kind="system_prompt", source="agent")
        return "answer"

    for p in ("one", "two", "three", "four"):
        run(p)
    driftwatch.record_score("bot", 0.5)


def test_metrics_endpoint_passes_promtool_and_binds_loopback(cap: Captured) -> None:
    """/metrics served on 127.0.0.1 passes `promtool check metrics` and exposes the whole catalogue."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `make test` installs the Debian package prometheus")
    _exercise()
    server = driftwatch.start_http_server(0, runtime=cap.runtime)
    try:
        assert server.server_address[0] == "127.0.0.1"
        body = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics").text
    finally:
        server.shutdown()
        server.server_close()
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    exposed = {line.split(" ")[2] for line in body.splitlines() if line.startswith("# TYPE driftwatch_")}
    exposed = {name for name in exposed if not name.endswith("_created")}  # prometheus_client's own series
    assert exposed == set(METRIC_NAMES)
    assert 'driftwatch_build_info{version="' in body


def test_every_catalogue_metric_is_registered_with_its_labels(cap: Captured) -> None:
    """Each catalogue entry is registered under its exposed name, type and label names (the per-call metrics,
    which driftwatch's own collector exposes, by the label names of their samples after calls)."""
    _exercise()
    families = {m.name: m for m in cap.registry.collect()}
    for spec in CATALOGUE:
        base = spec.name.removesuffix("_total") if spec.type == "counter" else spec.name
        assert base in families, spec.name
        assert families[base].type == spec.type
        if spec.name in CALL_METRICS:
            assert families[base].samples, spec.name
            assert {tuple(k for k in s.labels if k != "le") for s in families[base].samples} == {spec.labels}
        else:
            metric = cap.runtime.metrics.metric(spec.name)
            assert tuple(metric._labelnames) == spec.labels
    assert all(name.startswith("driftwatch_") for name in METRIC_NAMES)


def test_exemplars_carry_the_trace_id(cap: Captured) -> None:
    """Change counters and call histograms carry the trace id as an OpenMetrics exemplar."""
    from prometheus_client.openmetrics.exposition import generate_latest

    _exercise()
    text = generate_latest(cap.registry).decode()
    change = cap.changes()[-1]
    line = next(x for x in text.splitlines() if x.startswith("driftwatch_changes_total{"))
    assert f'# {{span_id="{change.span_id}",trace_id="{change.trace_id}"}}' in line
    call_span = cap.spans("invoke_agent bot")[0]  # calls carry an exemplar at most once a second per agent
    trace_id = format(call_span.context.trace_id, "032x")
    calls = next(x for x in text.splitlines() if x.startswith('driftwatch_calls_total{agent="bot",status="ok"}'))
    assert f'trace_id="{trace_id}"' in calls
    duration = [x for x in text.splitlines() if x.startswith("driftwatch_call_duration_seconds_bucket")]
    assert any(f'trace_id="{trace_id}"' in x for x in duration)


def test_call_exemplars_are_rate_limited_per_agent(cap: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call's trace id becomes its metrics' exemplar at most once per interval per agent; failed calls always."""
    from prometheus_client.openmetrics.exposition import generate_latest

    clock = [1000.0]
    monkeypatch.setattr("driftwatch.metrics.time.monotonic", lambda: clock[0])

    @driftwatch.watch(agent="paced")
    def run(fail: bool = False) -> str:
        if fail:
            raise ValueError("boom")
        return "answer"

    def exemplar_traces(status: str) -> set[str]:
        text = generate_latest(cap.registry).decode()
        return {line.split('trace_id="')[1].split('"')[0] for line in text.splitlines()
                if line.startswith(f'driftwatch_calls_total{{agent="paced",status="{status}"}}') and "trace_id" in line}

    def trace_of(span: Any) -> str:
        return format(span.context.trace_id, "032x")

    run()
    run()  # within the interval: no exemplar, the first call's stays
    first, second = cap.spans("invoke_agent paced")
    assert exemplar_traces("ok") == {trace_of(first)}
    with pytest.raises(ValueError):
        run(fail=True)  # an error always carries its trace
    assert exemplar_traces("error") == {trace_of(cap.spans("invoke_agent paced")[-1])}
    clock[0] += 1.0  # the interval has passed
    run()
    assert exemplar_traces("ok") == {trace_of(cap.spans("invoke_agent paced")[-1])}
    assert trace_of(second) not in generate_latest(cap.registry).decode()


def test_changes_reach_a_loopback_otlp_receiver() -> None:
    """Three changes exported over OTLP/HTTP (protobuf) arrive as three driftwatch.change spans."""
    with OTLPReceiver() as receiver:
        provider = TracerProvider(resource=Resource.create({"service.name": "otlp-test"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.endpoint),
                                                       schedule_delay_millis=50))
        with capture(tracer_provider=provider, registry=CollectorRegistry()) as cap:
            _exercise()
            provider.force_flush()
            changes = cap.changes()
        spans = receiver.wait_for(7)
        provider.shutdown()
    by_name: dict[str, list] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    assert len(by_name["driftwatch.change"]) == 3
    assert len(by_name["invoke_agent bot"]) == 4
    received = sorted(by_name["driftwatch.change"], key=lambda s: s.start_time_unix_nano)
    for span, change in zip(received, changes, strict=True):
        attrs = attributes(span)
        assert attrs["driftwatch.change.id"] == change.id
        assert attrs["driftwatch.revision.before"] == change.before_id
        assert attrs["driftwatch.revision.after"] == change.after_id
        assert attrs["driftwatch.change.kind"] == "system_prompt"
        assert attrs["driftwatch.change.paths"] == ["$"]
        assert span.trace_id.hex() == change.trace_id
    assert receiver.requests[0].resource_spans[0].scope_spans[0].scope.name == "driftwatch"
