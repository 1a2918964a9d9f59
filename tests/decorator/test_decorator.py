"""driftwatch.watch on plain functions: sync, async, generators, async generators."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import driftwatch
from driftwatch.testing import Captured


def test_sync_calls_are_recorded_with_status_duration_and_size(cap: Captured) -> None:
    """Each call of a sync function counts once, with its duration and output size."""

    @driftwatch.watch(agent="bot")
    def answer(q: str) -> str:
        return "x" * len(q)

    assert answer("abcd") == "xxxx"
    assert answer("ab") == "xx"
    assert cap.value("driftwatch_calls_total", agent="bot", status="ok") == 2.0
    assert cap.value("driftwatch_call_duration_seconds_count", agent="bot") == 2.0
    assert cap.value("driftwatch_output_chars_sum", agent="bot") == 6.0
    assert answer.__name__ == "answer" and answer.__wrapped__("a") == "x"


def test_name_is_derived_when_agent_is_omitted(cap: Captured) -> None:
    """Without agent=, the function's name is the agent name (bare and called decorator forms)."""

    @driftwatch.watch
    def triage() -> dict:
        return {"answer": "route to billing"}

    @driftwatch.watch()
    def other() -> None:
        return None

    triage()
    other()
    assert cap.value("driftwatch_calls_total", agent="triage", status="ok") == 1.0
    assert cap.value("driftwatch_output_chars_sum", agent="triage") == len("route to billing")
    assert cap.value("driftwatch_calls_total", agent="other", status="ok") == 1.0
    assert cap.value("driftwatch_output_chars_count", agent="other") == 0.0  # no obvious size: not observed


def test_async_calls_are_recorded(cap: Captured) -> None:
    """An async function is awaited inside the span; errors are recorded and re-raised."""

    @driftwatch.watch(agent="abot")
    async def answer(fail: bool = False) -> str:
        await asyncio.sleep(0)
        if fail:
            raise ValueError("no")
        return "hello"

    assert asyncio.run(answer()) == "hello"
    with pytest.raises(ValueError, match="no"):
        asyncio.run(answer(fail=True))
    assert cap.value("driftwatch_calls_total", agent="abot", status="ok") == 1.0
    assert cap.value("driftwatch_calls_total", agent="abot", status="error") == 1.0
    assert [s.name for s in cap.spans()] == ["invoke_agent abot"] * 2


def test_generator_is_one_call_covering_all_chunks(cap: Captured) -> None:
    """A generator is one call: chunks are counted together, its return value and send() still work."""
    inner_spans = []

    @driftwatch.watch(agent="stream")
    def tokens(n: int):
        from opentelemetry import trace

        received = []
        for i in range(n):
            inner_spans.append(trace.get_current_span().get_span_context().span_id)
            got = yield f"tok{i} "
            received.append(got)
        return received

    gen = tokens(3)
    assert next(gen) == "tok0 "
    assert gen.send("a") == "tok1 "
    assert gen.send("b") == "tok2 "
    with pytest.raises(StopIteration) as stop:
        gen.send("c")
    assert stop.value.value == ["a", "b", "c"]
    assert cap.value("driftwatch_calls_total", agent="stream", status="ok") == 1.0
    assert cap.value("driftwatch_output_chars_sum", agent="stream") == 15.0
    (span,) = cap.spans("invoke_agent stream")
    assert set(inner_spans) == {span.context.span_id}  # the body runs inside the call's span


def test_generator_closed_early_and_throw(cap: Captured) -> None:
    """Breaking out of a generator records the call; an exception thrown in reaches the generator."""

    @driftwatch.watch(agent="stream")
    def numbers():
        try:
            for i in range(10):
                yield str(i)
        except KeyError:
            yield "recovered"

    for item in numbers():
        if item == "2":
            break
    gen = numbers()
    next(gen)
    assert gen.throw(KeyError("x")) == "recovered"
    gen.close()
    assert cap.value("driftwatch_calls_total", agent="stream", status="ok") == 2.0


def test_async_generator_is_recorded(cap: Captured) -> None:
    """An async generator is one call with its chunks counted; an error inside it is an error call."""

    @driftwatch.watch(agent="astream")
    async def chunks(fail: bool):
        yield "ab"
        yield "cde"
        if fail:
            raise RuntimeError("mid-stream")

    async def consume(fail: bool) -> list[str]:
        return [c async for c in chunks(fail)]

    assert asyncio.run(consume(False)) == ["ab", "cde"]
    with pytest.raises(RuntimeError, match="mid-stream"):
        asyncio.run(consume(True))
    assert cap.value("driftwatch_calls_total", agent="astream", status="ok") == 1.0
    assert cap.value("driftwatch_calls_total", agent="astream", status="error") == 1.0
    assert cap.value("driftwatch_output_chars_sum", agent="astream") == 5.0


def test_disabled_driftwatch_records_nothing() -> None:
    """With enabled=False the function runs untouched and nothing is recorded."""
    from driftwatch.testing import capture

    with capture(enabled=False) as cap:

        @driftwatch.watch(agent="off")
        def run() -> str:
            driftwatch.track("off", "p", "prompt")
            return "ran"

        assert run() == "ran"
        assert cap.value("driftwatch_calls_total", agent="off", status="ok") == 0.0
        assert cap.spans() == []
        assert cap.ledger.changes(baselines=True) == []


def test_bad_targets_and_arguments_get_clear_errors() -> None:
    """watch() on a non-callable, a plain class or with a bad agent name fails with one line naming it."""
    with pytest.raises(TypeError, match="expected a function, a DSPy module or a LangGraph graph, got int"):
        driftwatch.watch(42)
    with pytest.raises(TypeError, match="cannot watch class Plain"):

        @driftwatch.watch
        class Plain:
            pass

    with pytest.raises(ValueError, match=r"driftwatch.watch\(agent=''\): expected a non-empty string"):
        driftwatch.watch(agent="")


def test_an_object_whose_integration_cannot_load_gets_the_reason(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A framework object whose integration fails to import: watch() raises DidNotEnable with the reason."""
    from driftwatch import integrations
    from driftwatch.integrations import DidNotEnable

    (tmp_path / "fakefw.py").write_text("class Graph:\n    pass\n")
    (tmp_path / "fakefw_integration.py").write_text(
        "from driftwatch.integrations import DidNotEnable\n"
        "raise DidNotEnable(\"fakefw>=2.0 is required; pip install 'driftwatch-agents[fakefw]'\")\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(integrations._ROOTS, "fakefw", "fakefw_integration")
    import fakefw  # type: ignore[import-not-found]  # written above

    with pytest.raises(DidNotEnable, match=r"^driftwatch.watch\(Graph\): fakefw>=2.0 is required; pip install"):
        driftwatch.watch(fakefw.Graph(), agent="g")
    assert integrations.unavailable_reason(object()) is None
