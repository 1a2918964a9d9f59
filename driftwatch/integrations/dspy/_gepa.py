"""GEPA: its candidates come from GEPA's own callbacks (``gepa_kwargs={"callbacks": [...]}``), not from
``dspy.Evaluate``; a candidate (``{predictor name: instructions}``) is recorded as the program GEPA builds
from it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from driftwatch.integrations._common import jsonable
from driftwatch.integrations.dspy._program import components, program_state, snapshot_of
from driftwatch.integrations.dspy._state import is_flex, signature_fields, signature_of, vars_of
from driftwatch.revision import fingerprint

if TYPE_CHECKING:
    from collections.abc import Callable

    from driftwatch.integrations.dspy._optimizer import Run

__all__ = ["GepaCallback", "gepa_callbacks", "gepa_snapshot"]


def gepa_snapshot(run: Run, candidate: Mapping[str, Any]) -> str | None:
    """A GEPA candidate's revision id: the program GEPA builds from it (the student with those
    instructions), written to the ledger like any trial program. A candidate naming anything else is
    recorded by the fingerprint of its own text (not restorable)."""
    student = run.gepa_student
    comps = dict(components(student)) if student is not None else {}
    if not candidate or any(not isinstance(text, str) or name not in comps or is_flex(comps[name])
                            for name, text in candidate.items()):
        return fingerprint(jsonable(candidate)) if candidate else None

    def build() -> tuple[str, dict[str, Any]]:
        states = program_state(student)
        for name, text in candidate.items():
            sig = signature_of(comps[name], vars_of(comps[name])).with_instructions(text)
            states[name] = {**states[name], "instructions": sig.instructions, "fields": signature_fields(sig)}
        return snapshot_of(states)

    return run.store(build)


class GepaCallback:
    """GEPA's own callbacks: its candidates and their scores.

    Accepted candidates are recorded with their validation-set score; rejected proposals with no
    score (their minibatch scores are attributes: a minibatch is too small to compete for best score).
    """

    def __init__(self, run: Run) -> None:
        self.run = run

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001  # never break GEPA: counted
            self.run.rt.error("dspy", exc)

    def on_valset_evaluated(self, event: Mapping[str, Any]) -> None:
        self._guard(lambda: self.run.scope.candidate(
            event.get("average_score"), gepa_snapshot(self.run, dict(event.get("candidate") or {})),
            stage="valset", gepa_index=jsonable(event.get("candidate_idx"))))

    def on_proposal_start(self, event: Mapping[str, Any]) -> None:
        self._guard(lambda: setattr(self.run, "gepa_parent", dict(event.get("parent_candidate") or {})))

    def on_proposal_end(self, event: Mapping[str, Any]) -> None:
        self._guard(lambda: setattr(self.run, "gepa_proposal", {
            **(self.run.gepa_parent or {}), **dict(event.get("new_instructions") or {})}))

    def on_candidate_rejected(self, event: Mapping[str, Any]) -> None:
        def record() -> None:
            proposal, self.run.gepa_proposal = self.run.gepa_proposal, None
            self.run.scope.candidate(None, gepa_snapshot(self.run, proposal) if proposal else None,
                                     stage="minibatch", accepted=False,
                                     minibatch_score=jsonable(event.get("new_score")),
                                     parent_minibatch_score=jsonable(event.get("old_score")))

        self._guard(record)


_UNSET: Any = object()


@contextmanager
def gepa_callbacks(optimizer: Any, student: Any, run: Run) -> Iterator[None]:
    """While a GEPA optimizer compiles ``student``: a :class:`GepaCallback` added to its ``gepa_kwargs``
    (put back afterwards). Other optimizers are left alone."""
    saved = _UNSET
    try:
        gk = getattr(optimizer, "gepa_kwargs", None)
        if isinstance(gk, dict):
            run.gepa = True
            run.gepa_student = student
            saved = gk
            optimizer.gepa_kwargs = {**gk, "callbacks": [*(gk.get("callbacks") or []), GepaCallback(run)]}
    except Exception as exc:  # noqa: BLE001  # GEPA's candidates are then not recorded
        run.rt.error("dspy", exc)
    try:
        yield
    finally:
        if saved is not _UNSET:
            try:
                optimizer.gepa_kwargs = saved
            except Exception as exc:  # noqa: BLE001  # counted
                run.rt.error("dspy", exc)
