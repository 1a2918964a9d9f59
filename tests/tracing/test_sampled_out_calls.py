"""A call whose span the sampler dropped is still the parent of the spans made inside it: they follow its
sampling decision and its trace, instead of starting traces of their own (which a ratio sampler would keep at
random: orphan fragments of a request that was not sampled)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult

import driftwatch
from driftwatch.testing import Captured, capture
from tests.helpers.lg_graphs import reflect_graph


class DropAgentRoots(Sampler):
    """Drops the root spans whose name starts with one of ``prefixes``; keeps every other root (the user's own)."""

    def __init__(self, *prefixes: str) -> None:
        self.prefixes = prefixes

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None,
                      links: Any = None, trace_state: Any = None) -> SamplingResult:
        drop = name.startswith(self.prefixes)
        return SamplingResult(Decision.DROP if drop else Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return f"DropAgentRoots{self.prefixes}"


@pytest.fixture
def sampled() -> Iterator[tuple[Captured, InMemorySpanExporter]]:
    """A runtime whose provider drops the ``invoke_agent dropped`` roots (ParentBased: children follow)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(root=DropAgentRoots("invoke_agent dropped")))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with capture(tracer_provider=provider) as c:
        yield c, exporter


def _inner(provider: TracerProvider) -> Any:
    """A user's own span made inside the agent; returns its span context."""
    with provider.get_tracer("user").start_as_current_span("user.lookup") as span:
        return span.get_span_context()


def test_spans_made_inside_a_dropped_call_follow_it(sampled: tuple[Captured, InMemorySpanExporter]) -> None:
    cap, exporter = sampled
    seen: dict[str, Any] = {}

    @driftwatch.watch(agent="dropped")
    def dropped(question: str) -> str:
        seen["dropped"] = (trace.get_current_span().get_span_context(), _inner(cap.provider))
        return "Paris"

    @driftwatch.watch(agent="kept")  # positive control: a sampled call, same provider, same shape
    def kept(question: str) -> str:
        seen["kept"] = (trace.get_current_span().get_span_context(), _inner(cap.provider))
        return "Paris"

    assert dropped("capital?") == kept("capital?") == "Paris"
    outer, inner = seen["dropped"]
    assert outer.is_valid and not outer.trace_flags.sampled  # the call's own span: dropped by the sampler
    assert inner.trace_id == outer.trace_id and not inner.trace_flags.sampled  # its child followed it
    outer, inner = seen["kept"]
    assert outer.trace_flags.sampled and inner.trace_id == outer.trace_id and inner.trace_flags.sampled
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["user.lookup", "invoke_agent kept"]  # nothing of the dropped call was exported


def test_a_dropped_langgraph_run_is_the_parent_of_its_nodes_spans(
        sampled: tuple[Captured, InMemorySpanExporter]) -> None:
    cap, exporter = sampled
    seen: list[Any] = []

    def lookup(state: dict[str, Any]) -> dict[str, Any]:
        seen.append(_inner(cap.provider))
        return {}

    graph = driftwatch.watch(reflect_graph(rewrite=lookup), agent="dropped")
    graph.invoke({"system_prompt": "You help.", "question": "hi"})
    kept = driftwatch.watch(reflect_graph(rewrite=lookup), agent="kept")  # positive control
    kept.invoke({"system_prompt": "You help.", "question": "hi"})
    dropped_inner, kept_inner = seen
    assert not dropped_inner.trace_flags.sampled
    assert kept_inner.trace_flags.sampled
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["user.lookup", "invoke_agent kept"]
    assert spans[0].parent is not None and spans[0].parent.span_id == spans[1].context.span_id
