"""Tracker lineages: several live copies of one component, each compared with its own last revision."""

from __future__ import annotations

import gc

from driftwatch.revision import fingerprint
from driftwatch.testing import Captured
from driftwatch.tracker import Lineage

OLD = {"instructions": "Answer the question."}
NEW = {"instructions": "Answer the question concisely."}
EDIT = {"instructions": "Answer the question in French."}


def test_copies_serving_unchanged_record_nothing_and_an_edit_reads_from_its_own_revision(cap: Captured) -> None:
    """Old and new copies observed in turn: one change when the new one moved; an edit of the old one is
    old -> edit (not new -> edit); the current revision is the last recorded one."""
    tracker = cap.runtime.tracker("qa", "respond")
    old, new = Lineage(), Lineage()
    tracker.observe(OLD, lineage=old)  # baseline
    new.inherit(old)
    moved = tracker.observe(NEW, source="MIPROv2", lineage=new)
    assert moved is not None and (moved.before_id, moved.after_id) == (fingerprint(OLD), fingerprint(NEW))
    for _ in range(3):
        assert tracker.observe(OLD, lineage=old) is None
        assert tracker.observe(NEW, lineage=new) is None
    edit = tracker.observe(EDIT, lineage=old)
    assert edit is not None and (edit.before_id, edit.after_id) == (fingerprint(OLD), fingerprint(EDIT))
    assert edit.paths == ("$.instructions",) and edit.source == "runtime"
    assert tracker.revision_id == fingerprint(EDIT)
    assert tracker.observe(NEW, lineage=new) is None
    assert [c.after_id for c in cap.changes()] == [fingerprint(NEW), fingerprint(EDIT)]


def test_a_new_copy_is_compared_with_the_current_revision_unless_a_live_copy_holds_its_state(cap: Captured) -> None:
    tracker = cap.runtime.tracker("qa", "respond")
    a, b = Lineage(), Lineage()
    tracker.observe(OLD, lineage=a)
    assert tracker.observe(NEW, lineage=b) is not None  # b went live with another state: the current revision moved
    assert tracker.observe(OLD, lineage=Lineage()) is None  # a copy of a (which still serves)
    del a
    gc.collect()
    back = tracker.observe(OLD, lineage=Lineage())  # nobody serves OLD any more: going back is a change
    assert back is not None and (back.before_id, back.after_id) == (fingerprint(NEW), fingerprint(OLD))


def test_observers_without_a_lineage_keep_comparing_with_the_current_revision(cap: Captured) -> None:
    tracker = cap.runtime.tracker("qa", "respond")
    tracker.observe(OLD)  # baseline
    assert tracker.observe(OLD) is None
    assert tracker.observe(NEW, lineage=Lineage()) is not None
    back = tracker.observe(OLD)  # the single-stream view: OLD after the current NEW is a change
    assert back is not None and back.before_id == fingerprint(NEW)
