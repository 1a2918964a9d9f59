"""Guard enforcement on DSPy programs (see ``docs/guardrails.md``), per program instance, through the restore
machinery (:mod:`driftwatch.integrations.dspy.restore`):

- a change the guard refused (blocked: the agent is frozen, past its rate, the revision was rolled back from;
  held: it waits for approval) is reverted on the instance that made it — a runtime edit, or an optimizer's
  result before it is swapped in — to the revision that instance had;
- a revision every process must serve (a rollback's target, an approved change's revision) is put on each
  watched instance of the agent at its next call, when the guard's state for the agent moved.

Both run with driftwatch's hooks suppressed and set the instance's lineage to the revision put back, so
nothing is recorded as a new change: the rollback or approval was recorded where it was decided.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from driftwatch.runtime import Runtime, suppressed

if TYPE_CHECKING:
    from driftwatch.change import Change
    from driftwatch.integrations.dspy._watch import Component, ProgramWatch

__all__ = ["enforce", "sync"]


def _put(rt: Runtime, comp: Component, revision_id: str, state: Any) -> None:
    """Put ``revision_id`` on one predictor of one instance; its lineage continues from it."""
    from driftwatch.integrations.dspy.restore import _apply  # at call time: restore imports the watch module

    if state is None:
        state = rt.ledger_state(revision_id)
    if state is None:
        raise LookupError(f"revision {revision_id[:12]} of {comp.path} is not in the ledger: cannot put it back")
    with suppressed():
        _apply(comp.obj, state)
    comp.revision_id = revision_id
    comp.state = state
    comp.forget_key()


def enforce(pw: ProgramWatch, changes: Iterable[Change]) -> None:
    """Revert this instance's components whose change the guard blocked or held (errors are counted)."""
    by_path = {c.path: c for c in pw.components}
    for change in changes:
        if change.in_effect or change.is_baseline or change.before_id is None:
            continue
        comp = by_path.get(change.component)
        try:
            if comp is None:  # the program's shape (<program>): predictors cannot be added or removed back
                raise LookupError(f"a {change.kind} change of {change.component} cannot be reverted on a live "
                                  "program")
            _put(pw.runtime, comp, change.before_id, change.before_state)
        except Exception as exc:  # noqa: BLE001  # never break the host: counted, the instance serves on as is
            pw.runtime.error("guard", exc)


def sync(pw: ProgramWatch, serial: int) -> None:
    """The agent's guard state moved: put the revisions every process must serve on this instance."""
    rt = pw.runtime
    pins = rt.guard.pins(pw.agent) or {}
    for comp in pw.components:
        pin = pins.get(comp.path)
        if pin is None or not pin.shared or comp.revision_id == pin.revision_id:
            continue
        try:
            _put(rt, comp, pin.revision_id, pin.state)
        except Exception as exc:  # noqa: BLE001  # never break the host: counted
            rt.error("guard", exc)
    pw.forget_keys()  # what the instance holds now is judged again (after an unfreeze, an approval)
    pw.guard_serial = serial
