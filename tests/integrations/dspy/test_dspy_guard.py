"""Guardrails on DSPy programs: a frozen program's optimizer results and runtime edits are reverted per instance
(through the restore machinery), a rollback puts the revisions before the alarm's anchor back on every instance,
a held optimizer change serves nothing until approved. Real COPRO on the prompt-reading DummyLM."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dspy
import pytest

import driftwatch
from driftwatch.alarm import Alarm
from driftwatch.cli import main as cli
from driftwatch.integrations import dspy as dw_dspy
from driftwatch.testing import Captured, capture
from tests.helpers.dspy_programs import PromptLM, TwoStep, metric, trainset

AGENT = "qa"
QUESTION = "What is the capital of France?"


@pytest.fixture
def guarded(tmp_path: Path, lm: PromptLM) -> Iterator[Captured]:
    """A runtime on an SQLite file (the CLI writes to it); the guard polls when a test says so."""
    logging.disable(logging.WARNING)
    with capture(ledger=str(tmp_path / "ledger.db"), drift=False, drift_poll_s=3600) as cap:
        yield cap
    logging.disable(logging.NOTSET)


def _cli(cap: Captured, *argv: str) -> None:
    assert cli([*argv, "--ledger", cap.runtime.ledger.location]) == 0


def _tune(student: Any) -> Any:
    return dspy.COPRO(metric=metric, breadth=2, depth=1).compile(
        student, trainset=trainset(4), eval_kwargs={"num_threads": 1, "display_progress": False})


def test_a_frozen_programs_optimizer_result_and_edits_are_reverted(guarded: Captured) -> None:
    """Frozen: COPRO's result keeps the student's revisions (its changes are recorded as blocked); a runtime edit
    of the serving program is undone at its next call. Positive control: unfrozen, the same compile takes effect."""
    cap = guarded
    student = driftwatch.watch(TwoStep(), agent=AGENT)
    assert student(question=QUESTION).answer == "Lyon"
    _cli(cap, "freeze", AGENT)
    cap.runtime.guard.poll()

    tuned = _tune(student)
    assert dw_dspy.program_revision(tuned) == dw_dspy.program_revision(student)
    assert tuned(question=QUESTION).answer == "Lyon"
    student.gen_query.signature = student.gen_query.signature.with_instructions("Be concise.")
    assert student(question=QUESTION).answer == "Lyon"  # reverted before it ran
    assert "concise" not in student.gen_query.signature.instructions
    blocked = cap.changes()
    assert blocked and {c.status for c in blocked} == {"blocked"}
    assert {c.source for c in blocked} == {"COPRO", "runtime"}
    assert len(cap.ledger.guard_actions(agent=AGENT)) == 1 + len(blocked)
    student(question=QUESTION)
    assert len(cap.changes()) == len(blocked)  # the reverted program records nothing more

    _cli(cap, "unfreeze", AGENT)
    cap.runtime.guard.poll()
    tuned = _tune(student)
    assert tuned(question=QUESTION).answer == "Paris"
    assert [c.status for c in cap.changes(since=blocked[-1].timestamp + 1e-6)] == ["applied"] * 2


def test_a_rollback_restores_every_instance(guarded: Captured) -> None:
    """`driftwatch rollback` from an alarm anchored at COPRO's change: each watched instance serving the tuned
    revisions gets the student's back at its next call, recording no change of its own."""
    cap = guarded
    student = driftwatch.watch(TwoStep(), agent=AGENT)
    student(question=QUESTION)
    tuned = _tune(student)
    assert tuned(question=QUESTION).answer == "Paris"
    tuned_copy = tuned.deepcopy()
    tuned_copy(question=QUESTION)  # a second live instance at the tuned revisions
    copro = cap.changes()
    cap.runtime.ledger.record_alarm(Alarm("a1", AGENT, "score", 1.4, copro[-1].timestamp + 1, copro[0].id))
    _cli(cap, "rollback", AGENT)
    cap.runtime.guard.poll()

    assert tuned(question=QUESTION).answer == "Lyon"
    assert tuned_copy(question=QUESTION).answer == "Lyon"
    assert dw_dspy.program_revision(tuned) == dw_dspy.program_revision(student)
    assert dw_dspy.program_revision(tuned_copy) == dw_dspy.program_revision(student)
    rollback = [c for c in cap.changes() if c.source == "guard"]
    assert sorted((c.before_id, c.after_id) for c in rollback) == sorted((c.after_id, c.before_id) for c in copro)
    assert len(cap.changes()) == len(copro) + len(rollback)  # no change recorded by the instances themselves
    assert cap.value("driftwatch_guard_actions_total", agent=AGENT, action="rolled_back") == 1


def test_a_held_optimizer_change_takes_effect_when_approved(guarded: Captured) -> None:
    """approve=instructions: COPRO's instruction changes are held (the result serves the student's), and after
    `driftwatch approve` every watched instance serves them, the student too."""
    cap = guarded
    driftwatch.configure_agent(AGENT, approve=["instructions"])
    student = driftwatch.watch(TwoStep(), agent=AGENT)
    student(question=QUESTION)
    tuned = _tune(student)
    held = cap.ledger.changes(status="held")
    assert held and {c.kind for c in held} == {"instructions"}
    assert tuned(question=QUESTION).answer == "Lyon"
    assert cap.value("driftwatch_held_changes", agent=AGENT) == len(held)

    for change in held:
        _cli(cap, "approve", change.id)
    cap.runtime.guard.poll()
    assert tuned(question=QUESTION).answer == "Paris"
    assert student(question=QUESTION).answer == "Paris"
    assert {cap.ledger.change(c.id).status for c in held} == {"approved"}
    assert cap.value("driftwatch_held_changes", agent=AGENT) == 0
    assert cap.ledger.changes(status="held") == []
