"""Revisions recorded under the component names earlier driftwatch versions used (``<program>`` for a program's
shape, ``self`` for a bare predictor) can still be restored (issue 12 item 9 renamed them by class)."""

from __future__ import annotations

from typing import Any

import dspy

import driftwatch
from driftwatch.integrations import dspy as dw_dspy
from driftwatch.integrations.dspy._program import snapshot_of
from driftwatch.testing import Captured
from tests.helpers.dspy_programs import PromptLM, TwoStep


def _legacy_snapshot(cap: Captured, states: dict[str, Any]) -> str:
    """Store a program revision as an earlier version recorded it; its id."""
    program_id, revisions = snapshot_of(states)
    cap.ledger.record_revisions(revisions)
    return program_id


def test_a_bare_predictor_recorded_as_self_is_restored(cap: Captured, lm: PromptLM) -> None:
    predictor = driftwatch.watch(dspy.Predict("question -> answer"), agent="bare")
    assert {c.component for c in cap.changes(agent="bare", baselines=True)} == {"Predict"}  # the new name
    old = dw_dspy.program_state(predictor)["Predict"]
    legacy = _legacy_snapshot(cap, {"self": old, "<program>": {"predictors": {"self": "Predict"}}})
    predictor.signature = predictor.signature.with_instructions("Answer in French.")
    predictor(question="q")
    changes = dw_dspy.restore(predictor, legacy)
    assert predictor.signature.instructions == old["instructions"]
    assert [(c.component, c.source) for c in changes] == [("Predict", "manual")]


def test_a_program_recorded_with_a_legacy_shape_is_restored(cap: Captured, lm: PromptLM) -> None:
    program = driftwatch.watch(TwoStep(), agent="two")
    states = dw_dspy.program_state(program)
    legacy = _legacy_snapshot(cap, {"<program>" if c == "TwoStep" else c: s for c, s in states.items()})
    program.gen_query.signature = program.gen_query.signature.with_instructions("Search harder.")
    program(question="q")
    dw_dspy.restore(program, legacy)
    assert dw_dspy.program_state(program) == states
