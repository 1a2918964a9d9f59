"""restore(): putting recorded revisions back onto a program, read from the ledger."""

from __future__ import annotations

import logging
from typing import Any

import dspy
import pytest
from dspy_programs import Pipeline, PromptLM, TwoStep, metric, trainset

import driftwatch
from driftwatch.integrations import dspy as dw_dspy
from driftwatch.revision import fingerprint
from driftwatch.testing import Captured

QUESTION = "What is the capital of France?"


def _revisions(program: Any) -> dict[str, str]:
    return {c: fingerprint(s) for c, s in dw_dspy.program_state(program).items()}


def test_restore_round_trips_a_runtime_edit(cap: Captured, lm: PromptLM) -> None:
    """After restoring the revision before an edit, the program's fingerprint equals the recorded revision."""
    program = driftwatch.watch(Pipeline(), agent="qa")
    program(question=QUESTION)
    sig = program.gen_query.signature.with_instructions("Be concise.").with_updated_fields("query", prefix="Q:")
    program.gen_query.signature = sig
    program.gen_query.demos = [dspy.Example(question="Capital of Italy?", query="capital of Italy")]
    program.gen_query.config["temperature"] = 0.4
    program(question=QUESTION)
    (edit,) = cap.changes()

    (restored,) = dw_dspy.restore(program, edit.before_id)

    assert _revisions(program)["gen_query"] == edit.before_id
    assert (restored.component, restored.source, restored.after_id) == ("gen_query", "manual", edit.before_id)
    assert program.gen_query.demos == [] and program.gen_query.config == {}
    program(question=QUESTION)
    assert len(cap.changes()) == 2  # the edit and the restore: the next call finds nothing new


def test_restore_a_whole_optimizer_result(cap: Captured, lm: PromptLM) -> None:
    """Undo an optimizer run: restore each changed predictor to its revision before the run."""
    logging.disable(logging.WARNING)
    try:
        student = driftwatch.watch(TwoStep(), agent="qa")
        tuned = dspy.COPRO(metric=metric, breadth=2, depth=1).compile(
            student, trainset=trainset(4), eval_kwargs={"num_threads": 1, "display_progress": False})
    finally:
        logging.disable(logging.NOTSET)
    changes = cap.changes()
    assert changes and all(c.source == "COPRO" for c in changes)
    assert tuned(question=QUESTION).answer == "Paris"

    dw_dspy.restore(tuned, {c.component: c.before_id for c in changes})

    assert _revisions(tuned) == _revisions(student)
    assert tuned(question=QUESTION).answer == "Lyon"
    assert [c.source for c in cap.changes()] == ["COPRO"] * len(changes) + ["manual"] * len(changes)


def test_restore_rebuilds_a_replaced_signature(cap: Captured, lm: PromptLM) -> None:
    """A signature replaced with other fields and types is rebuilt from the recorded revision."""
    program = driftwatch.watch(TwoStep(), agent="qa")
    original = _revisions(program)["respond"]
    program.respond.signature = dspy.Signature("question, query -> answer: int, confidence: float", "Count.")
    program.respond.lm = PromptLM()
    with pytest.raises(Exception):  # noqa: B017  # the test LM answers "Lyon": not an int
        program(question=QUESTION)
    dw_dspy.restore(program, original, component="respond")
    assert _revisions(program)["respond"] == original
    assert program(question=QUESTION).answer == "Lyon"


def test_restore_names_bad_arguments(cap: Captured, lm: PromptLM) -> None:
    """Unknown revision, ambiguous or missing component, a program's shape, a non-program: one clear error each."""
    program = driftwatch.watch(TwoStep(), agent="qa")
    heads = _revisions(program)
    with pytest.raises(KeyError, match="revision_id='ffffffffffff'"):
        dw_dspy.restore(program, "ffffffffffff")
    with pytest.raises(ValueError, match="shape"):
        dw_dspy.restore(program, heads["<program>"])
    with pytest.raises(KeyError, match="component='nope'"):
        dw_dspy.restore(program, heads["respond"], component="nope")
    with pytest.raises(TypeError, match="program"):
        dw_dspy.restore("not a program", heads["respond"])
    twin = driftwatch.watch(TwoStep(), agent="twin")  # same states under another agent: ambiguous without agent
    assert _revisions(twin) == heads
    with pytest.raises(ValueError, match="component="):
        dw_dspy.restore(TwoStep(), heads["respond"])
    assert dw_dspy.restore(program, heads["respond"]) == []  # already there: nothing to record
