"""Per-call signals: derived once in the runtime, before fan-out, whether or not the drift engine runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

import driftwatch
from driftwatch.observation import Call
from driftwatch.testing import capture

ANSWERS = ["I'm sorry, but I can't help with that.", "{not json", json.dumps({"answer": "42"})]


def _serve(agent: str) -> None:
    """A watched agent that refuses once, answers malformed JSON once and well-formed JSON once."""
    driftwatch.configure_agent(agent, format="json")
    answers = iter(ANSWERS)

    @driftwatch.watch(agent=agent)
    def answer(question: str) -> str:
        return next(answers)

    for _ in ANSWERS:
        answer("q")


@pytest.mark.parametrize("drift", [False, True])
def test_refusals_and_format_failures_are_counted_with_or_without_the_drift_engine(drift):
    """driftwatch_refusals_total and driftwatch_format_failures_total move with drift=False (the bug: they were
    derived inside the drift engine) and, as the positive control, with drift=True; each call counts once."""
    with capture(drift=drift) as cap:
        assert (cap.runtime.drift is not None) is drift
        _serve("bot")
        assert cap.value("driftwatch_refusals_total", agent="bot") == 1.0
        # the refusal is not JSON either: two of the three answers fail the format check
        assert cap.value("driftwatch_format_failures_total", agent="bot") == 2.0
        assert cap.value("driftwatch_calls_total", agent="bot", status="ok") == 3.0
        assert cap.runtime.error_counts == {}


def test_signals_are_derived_once_and_put_on_the_call(cap):
    """The runtime sets refused / format_ok on the Call before the sinks and the drift engine read it."""
    driftwatch.configure_agent("bot", format="json")
    seen: list[tuple[bool | None, bool | None]] = []
    engine = cap.runtime.drift
    original = engine.record_for  # how the engine reads each call (batched or not)

    def spy(call: Call) -> Any:  # the drift engine is a consumer: it sees the derived fields
        seen.append((call.refused, call.format_ok))
        return original(call)

    engine.record_for = spy
    for text in ANSWERS:
        cap.runtime.record_call(Call("bot", 0.01, output_chars=len(text), output_text=text))
    cap.runtime.flush_calls()  # the calls kept for a batch reach the engine
    assert seen == [(True, False), (False, False), (False, True)]


def test_a_hook_that_knows_its_signals_keeps_them(cap):
    """A Call that arrives with ``refused`` set is not re-judged from its text."""
    call = Call("bot", 0.01, output_text="I'm sorry, but I can't help with that.", refused=False)
    cap.runtime.record_call(call)
    assert call.refused is False
    assert cap.value("driftwatch_refusals_total", agent="bot") == 0.0
    cap.runtime.record_call(Call("bot", 0.01, output_text="I'm sorry, but I can't help with that."))
    assert cap.value("driftwatch_refusals_total", agent="bot") == 1.0  # positive control: derived when unset


def test_evaluator_and_embedding_run_only_for_the_drift_engine():
    """With drift=False nothing reads evaluator scores or embeddings, so the user's callables are not called;
    the refusal and format checks still are."""
    calls: list[str] = []
    for drift in (False, True):
        with capture(drift=drift) as cap:
            driftwatch.configure_agent("bot", evaluator=lambda text: calls.append("evaluator") or 1.0,
                                       embed=lambda text: calls.append("embed") or [1.0, 0.0],
                                       refusal=lambda text: calls.append("refusal") or False)
            cap.runtime.record_call(Call("bot", 0.01, output_text="fine"))
            assert calls == (["refusal"] if not drift else ["refusal", "refusal", "evaluator", "embed"])


def test_configure_agent_is_top_level_and_rejects_unknown_options(cap):
    """driftwatch.configure_agent is the one way; an unknown option is named in a one-line error."""
    opts = driftwatch.configure_agent("bot", format="json", score_metric="exact")
    assert cap.runtime.agent_options("bot") is opts and opts.score_metric == "exact"
    assert cap.runtime.agent_options("other") == driftwatch.AgentOptions()
    with pytest.raises(ValueError, match=r"configure_agent\(fromat=\.\.\.\): unknown option"):
        driftwatch.configure_agent("bot", fromat="json")


def test_agent_options_carry_over_to_a_new_runtime(tmp_path):
    """configure() keeps the options registered before it; capture() starts with them and keeps its own."""
    from driftwatch.runtime import set_runtime

    old = set_runtime(None)
    try:
        early = driftwatch.configure_agent("early", refusal_phrases=False)  # at import time, before configure()
        first = driftwatch.configure(ledger=str(tmp_path / "a.db"), metrics=False, tracing=False)
        assert first.agent_options("early") is early
        opts = driftwatch.configure_agent("bot", format="json")
        second = driftwatch.configure(ledger=str(tmp_path / "b.db"), metrics=False, tracing=False)
        assert second is not first and second.agent_options("bot") is opts
        with capture() as cap:
            assert cap.runtime.agent_options("bot") is opts
            driftwatch.configure_agent("inside", format="json")
        assert second.agent_options("inside") == driftwatch.AgentOptions()  # stayed in the block
    finally:
        current = set_runtime(old)
        if current is not None:
            current.close()
