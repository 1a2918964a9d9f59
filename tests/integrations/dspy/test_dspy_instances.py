"""Several live instances of one watched program: the student serving while (and after) its optimized copy is
built, blue/green swaps, A/B pairs, copies. Each instance is compared with its own last state, so one that
serves unchanged never records a change, whatever the other did; a real edit of either is recorded once."""

from __future__ import annotations

import copy
import gc
import threading
import time
import weakref
from typing import Any

import dspy
import pytest

import driftwatch
from driftwatch.integrations import dspy as dw_dspy
from driftwatch.revision import fingerprint
from driftwatch.testing import Captured
from tests.helpers.dspy_programs import PromptLM, TwoStep, metric, trainset

QUESTION = "What is the capital of France?"
pytestmark = pytest.mark.usefixtures("quiet_optimizers")


def _compile(name: str, student: dspy.Module) -> dspy.Module:
    if name == "BootstrapFewShot":
        return dspy.BootstrapFewShot(metric=metric, max_bootstrapped_demos=1, max_labeled_demos=1).compile(
            student, trainset=trainset(4))
    return dspy.COPRO(metric=metric, breadth=2, depth=1).compile(
        student, trainset=trainset(4), eval_kwargs={"num_threads": 1, "display_progress": False})


def _revisions(program: Any) -> dict[str, str]:
    return {c: fingerprint(s) for c, s in dw_dspy.program_state(program).items()}


def _serve(program: Any, n: int) -> None:
    for _ in range(n):
        program(question=QUESTION)


@pytest.mark.parametrize("name", ["BootstrapFewShot", "COPRO"])
def test_student_serving_after_compile_and_the_swap_record_only_the_optimizers_changes(
        cap: Captured, lm: PromptLM, name: str) -> None:
    """Blue/green: the student keeps serving after compile returned, then the optimized program is swapped in."""
    student = driftwatch.watch(TwoStep(), agent="qa")
    _serve(student, 3)
    before = _revisions(student)

    optimized = _compile(name, student)

    (run,) = cap.ledger.runs(agent="qa")
    after = _revisions(optimized)
    tuned = {c for c in after if after[c] != before[c]}
    assert tuned
    recorded = cap.changes(agent="qa")
    assert {c.component for c in recorded} == tuned and len(recorded) == len(tuned)
    for change in recorded:
        assert (change.source, change.run_id) == (name, run.id)
        assert (change.before_id, change.after_id) == (before[change.component], after[change.component])

    _serve(student, 5)        # the old program still serves: same state as before, so nothing to record
    assert cap.changes(agent="qa") == recorded
    _serve(optimized, 5)      # the swap: its state is the revision the run recorded
    _serve(student, 2)        # and back (a rollback of the swap) changes nothing either
    _serve(optimized, 2)
    assert cap.changes(agent="qa") == recorded
    assert cap.value("driftwatch_changes_total", agent="qa", component=next(iter(tuned)), kind=recorded[0].kind,
                     source="runtime") == 0
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 3 + 5 + 5 + 2 + 2
    assert cap.runtime.error_counts == {}


def test_student_serving_from_another_thread_during_and_after_a_background_compile(
        cap: Captured, lm: PromptLM) -> None:
    """The compile runs in a background thread while the student serves; the caller swaps when it returns."""
    student = driftwatch.watch(TwoStep(), agent="qa")
    student(question=QUESTION)
    serving = {"program": student}
    compiled = threading.Event()
    stop = threading.Event()
    served_after = [0]

    def serve() -> None:
        while not stop.is_set():
            program = serving["program"]
            program(question=QUESTION)
            if compiled.is_set() and program is student:
                served_after[0] += 1

    def optimize() -> None:
        optimized = _compile("COPRO", student)
        compiled.set()
        deadline = time.monotonic() + 30
        while served_after[0] < 20 and time.monotonic() < deadline:  # the swap comes late: the student
            stop.wait(0.001)                                          # serves on after compile returned
        serving["program"] = optimized

    server = threading.Thread(target=serve)
    optimizer = threading.Thread(target=optimize)
    server.start()
    optimizer.start()
    optimizer.join(timeout=60)
    swapped = serving["program"] is not student
    stop.set()
    server.join(timeout=10)
    assert swapped and not optimizer.is_alive() and not server.is_alive()
    _serve(serving["program"], 10)

    (run,) = cap.ledger.runs(agent="qa")
    changes = cap.changes(agent="qa")
    assert changes and {(c.source, c.run_id) for c in changes} == {("COPRO", run.id)}
    assert served_after[0] >= 20
    assert cap.runtime.error_counts == {}


def test_two_instances_serving_alternately_record_nothing(cap: Captured, lm: PromptLM) -> None:
    """A/B: the student and its optimized copy both serve, in turn and from threads: no change after the run's."""
    a = driftwatch.watch(TwoStep(), agent="qa")
    a(question=QUESTION)
    b = _compile("COPRO", a)
    recorded = cap.changes(agent="qa")
    assert recorded
    for _ in range(10):
        a(question=QUESTION)
        b(question=QUESTION)
    dspy.Parallel(num_threads=4)([(p, ex.inputs()) for ex in trainset(8) for p in (a, b)])
    assert cap.changes(agent="qa") == recorded


def test_independent_instances_record_one_change_when_the_second_one_first_serves(
        cap: Captured, lm: PromptLM) -> None:
    """Two instances built apart: the second one's first call is the one change (its state goes live); then
    serving either, or fresh copies of either (per-request deep copies), records nothing."""
    a = driftwatch.watch(TwoStep(), agent="qa")
    b = driftwatch.watch(TwoStep(), agent="qa")
    b.respond.signature = b.respond.signature.with_instructions("Be concise.")
    a(question=QUESTION)
    b(question=QUESTION)
    (change,) = cap.changes(agent="qa")
    assert (change.component, change.source) == ("respond", "runtime")
    assert (change.before_id, change.after_id) == (_revisions(a)["respond"], _revisions(b)["respond"])
    for _ in range(5):
        a(question=QUESTION)
        b(question=QUESTION)
        copy.deepcopy(a)(question=QUESTION)   # a's state, though b's is the current revision
        copy.deepcopy(b)(question=QUESTION)
    assert cap.changes(agent="qa") == [change]


def test_a_runtime_edit_of_the_old_instance_after_compile_is_one_change_from_its_own_revision(
        cap: Captured, lm: PromptLM) -> None:
    """After the run, editing the student is recorded once as student-before -> student-after (not from the
    optimized revision); the optimized program serving still records nothing; editing it is from its own."""
    student = driftwatch.watch(TwoStep(), agent="qa")
    student(question=QUESTION)
    optimized = _compile("COPRO", student)
    run_changes = cap.changes(agent="qa")
    assert {c.component for c in run_changes} >= {"respond"}
    old = _revisions(student)["respond"]
    tuned = _revisions(optimized)["respond"]
    assert old != tuned

    student.respond.signature = student.respond.signature.with_instructions("Answer in French.")
    _serve(student, 3)
    (edit,) = cap.changes(agent="qa")[len(run_changes):]
    assert (edit.component, edit.kind, edit.source) == ("respond", "instructions", "runtime")
    assert (edit.before_id, edit.after_id) == (old, _revisions(student)["respond"])
    assert edit.paths == ("$.instructions",) and edit.magnitude < 1.0  # diffed against the student's own state
    assert cap.ledger.revision(edit.after_id).state["instructions"] == "Answer in French."
    assert cap.runtime.tracker("qa", "respond").revision_id == edit.after_id  # the last recorded revision

    _serve(optimized, 3)
    assert len(cap.changes(agent="qa")) == len(run_changes) + 1

    optimized.respond.demos = [dspy.Example(question="Capital of Italy?", query="capital of Italy", answer="Rome")]
    _serve(optimized, 2)
    _serve(student, 2)
    (second,) = cap.changes(agent="qa")[len(run_changes) + 1:]
    assert (second.component, second.kind, second.source) == ("respond", "demos", "runtime")
    assert (second.before_id, second.after_id) == (tuned, _revisions(optimized)["respond"])


def test_refresh_and_restore_of_the_old_instance_after_compile(cap: Captured, lm: PromptLM) -> None:
    """refresh() of the unchanged student records nothing; restoring the student to the optimized revision is one
    manual change from the student's revision, and both then serve without changes."""
    student = driftwatch.watch(TwoStep(), agent="qa")
    student(question=QUESTION)
    optimized = _compile("COPRO", student)
    run_changes = cap.changes(agent="qa")
    assert dw_dspy.refresh(student) == []
    assert dw_dspy.refresh(optimized) == []

    restored = dw_dspy.restore(student, {c.component: c.after_id for c in run_changes})

    assert _revisions(student) == _revisions(optimized)
    assert [(c.component, c.source, c.before_id, c.after_id) for c in restored] == [
        (c.component, "manual", c.before_id, c.after_id) for c in run_changes]
    _serve(student, 2)
    _serve(optimized, 2)
    assert len(cap.changes(agent="qa")) == 2 * len(run_changes)


def test_instances_and_their_lineages_are_garbage_collected(cap: Captured, lm: PromptLM) -> None:
    """Watching keeps no instance alive: a swapped-out student (and the optimized copy) can be collected."""
    student = driftwatch.watch(TwoStep(), agent="qa")
    student(question=QUESTION)
    optimized = _compile("BootstrapFewShot", student)
    optimized(question=QUESTION)
    refs = [weakref.ref(student), weakref.ref(optimized)]
    del student, optimized
    gc.collect()  # DSPy 3.3's programs sit in reference cycles: this frees them, and their watches' callbacks
    gc.collect()  # drop the watches, which this frees with their lineages (on 3.4 the first one does it all)
    assert [r() for r in refs] == [None, None]
    assert not list(cap.runtime.tracker("qa", "respond")._lineages)
