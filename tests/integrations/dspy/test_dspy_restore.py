"""restore(): putting recorded revisions back onto a program, read from the ledger."""

from __future__ import annotations

import logging
from typing import Any

import dspy
import pytest

import driftwatch
from driftwatch.integrations import dspy as dw_dspy
from driftwatch.revision import fingerprint
from driftwatch.testing import Captured
from tests.helpers.dspy_programs import Pipeline, PromptLM, TwoStep, metric, trainset

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


def _compile(name: str, student: dspy.Module) -> dspy.Module:
    logging.disable(logging.WARNING)
    try:
        if name == "COPRO":
            return dspy.COPRO(metric=metric, breadth=2, depth=1).compile(
                student, trainset=trainset(4), eval_kwargs={"num_threads": 1, "display_progress": False})
        return dspy.BootstrapFewShotWithRandomSearch(
            metric=metric, max_bootstrapped_demos=1, max_labeled_demos=1, num_candidate_programs=2,
            num_threads=1).compile(student, trainset=trainset(4))
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("name", ["COPRO", "BootstrapFewShotWithRandomSearch"])
def test_restore_an_optimizer_candidate(cap: Captured, lm: PromptLM, name: str) -> None:
    """Every candidate's state is in the ledger; restoring one the optimizer did not return puts back all its
    predictors (recorded as manual changes), and the program's revision then equals the candidate's."""
    student = driftwatch.watch(TwoStep(), agent="qa")
    tuned = _compile(name, student)
    (run,) = cap.ledger.runs(agent="qa")
    cands = dw_dspy.candidates(run.id[:8])
    assert len(cands) == run.candidates >= 2
    assert all(c["revision_id"] and c["restorable"] for c in cands)
    for c in cands:  # the program revision and each of its components' revisions are stored
        manifest = cap.ledger.revision(c["revision_id"]).state["components"]
        assert set(manifest) == {"gen_query", "respond", "<program>"}
        assert all(cap.ledger.revision(rid) is not None for rid in manifest.values())

    returned = dw_dspy.program_revision(tuned)
    other = next(c for c in cands if c["revision_id"] != returned)
    before = len(cap.changes())

    restored = dw_dspy.restore(tuned, other["revision_id"][:8])

    assert dw_dspy.program_revision(tuned) == other["revision_id"]
    assert restored and all(c.source == "manual" for c in restored)
    assert [c.id for c in cap.changes()[before:]] == [c.id for c in restored]
    manifest = cap.ledger.revision(other["revision_id"]).state["components"]
    assert _revisions(tuned) == manifest
    assert all(c.after_id == manifest[c.component] for c in restored)
    tuned(question=QUESTION)
    assert len(cap.changes()) == before + len(restored)  # serving the restored program records nothing new

    # back to the returned program: also a candidate id
    dw_dspy.restore(tuned, returned)
    assert dw_dspy.program_revision(tuned) == returned


def test_restore_a_candidate_names_bad_ids(cap: Captured, lm: PromptLM) -> None:
    """An unknown candidate id, a candidate with component=, another program's shape: one clear error each."""
    student = driftwatch.watch(TwoStep(), agent="qa")
    tuned = _compile("COPRO", student)
    (run,) = cap.ledger.runs(agent="qa")
    rid = dw_dspy.candidates(run.id)[0]["revision_id"]
    with pytest.raises(KeyError, match="revision_id='0123456789abcdef'") as err:
        dw_dspy.restore(tuned, "0123456789abcdef")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="without component="):
        dw_dspy.restore(tuned, rid, component="respond")
    with pytest.raises(ValueError, match="predictors at gen_query, respond"):
        dw_dspy.restore(Pipeline(), rid)
    with pytest.raises(KeyError, match="no optimizer run 'ffffffff'"):
        dw_dspy.candidates("ffffffff")


def test_gepa_candidates_are_the_programs_gepa_builds(cap: Captured, lm: PromptLM) -> None:
    """A GEPA candidate (instructions by predictor) is recorded as the program GEPA builds from it: the returned
    program's revision is one of them, and restoring the seed candidate gives the student's state back."""
    from dspy.adapters import JSONAdapter
    from dspy.utils import DummyLM

    def gepa_metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> float:
        return metric(gold, pred)

    student = driftwatch.watch(TwoStep(), agent="qa")
    ts = trainset(4)
    logging.disable(logging.WARNING)
    try:
        tuned = dspy.GEPA(metric=gepa_metric, max_metric_calls=16, num_threads=1, reflection_minibatch_size=2,
                          reflection_lm=DummyLM([{"new_instruction": "Be concise."}] * 50, adapter=JSONAdapter()),
                          ).compile(student, trainset=ts, valset=ts[:2])
    finally:
        logging.disable(logging.NOTSET)
    (run,) = cap.ledger.runs(agent="qa")
    cands = dw_dspy.candidates(run.id)
    assert cands and all(c["restorable"] for c in cands)
    valset = [c["revision_id"] for c in cands if c["stage"] == "valset"]
    assert dw_dspy.program_revision(tuned) in valset
    assert valset[0] == dw_dspy.program_revision(student)  # GEPA's seed candidate is the student

    restored = dw_dspy.restore(tuned, valset[0])

    assert restored and {c.source for c in restored} == {"manual"}
    assert _revisions(tuned) == _revisions(student)


def test_cli_show_lists_a_runs_candidates_and_its_changes(lm: PromptLM, tmp_path: Any, capsys: Any) -> None:
    """`driftwatch show RUN_ID` on a real COPRO run: each candidate with score and revision, restorable; the
    run's changes; the restore hint."""
    from driftwatch.cli import main
    from driftwatch.testing import capture

    path = str(tmp_path / "dw.db")
    with capture(ledger=path) as cap:
        student = driftwatch.watch(TwoStep(), agent="qa")
        _compile("COPRO", student)
        (run,) = cap.ledger.runs(agent="qa")
        cands = cap.ledger.candidates(run.id)
        run_changes = [c for c in cap.ledger.changes(agent="qa") if c.run_id == run.id]
    assert main(["show", run.id[:10], "--ledger", path]) == 0
    out = capsys.readouterr().out
    assert f"optimizer run  {run.id}" in out and "optimizer      COPRO" in out
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert [(int(r[0]), r[2], r[3]) for r in rows] == [(c["index"], c["revision_id"][:16], "yes") for c in cands]
    assert all(f"change {c.id[:12]}" in out for c in run_changes) and run_changes
    assert "driftwatch.integrations.dspy.restore(program" in out
