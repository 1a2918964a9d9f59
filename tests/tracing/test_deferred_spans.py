"""A watched call's span made after the call (``driftwatch.deferred_span``, issue 15): the span the SDK would have
made (ids, parent, flags, attributes, events, links, status, name, limits), what the agent's code did to the current
span kept, children parented to it; made with the call's batch, before reads, at a factory's end and at exit; the
SDK's way wherever something could tell (a processor of another kind, a sampled-out call)."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import subprocess
import sys
import textwrap
import threading
from typing import Any

import dspy
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

import driftwatch
from driftwatch.deferred_span import DeferredSpan
from driftwatch.integrations import dspy as dw_dspy
from driftwatch.testing import capture
from driftwatch.tracing import Tracing


class Sequential(IdGenerator):
    """Ids 1, 2, 3 ...: two providers given one each draw the same ids for the same spans."""

    def __init__(self) -> None:
        self._next = itertools.count(1)

    def generate_span_id(self) -> int:
        return next(self._next)

    def generate_trace_id(self) -> int:
        return next(self._next)

    def is_trace_id_random(self) -> bool:
        return True  # the SDK then sets the random-trace-id flag: both ways must


def _raise(exc: BaseException) -> None:
    raise exc


def _fails_recorded(span: Any) -> None:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        span.record_exception(exc, {"k": "v"}, timestamp=2_000)
        span.record_exception(exc, escaped=True)  # its own time
        raise


def _agent_run(defer: bool, limits: SpanLimits | None = None) -> tuple[list[ReadableSpan], type]:
    """One watched call inside an outer span: the agent's code works on the current span (every kind of write,
    a value the SDK refuses, a key set twice, a child span); returns the spans exported, in start order."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=Sequential(), span_limits=limits or SpanLimits())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider, defer=defer)
    other = provider.get_tracer("agent-code")
    linked = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with other.start_as_current_span("outer"):
        span, token, recording = tracing.start_call("a", "v1", attributes={"gen_ai.request.model": "m"})
        current = trace.get_current_span()
        assert current is span and recording and current.is_recording()
        current.set_attribute("user.id", "u1")
        tags, step, many = ["a", "b"], {"n": 1, "seen": ["x"]}, {"user.tier": 2, "gen_ai.request.model": "m2",
                                                                 "bad": {"a": 1}}
        current.set_attribute("user.tags", tags)
        current.set_attributes(many)
        current.set_attribute("user.id", "u2")  # set again: moves last
        current.add_event("step", step, timestamp=1_000)
        current.add_link(linked, {"why": "retry"})
        tags.append("changed later")  # the SDK copied them when set: nothing changes on the span
        step["n"] = 2
        step["seen"].append("y")
        many["user.tier"] = 3
        current.set_status(Status(StatusCode.ERROR, "first"))
        current.set_status(StatusCode.OK)
        current.update_name("invoke_agent renamed")
        with contextlib.suppress(ValueError):  # recorded there, then it goes on up: its traceback grows after
            _fails_recorded(current)
        with other.start_as_current_span("child") as child:
            child.set_attribute("inner", True)
        Tracing.exit(token)
        Tracing.end_call(span, recording=recording, output_chars=7)
    kind = type(span)
    tracing.end_deferred(_raise)
    return sorted(exporter.get_finished_spans(), key=lambda s: s.context.span_id), kind


def _usual_run(defer: bool, limits: SpanLimits | None = None, odd: dict[Any, Any] | None = None) -> list[ReadableSpan]:
    """One watched call whose agent code only sets plain attributes (one of them twice): the usual span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=Sequential(), span_limits=limits or SpanLimits())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider, defer=defer)
    span, token, recording = tracing.start_call("a", "v1", attributes={"gen_ai.request.model": "m"})
    trace.get_current_span().set_attribute("user.id", "u1")
    trace.get_current_span().set_attribute("gen_ai.request.model", "m2")  # a start attribute set again: moves last
    if odd is not None:
        trace.get_current_span().set_attributes(odd)  # what the SDK refuses: the SDK's span makes it
    Tracing.exit(token)
    Tracing.end_call(span, recording=recording, output_chars=7, input_tokens=3)
    tracing.end_deferred(_raise)
    return list(exporter.get_finished_spans())


@pytest.mark.parametrize(("limits", "odd", "direct", "dropped"), [
    (None, None, True, 0),
    (SpanLimits(max_span_attributes=4), None, False, 3),
    (None, {"": 1}, False, 1), (None, {5: "x"}, False, 0), (None, {"k": object()}, False, 0),
    (None, {"k": [1, 2]}, False, 0)])
def test_the_usual_deferred_span_is_handed_over_as_the_sdk_would(limits: SpanLimits | None, odd: Any, direct: bool,
                                                                 dropped: int) -> None:
    """Only plain attributes set: the ReadableSpan its processors get is made directly (a plain dict of attributes,
    no lists), with the same fields as the SDK's; past the attribute limit, or with a key or value the SDK refuses or
    changes, by the SDK's span."""
    (deferred,), (sdk_way,) = _usual_run(True, limits, odd), _usual_run(False, limits, odd)
    assert _fields(deferred) == _fields(sdk_way)
    assert (type(deferred._attributes) is dict) is direct  # which way it was made
    assert list(deferred.attributes)[-2:] == ["driftwatch.output.chars", "gen_ai.usage.input_tokens"]
    assert (deferred.dropped_attributes, deferred.dropped_events, deferred.dropped_links) == \
        (sdk_way.dropped_attributes, sdk_way.dropped_events, sdk_way.dropped_links) == (dropped, 0, 0)
    times = {"start_time": None, "end_time": None}
    assert {**json.loads(deferred.to_json()), **times} == {**json.loads(sdk_way.to_json()), **times}


def _fields(span: ReadableSpan) -> tuple[Any, ...]:
    return (span.name, span.context, span.parent, span.kind, dict(span.attributes), span.dropped_attributes,
            [(e.name, dict(e.attributes), e.timestamp if e.timestamp < 10**6 else "now") for e in span.events],
            [(link.context, dict(link.attributes)) for link in span.links],
            span.status.status_code, span.status.description, span.resource.attributes,
            span.instrumentation_scope, span.start_time <= span.end_time)


@pytest.mark.parametrize("limits", [None, SpanLimits(max_span_attributes=3, max_events=1)])
def test_a_deferred_span_is_the_span_the_sdk_would_make(limits: SpanLimits | None) -> None:
    deferred, kind = _agent_run(True, limits)
    sdk_way, sdk_kind = _agent_run(False, limits)
    assert kind is DeferredSpan and sdk_kind is not DeferredSpan  # the two ways did run
    assert [_fields(s) for s in deferred] == [_fields(s) for s in sdk_way]
    outer, call, child = deferred  # ids in the order drawn: outer, the call, the child
    assert call.parent == outer.context and child.parent == call.context
    assert call.context.trace_flags.sampled and call.name == "invoke_agent renamed"
    assert list(call.attributes)[-2:] == ["user.id", "driftwatch.output.chars"]


def test_a_sampled_out_call_gets_the_sdks_non_recording_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    span, token, recording = tracing.start_call("a", "v1")
    assert not recording and type(span) is trace.NonRecordingSpan and trace.get_current_span() is span
    assert not span.get_span_context().trace_flags.sampled
    Tracing.exit(token)
    Tracing.end_call(span, recording=recording, output_chars=1)
    tracing.end_deferred(_raise)
    assert exporter.get_finished_spans() == () and not tracing.ended


def test_a_processor_of_another_kind_gets_the_span_at_its_start() -> None:
    class SeesStart(SimpleSpanProcessor):
        def __init__(self, exporter: InMemorySpanExporter) -> None:
            super().__init__(exporter)
            self.started: list[str] = []

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            self.started.append(span.name)

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    seen = SeesStart(exporter)
    provider.add_span_processor(seen)
    tracing = Tracing(provider)
    span, token, recording = tracing.start_call("a", "v1")
    assert type(span) is not DeferredSpan and seen.started == ["invoke_agent a"]  # at its start, the SDK's way
    Tracing.exit(token)
    Tracing.end_call(span, recording=recording)
    assert [s.name for s in exporter.get_finished_spans()] == ["invoke_agent a"]  # at its end, no batch


def test_call_spans_are_made_with_the_calls_batch_and_before_a_read() -> None:
    with capture(call_batch=8, call_batch_s=60.0) as cap:
        watched = driftwatch.watch(lambda q: "an answer", agent="batched")
        for _ in range(4):
            watched("q")
        assert len(cap.exporter.get_finished_spans()) == 1  # the agent's first call is processed at once
        assert len(cap.spans("invoke_agent batched")) == 4  # a read processes the batch: every span made
        for _ in range(8):
            watched("q")
        assert len(cap.exporter.get_finished_spans()) == 12  # the call that filled the batch made them
    with capture(call_batch=1) as cap:  # every call processed at once: its span with it
        watched = driftwatch.watch(lambda q: "an answer", agent="at-once")
        for n in range(1, 4):
            watched("q")
            assert len(cap.exporter.get_finished_spans()) == n


def test_spans_ended_on_many_threads_are_all_made_once() -> None:
    with capture(call_batch=32) as cap:
        watched = driftwatch.watch(lambda q: q, agent="threads")
        threads = [threading.Thread(target=lambda: [watched("q") for _ in range(50)]) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        spans = cap.spans("invoke_agent threads")
    assert len(spans) == 400 and len({s.context.span_id for s in spans}) == 400


def test_a_factory_span_is_made_when_the_factory_returns() -> None:
    try:
        with capture(call_batch=8, call_batch_s=60.0) as cap:
            make = driftwatch.watch(lambda: dspy.Predict("question -> answer"), agent="made")
            make()
            assert [s.name for s in cap.exporter.get_finished_spans()] == ["create_agent made"]  # no read needed
    finally:
        dw_dspy.uninstrument()


@pytest.mark.parametrize("error", [RuntimeError, IndexError])  # IndexError: also what an empty deque's pop raises
def test_a_span_that_fails_to_be_made_is_counted_and_the_others_are_made(monkeypatch: pytest.MonkeyPatch,
                                                                          error: type[Exception]) -> None:
    real = DeferredSpan.make
    made = itertools.count()

    def second_fails(self: DeferredSpan) -> None:
        if next(made) == 1:
            raise error("cannot make it")
        real(self)

    with capture(call_batch=8, call_batch_s=60.0) as cap:
        watched = driftwatch.watch(lambda q: "an answer", agent="failing")
        watched("q")  # processed at once
        monkeypatch.setattr(DeferredSpan, "make", second_fails)
        for _ in range(3):
            watched("q")
        assert len(cap.spans("invoke_agent failing")) == 3  # 4 calls, the 2nd deferred one failed
        assert cap.runtime.error_counts.get("tracing") == 1


def test_the_spans_of_the_last_calls_reach_the_exporter_at_exit(tmp_path: Any) -> None:
    """No flush, no close: calls still in their batch when the program ends get their spans exported by the
    provider's own exit shutdown (driftwatch makes them first)."""
    script = textwrap.dedent("""
        import driftwatch
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(formatter=lambda s: s.name + "\\n")))
        driftwatch.configure(ledger=":memory:", tracer_provider=provider, call_batch=64, call_batch_s=60.0)
        watched = driftwatch.watch(lambda q: "an answer", agent="leaving")
        for _ in range(5):
            watched("q")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, check=True)
    assert done.stdout.splitlines().count("invoke_agent leaving") == 5, done.stderr


def test_a_deferred_span_ignores_writes_after_it_ended() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracing = Tracing(provider)
    span, token, _ = tracing.start_call("a", None)
    Tracing.exit(token)
    assert type(span) is DeferredSpan
    span.end(end_time=span._start + 5)
    span.end()  # the first end counts
    span.set_attribute("late", 1)
    span.add_event("late")
    assert not span.is_recording() and len(tracing.ended) == 1
    tracing.end_deferred(_raise)
    provider.force_flush()
    (done,) = exporter.get_finished_spans()
    assert "late" not in done.attributes and not done.events and done.end_time - done.start_time == 5


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
def test_a_forked_child_leaves_the_parents_ended_spans_to_the_parent() -> None:
    import os

    with capture(call_batch=8, call_batch_s=60.0) as cap:
        watched = driftwatch.watch(lambda q: "an answer", agent="forking")
        for _ in range(3):
            watched("q")  # the first processed at once; two spans wait
        assert len(cap.runtime.tracing.ended) == 2
        pid = os.fork()
        if pid == 0:  # the child: nothing of the parent's waits to be made
            os._exit(0 if not cap.runtime.tracing.ended else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert len(cap.spans("invoke_agent forking")) == 3  # the parent still makes its own


def test_a_tracer_turned_off_later_gets_what_the_sdk_gives() -> None:
    from opentelemetry.sdk.trace import _TracerConfig

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    span, token, recording = tracing.start_call("a", "v1")
    Tracing.exit(token)
    assert type(span) is DeferredSpan and recording  # on: deferred
    Tracing.end_call(span, recording=recording)
    tracing.tracer._set_tracer_config(_TracerConfig(is_enabled=False))
    span, token, recording = tracing.start_call("a", "v1")
    sdk = tracing.tracer.start_span("x")  # what the SDK itself gives for the off tracer
    assert type(span) is type(sdk) is trace.NonRecordingSpan and not recording


@pytest.mark.skipif(not hasattr(atexit, "_ncallbacks"), reason="counts CPython's exit handlers")
def test_runtimes_that_come_and_go_keep_one_exit_handler() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    before = atexit._ncallbacks()
    for _ in range(5):  # runtimes made again on one provider (configure() after configure())
        tracing = Tracing(provider)
        span, token, _ = tracing.start_call("a", None)
        Tracing.exit(token)
        assert type(span) is DeferredSpan  # each one defers (and so hooks the exit)
        Tracing.end_call(span)
        tracing.end_deferred(_raise)
    assert atexit._ncallbacks() == before + 1  # hooked once for the provider (it was once per runtime)
