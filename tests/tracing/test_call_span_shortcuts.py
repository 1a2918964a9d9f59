"""The shortcuts of the ``invoke_agent`` span path (issue 15) emit what the long way did: a read-only start mapping
(a DSPy LM's) merged once per agent version, the usual end (the answer's size alone) set without a dict, and
:meth:`Tracing.live` skipping the API's environment lookup while no global provider is set."""

from __future__ import annotations

import itertools
from types import MappingProxyType
from typing import Any

import dspy
import pytest
from dspy.utils import DummyLM
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

import driftwatch
from driftwatch.integrations import dspy as dw_dspy
from driftwatch.testing import capture
from driftwatch.tracing import Tracing


class Meddling(Sampler):
    """Records the attributes each span starts with, then changes the mapping it was given (as a sampler may)."""

    def __init__(self, drop: bool = False) -> None:
        self.seen: list[dict[str, Any]] = []
        self.drop = drop

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None,
                      links: Any = None, trace_state: Any = None) -> SamplingResult:
        self.seen.append(dict(attributes or {}))
        if isinstance(attributes, dict):
            attributes["meddled"] = True
        return SamplingResult(Decision.DROP if self.drop else Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "Meddling"


def _tracing(sampler: Sampler | None = None, defer: bool = False) -> tuple[Tracing, InMemorySpanExporter]:
    """A Tracing on an SDK provider of its own; ``defer``: its call spans made after the call (deferred_span)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider, defer=defer), exporter


def _raise(exc: BaseException) -> None:
    raise exc


def _base(version: str) -> dict[str, Any]:
    return {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a", "gen_ai.agent.version": version}


def test_a_read_only_mapping_passed_again_starts_the_same_attributes_as_a_dict() -> None:
    sampler = Meddling()
    tracing, exporter = _tracing(sampler)
    lm1 = MappingProxyType({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt"})
    lm2 = MappingProxyType({"gen_ai.provider.name": None, "gen_ai.request.model": "m2"})
    calls = [("v1", lm1), ("v1", lm1), ("v1", dict(lm1)), ("v1", lm2), ("v1", lm1), ("v2", lm1), ("v2", lm1),
             ("v2", None), ("v2", lm1)]
    for version, extra in calls:
        span, token, recording = tracing.start_call("a", version, attributes=extra)
        assert recording and token is not None
        Tracing.exit(token)
        Tracing.end_call(span, recording=recording)
    expected = [{**_base(v), **{k: x for k, x in (extra or {}).items() if x is not None}} for v, extra in calls]
    assert sampler.seen == expected  # the sampler changed each mapping it got: never the kept merge
    assert [dict(s.attributes) for s in exporter.get_finished_spans()] == [{**e, "meddled": True} for e in expected]


def test_a_sampled_out_call_is_current_and_computes_nothing_at_its_end() -> None:
    sampler = Meddling(drop=True)
    tracing, exporter = _tracing(sampler)
    lm = MappingProxyType({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt"})
    for _ in range(2):
        span, token, recording = tracing.start_call("a", "v1", attributes=lm)
        assert not recording and token is not None
        assert trace.get_current_span() is span
        Tracing.exit(token)
        Tracing.end_call(span, output_chars=5, input_tokens=3, recording=recording)
    assert sampler.seen == [{**_base("v1"), **lm}] * 2
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize(("end", "expected"), [
    ({}, {}),
    ({"output_chars": 7}, {"driftwatch.output.chars": 7}),
    ({"output_chars": 0}, {"driftwatch.output.chars": 0}),
    ({"output_chars": 7, "input_tokens": 3, "output_tokens": 0},
     {"driftwatch.output.chars": 7, "gen_ai.usage.input_tokens": 3}),
    ({"attributes": {"gen_ai.request.model": "m", "gen_ai.provider.name": None}}, {"gen_ai.request.model": "m"}),
    ({"attributes": {"gen_ai.request.model": None}, "output_chars": 2}, {"driftwatch.output.chars": 2}),
    ({"error": KeyError("x"), "output_chars": 2}, {"driftwatch.output.chars": 2, "error.type": "KeyError"}),
    ({"factory": "f"}, {"gen_ai.operation.name": "create_agent"}),
])
@pytest.mark.parametrize("recording", [None, True])
@pytest.mark.parametrize("defer", [False, True])
def test_the_end_attributes_are_those_of_the_long_way(end: dict[str, Any], expected: dict[str, Any],
                                                      recording: bool | None, defer: bool) -> None:
    tracing, exporter = _tracing(defer=defer)
    span, token, _ = tracing.start_call("a", "v1")
    Tracing.exit(token)
    Tracing.end_call(span, recording=recording, **end)
    assert len(exporter.get_finished_spans()) == (0 if defer else 1)  # deferred: made with the call's batch
    tracing.end_deferred(_raise)
    (done,) = exporter.get_finished_spans()
    assert dict(done.attributes) == {**_base("v1"), **expected}
    assert done.name == ("create_agent f" if "factory" in end else "invoke_agent a")
    assert [e.name for e in done.events] == (["exception"] if "error" in end else [])


def test_live_skips_the_environment_lookup_only_while_no_provider_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    real = trace.get_tracer_provider

    def counted() -> Any:
        asked.append(1)
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counted)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    unset = Tracing()
    asked.clear()  # made: its tracer asked the API once
    assert unset.live() is False and not asked
    monkeypatch.setenv("OTEL_PYTHON_TRACER_PROVIDER", "no_such_provider")  # read when a Tracing is made
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.ProxyTracerProvider())
    named = Tracing()  # on the global provider (a proxy): not bound
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: asked.append(1) or TracerProvider())  # what it loads
    assert not named.bound and named.live() is True and asked
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", TracerProvider())  # a provider set after the Tracing was made
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER")
    assert Tracing().live() is True


def test_dspy_spans_carry_the_lm_that_served_each_call() -> None:
    """The LM's attributes are kept per LM (read-only) and merged once: switching LMs between calls still names
    each call's own, at its start (what a sampler sees) and on the span."""
    sampler = Meddling()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    answers = itertools.repeat({"answer": "Paris"})
    lm_a, lm_b = DummyLM(answers), DummyLM(answers)
    lm_b.model = "openai/gpt-4o-mini"
    try:
        with capture(tracer_provider=provider):
            program = dspy.Predict("question -> answer")
            driftwatch.watch(program, agent="qa")
            for lm in (lm_a, lm_a, lm_b, lm_a, lm_b):
                with dspy.context(lm=lm):
                    program(question="capital of France?")
    finally:
        dw_dspy.uninstrument()
    models = [(s["gen_ai.provider.name"], s["gen_ai.request.model"]) for s in sampler.seen]
    want = [("dummy", "dummy")] * 2 + [("openai", "gpt-4o-mini"), ("dummy", "dummy"), ("openai", "gpt-4o-mini")]
    assert models == want
    spans = exporter.get_finished_spans()
    assert [(s.attributes["gen_ai.provider.name"], s.attributes["gen_ai.request.model"]) for s in spans] == want
    assert all(s.attributes["driftwatch.output.chars"] == 5 for s in spans)


class SeesStart(SimpleSpanProcessor):
    """A processor of its own (not the SDK's): records the attributes each span has in ``on_start``."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        super().__init__(exporter)
        self.started: list[dict[str, Any]] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append(dict(span.attributes))


def _spans(provider: TracerProvider, exporter: InMemorySpanExporter, defer: bool = False, **end: Any) -> list[Any]:
    tracing = Tracing(provider, defer=defer)
    lm = MappingProxyType({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"})
    for extra in (None, lm, lm, {"gen_ai.conversation.id": "c1", "gen_ai.request.model": None}, {"n": (1, 2)}):
        span, token, recording = tracing.start_call("a", "v1", attributes=extra)
        Tracing.exit(token)
        Tracing.end_call(span, recording=recording, **end)
    tracing.end_deferred(_raise)
    # in the order made: a deferred span is exported after one made the SDK's way at its start (a non-plain value)
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time)
    return [(s.name, dict(s.attributes), s.dropped_attributes) for s in spans]


@pytest.mark.parametrize("end", [{"output_chars": 7}, {"output_chars": 7, "input_tokens": 2}, {}])
@pytest.mark.parametrize("defer", [False, True])
def test_attributes_put_straight_into_an_sdk_span_are_what_the_sdk_stores(end: dict[str, Any], defer: bool) -> None:
    """With the SDK's own sampler and processors the start attributes (and the usual end's answer size) skip the
    SDK's cleaning: the spans hold exactly what a processor of its own (which takes the SDK's way) gets."""
    direct, own = InMemorySpanExporter(), InMemorySpanExporter()
    fast = TracerProvider()
    fast.add_span_processor(SimpleSpanProcessor(direct))
    slow = TracerProvider()
    seen = SeesStart(own)
    slow.add_span_processor(seen)
    assert Tracing(fast)._direct_for(Tracing(fast).tracer) and not Tracing(slow)._direct_for(Tracing(slow).tracer)
    assert _spans(fast, direct, defer, **end) == _spans(slow, own, defer, **end)
    assert seen.started[0] == _base("v1")  # a processor that reads the start still sees the attributes there


@pytest.mark.parametrize(("limits", "cut"), [({"max_span_attribute_length": 3}, True),
                                             ({"max_span_attributes": 2}, False)])
@pytest.mark.parametrize("defer", [False, True])
def test_span_limits_keep_the_sdk_way(limits: dict[str, int], cut: bool, defer: bool) -> None:
    """A length limit (strings cut) or a small attribute limit (the oldest dropped, counted): as the SDK does."""
    from opentelemetry.sdk.trace import SpanLimits

    exporters = InMemorySpanExporter(), InMemorySpanExporter()
    providers = TracerProvider(span_limits=SpanLimits(**limits)), TracerProvider(span_limits=SpanLimits(**limits))
    providers[0].add_span_processor(SimpleSpanProcessor(exporters[0]))
    providers[1].add_span_processor(SeesStart(exporters[1]))
    assert Tracing(providers[0])._direct_for(Tracing(providers[0]).tracer) is not cut
    fast, slow = (_spans(p, e, defer, output_chars=7) for p, e in zip(providers, exporters, strict=True))
    assert fast == slow
    assert any(dropped for _, _, dropped in fast) is not cut


def test_a_processor_added_later_turns_the_direct_way_off() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    assert tracing._direct_for(tracing.tracer)
    seen = SeesStart(InMemorySpanExporter())
    provider.add_span_processor(seen)
    span, token, recording = tracing.start_call("a", "v1")
    Tracing.exit(token)
    Tracing.end_call(span, recording=recording, output_chars=1)
    assert seen.started == [_base("v1")]
    assert dict(exporter.get_finished_spans()[0].attributes) == {**_base("v1"), "driftwatch.output.chars": 1}
