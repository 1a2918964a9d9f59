"""driftwatch.tracing.id_generator(): span and trace ids that leave the global random alone."""

from __future__ import annotations

import os
import random

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from driftwatch.testing import capture
from driftwatch.tracing import id_generator


def _numbers_after_spans(provider: TracerProvider | None, spans: int = 20) -> list[float]:
    """What a program that seeds random draws after ``spans`` spans were made (none when no provider)."""
    random.seed(42)
    if provider is not None:
        tracer = provider.get_tracer("test")
        for _ in range(spans):
            tracer.start_span("s").end()
    return [random.random() for _ in range(5)]


def test_spans_from_driftwatch_ids_leave_the_global_random_alone() -> None:
    """Seeded draws are the same with and without spans made through a provider given driftwatch's generator."""
    expected = _numbers_after_spans(None)
    assert _numbers_after_spans(TracerProvider(id_generator=id_generator())) == expected


def test_the_sdk_default_ids_shift_the_global_random() -> None:
    """The positive control: the SDK's default generator draws from the global random (what issue 12 saw)."""
    assert _numbers_after_spans(TracerProvider()) != _numbers_after_spans(None)


def test_ids_are_valid_random_and_unique() -> None:
    gen = id_generator()
    assert gen is id_generator()  # one per process
    spans = {gen.generate_span_id() for _ in range(2000)}
    traces = {gen.generate_trace_id() for _ in range(2000)}
    assert len(spans) == len(traces) == 2000
    assert trace.INVALID_SPAN_ID not in spans and trace.INVALID_TRACE_ID not in traces
    assert max(spans) < 2 ** 64 and max(traces) < 2 ** 128
    assert max(traces) >= 2 ** 120  # all 128 bits are drawn (a 64-bit id would never reach this)
    assert gen.is_trace_id_random()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # the child exits at once
def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    """After a fork (gunicorn's pre-fork workers) the child's generator is reseeded, as the global random is."""
    gen = id_generator()
    gen.generate_span_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, str(gen.generate_span_id()).encode())
        os._exit(0)
    os.close(write)
    child = int(os.read(read, 64).decode())
    os.close(read)
    os.waitpid(pid, 0)
    assert child != gen.generate_span_id()


def test_capture_gives_its_provider_the_generator() -> None:
    with capture() as cap:
        assert cap.provider.id_generator is id_generator()
