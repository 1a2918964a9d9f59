"""A runtime on the global tracer provider makes no span while no SDK provider is set (its spans would record
nothing), and traces as soon as the application sets one."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# a subprocess: OpenTelemetry's global provider can be set once per process
_PROGRAM = textwrap.dedent("""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client import CollectorRegistry

    import driftwatch
    from driftwatch.config import Settings
    from driftwatch.runtime import Runtime, set_runtime

    rt = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), audit=False, tracing=True))
    set_runtime(rt)

    @driftwatch.watch(agent="late")
    def answer(question):
        return "Paris"

    answer("before")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    answer("after")
    calls = rt.metrics.registry.get_sample_value("driftwatch_calls_total", {"agent": "late", "status": "ok"})
    print([s.name for s in exporter.get_finished_spans()], calls, rt.error_counts)
""")


def test_spans_start_once_the_application_sets_its_global_provider():
    out = subprocess.run([sys.executable, "-c", _PROGRAM], capture_output=True, text=True, timeout=120, check=True)
    # both calls recorded, no error; one span: the call made after the provider was set
    assert out.stdout.strip() == "['invoke_agent late'] 2.0 {}"
