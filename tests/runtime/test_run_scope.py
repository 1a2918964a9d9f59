"""The runtime's run scope: one optimizer run in the ledger, metrics, audit log and a compile span."""

from __future__ import annotations

import math
import threading

import pytest

import driftwatch
from driftwatch.runtime import suppressed
from driftwatch.testing import Captured, capture


def test_a_run_is_recorded_everywhere_with_its_candidates(cap: Captured) -> None:
    """begin_run → candidates → finish: ledger run and candidates, metrics, audit event and one compile span."""
    scope = cap.runtime.begin_run("bot", "MyOptimizer", trainset=12)
    assert scope is not None
    (started,) = cap.ledger.runs(agent="bot")
    assert (started.id, started.outcome, started.attributes) == (scope.run.id, "running", {"trainset": 12})
    for score, revision in [(0.5, None), (math.nan, None), (None, "f" * 32), (0.8, "e" * 32), (0.6, None)]:
        scope.candidate(score, revision, stage="evaluate")
    scope.finish()
    scope.finish()  # only the first call counts
    (run,) = cap.ledger.runs(agent="bot")
    assert (run.outcome, run.candidates, run.best_score, run.error_type) == ("ok", 5, 0.8, None)
    assert [(c["index"], c["score"], c["revision_id"]) for c in cap.ledger.candidates(run.id)] == [
        (0, 0.5, None), (1, None, None), (2, None, "f" * 32), (3, 0.8, "e" * 32), (4, 0.6, None)]
    assert cap.value("driftwatch_optimizer_runs_total", agent="bot", optimizer="MyOptimizer", outcome="ok") == 1
    assert cap.value("driftwatch_optimizer_candidates_total", agent="bot", optimizer="MyOptimizer") == 5
    assert cap.value("driftwatch_optimizer_best_score", agent="bot", optimizer="MyOptimizer") == 0.8
    assert [e["run_id"] for e in cap.audit if e["event"] == "driftwatch.optimizer_run"] == [run.id]
    (span,) = cap.spans("driftwatch.optimizer.compile")
    assert dict(span.attributes) == {
        "driftwatch.agent": "bot", "driftwatch.optimizer.name": "MyOptimizer", "driftwatch.optimizer.run_id": run.id,
        "driftwatch.optimizer.outcome": "ok", "driftwatch.optimizer.candidates": 5,
        "driftwatch.optimizer.best_score": 0.8}
    assert run.trace_id == format(span.context.trace_id, "032x")


def test_changes_made_during_a_run_are_children_of_its_span_also_from_a_worker(cap: Captured) -> None:
    """The span is current from begin_run to finish; a plain thread (no inherited context) re-enters it."""
    driftwatch.track("bot", "system_prompt", "v0")
    scope = cap.runtime.begin_run("bot", "MyOptimizer")
    assert scope is not None
    driftwatch.track("bot", "system_prompt", "v1", source="MyOptimizer")

    def worker() -> None:
        token = scope.enter()
        try:
            driftwatch.track("bot", "system_prompt", "v2", source="MyOptimizer")
        finally:
            scope.exit(token)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    scope.finish()
    driftwatch.track("bot", "system_prompt", "v3")  # after the run: not its child
    (span,) = cap.spans("driftwatch.optimizer.compile")
    parents = [s.parent.span_id if s.parent else None for s in cap.spans("driftwatch.change")]
    assert parents == [span.context.span_id, span.context.span_id, None]


def test_a_failed_run_and_its_span_say_so(cap: Captured) -> None:
    """finish(error=...) marks the run failed (with the error type) in the ledger, the metric and the span."""
    scope = cap.runtime.begin_run("bot", "MyOptimizer")
    assert scope is not None
    scope.finish(error=ValueError("no trainset"))
    (run,) = cap.ledger.runs(agent="bot")
    assert (run.outcome, run.error_type) == ("failed", "ValueError")
    assert cap.value("driftwatch_optimizer_runs_total", agent="bot", optimizer="MyOptimizer", outcome="failed") == 1
    (span,) = cap.spans("driftwatch.optimizer.compile")
    assert (span.attributes["driftwatch.optimizer.outcome"], span.attributes["error.type"]) == ("failed", "ValueError")
    assert span.status.is_ok is False


def test_a_bad_score_is_counted_not_raised(cap: Captured) -> None:
    """A score that is not a number never reaches the optimizer as an exception: counted (stage run), not stored."""
    scope = cap.runtime.begin_run("bot", "MyOptimizer")
    assert scope is not None
    scope.candidate("high")  # type: ignore[arg-type]  # the bad input under test
    scope.candidate(1)
    scope.finish()
    (run,) = cap.ledger.runs(agent="bot")
    assert (run.candidates, run.best_score) == (1, 1.0)
    assert cap.value("driftwatch_internal_errors_total", stage="run") == 1


@pytest.mark.parametrize("off", ["disabled", "suppressed"])
def test_no_run_when_driftwatch_is_off_or_suppressed(off: str) -> None:
    """begin_run returns None (no span) when driftwatch is disabled or suppressed; switched on, it returns a scope."""
    with capture(enabled=off != "disabled") as cap:
        if off == "suppressed":
            with suppressed():
                assert cap.runtime.begin_run("bot", "MyOptimizer") is None
        else:
            assert cap.runtime.begin_run("bot", "MyOptimizer") is None
        assert cap.spans("driftwatch.optimizer.compile") == []
    with capture() as cap:
        scope = cap.runtime.begin_run("bot", "MyOptimizer")
        assert scope is not None
        scope.finish()
        assert len(cap.ledger.runs()) == 1
