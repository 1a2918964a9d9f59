"""Optimizer runs: the wrapped ``compile`` of every ``Teleprompter`` and the patched ``dspy.Evaluate``.

An outermost ``compile`` of a watched student (or by a watched optimizer) is one run of the runtime's
:class:`~driftwatch.runtime.RunScope` (ledger, metrics, audit log, ``driftwatch.optimizer.compile`` span).
Each ``dspy.Evaluate`` inside it is a candidate, whose trial program's state goes to the ledger; the
returned program's changes (student → result) are recorded with the optimizer as their source.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dspy
from dspy.dsp.utils.settings import thread_local_overrides
from dspy.primitives.module import Module

from driftwatch.integrations._common import Patches
from driftwatch.integrations.dspy._gepa import gepa_callbacks
from driftwatch.integrations.dspy._program import MARK, program_snapshot
from driftwatch.integrations.dspy._state import vars_of
from driftwatch.integrations.dspy._watch import Cover, agent_of, derived_agent, watch_for
from driftwatch.runtime import RunScope, Runtime, get_runtime, is_suppressed
from driftwatch.tracker import Lineage

__all__ = ["CTX", "CompileScope", "Run", "compile_scope", "current_run", "make_compile", "make_evaluate"]

#: the ``dspy.context`` key that holds the optimizer run in progress (DSPy's worker threads see it)
CTX = "driftwatch_compile"


class Run:
    """One optimizer run in progress: the runtime's run scope, and what DSPy's hooks keep beside it.

    Held in ``dspy.context`` (under :data:`CTX`) so that DSPy's worker threads see it.
    """

    def __init__(self, scope: RunScope) -> None:
        self.scope = scope
        self.rt: Runtime = scope.runtime
        self.lock = threading.Lock()
        #: GEPA reports its candidates through its own callbacks (``dspy.Evaluate`` calls are not candidates)
        self.gepa = False
        self.gepa_parent: dict[str, Any] | None = None
        self.gepa_proposal: dict[str, Any] | None = None
        #: GEPA's student: its candidates are instructions for the student's predictors
        self.gepa_student: Any = None
        #: revision ids this run already wrote (trial programs share most of their predictors' states)
        self.stored: set[str] = set()

    # the run rides in dspy.context: whatever copies or pickles DSPy's settings gets a harmless stand-in
    def __copy__(self) -> Run:
        return self

    def __deepcopy__(self, memo: Any) -> Run:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (no_run, ())

    def snapshot(self, program: Any) -> str | None:
        """A trial program's revision id; its state (and each component's) is written to the ledger, so
        that ``restore`` can put the candidate back. ``None`` (counted) when it cannot be read."""
        return self.store(lambda: program_snapshot(program))

    def store(self, snapshot: Callable[[], tuple[str, dict[str, Any]]]) -> str | None:
        """Write the revisions of ``snapshot()`` (``(program revision id, {revision id: state})``) this run
        has not written yet; returns the program's revision id."""
        try:
            program_id, revisions = snapshot()
            with self.lock:
                new = {rid: state for rid, state in revisions.items() if rid not in self.stored}
                self.stored.update(new)
            if new:
                self.rt.ledger.record_revisions(new)
            return program_id
        except Exception as exc:  # noqa: BLE001  # the candidate is recorded without its revision
            self.rt.error("dspy", exc)
            return None


def no_run() -> None:
    """What an optimizer run becomes when DSPy's settings are pickled (``dspy.settings.save``)."""
    return None


def current_run() -> Run | None:
    ov = thread_local_overrides.get()
    return ov.get(CTX) if ov else None


def make_evaluate(orig: Callable[..., Any], patches: Patches) -> Callable[..., Any]:
    """``Evaluate.__call__`` recording, inside an optimizer run, the evaluated program as a candidate."""
    gen = patches.generation

    @functools.wraps(orig)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N807  # replaces Evaluate.__call__
        run = current_run() if patches.generation == gen else None
        if run is None or run.gepa:
            return orig(self, *args, **kwargs)
        revision = None
        try:
            program = kwargs.get("program", args[0] if args else None)
            if isinstance(program, Module):
                revision = run.snapshot(program)
        except Exception as exc:  # noqa: BLE001  # the candidate is recorded without its revision
            run.rt.error("dspy", exc)
        result = orig(self, *args, **kwargs)
        score = getattr(result, "score", result if isinstance(result, int | float) else None)
        run.scope.candidate(score / 100.0 if isinstance(score, int | float) else None, revision, stage="evaluate")
        return result

    __call__.__driftwatch_original__ = orig  # type: ignore[attr-defined]  # what it wraps
    return __call__


def _student_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if "student" in kwargs:
        return kwargs["student"]
    return args[0] if args else None


def _compile_agent(optimizer: Any, student: Any) -> str | None:
    if not isinstance(student, Module):
        return None
    agent = agent_of(student)
    if agent is None:
        mark = getattr(optimizer, MARK, None)
        agent = mark if isinstance(mark, str) else None
    if agent is None and Cover.all:
        agent = derived_agent(student)
    return agent


class CompileScope:
    """Everything driftwatch does around one outermost ``compile``; each step guarded."""

    def __init__(self, optimizer: Any, student: Any, agent: str, run: Run, parent: dict[str, Lineage]) -> None:
        self.optimizer = optimizer
        self.student = student
        self.agent = agent
        self.run = run
        self.rt = run.rt
        self.name = run.scope.run.optimizer
        #: the student's lineage as the optimizer receives it: where the returned program's starts
        self.parent = parent
        self.student_watched = agent_of(student) is not None

    @contextmanager
    def inside(self) -> Iterator[None]:
        """While the optimizer runs: the run in ``dspy.context``, and GEPA's callbacks."""
        with gepa_callbacks(self.optimizer, self.student, self.run), dspy.context(**{CTX: self.run}):
            yield

    def failed(self, exc: BaseException) -> None:
        self.run.scope.finish(error=exc)

    def succeeded(self, result: Any) -> None:
        try:
            if isinstance(result, Module):
                if self.student_watched and vars_of(result).get(MARK) != self.agent:
                    vars_of(result)[MARK] = self.agent
                self._record_result(result)
        except Exception as exc:  # noqa: BLE001  # the run is still recorded
            self.rt.error("dspy", exc)
        self.run.scope.finish()

    def _record_result(self, result: Any) -> None:
        """One change per component of the result that differs from the student (student -> result).

        The result gets its own watch, its lineage continuing the student's: when it is swapped in,
        its first call records nothing, and the student serving meanwhile records nothing either.
        """
        record = self.run.scope.run
        if record.candidates == 0:
            self._candidates_from(result)
        if result is self.student:  # tuned in place
            pw = watch_for(result, self.agent, self.rt)
        else:
            pw = watch_for(result, self.agent, self.rt, fresh=True)
            pw.inherit(self.parent)
        pw.forget_keys()
        pw.check(result, source=self.name, run_id=record.id, in_order=True)

    def _candidates_from(self, result: Any) -> None:
        """Optimizers that score without ``dspy.Evaluate`` (SIMBA) attach ``candidate_programs``."""
        cands = vars_of(result).get("candidate_programs")
        if not isinstance(cands, list):
            return
        for i, item in enumerate(cands):
            if not isinstance(item, Mapping):
                continue
            program = item.get("program")
            revision = self.run.snapshot(program) if isinstance(program, Module) else None
            score = item.get("score")
            self.run.scope.candidate(score if isinstance(score, int | float) else None, revision,
                                     stage="candidate_programs", rank=i)


def _student_lineage(student: Any, agent: str, rt: Runtime) -> dict[str, Lineage]:
    """The student checked in full (edits not recorded yet are its own ``runtime`` changes, outside the
    run, so that the run's changes read "student -> result"); its lineage by component."""
    try:
        pw = watch_for(student, agent, rt)
        pw.forget_keys()
        pw.check(student)
        return pw.lineages()
    except Exception as exc:  # noqa: BLE001  # the run is still recorded
        rt.error("dspy", exc)
        return {}


def compile_scope(optimizer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CompileScope | None:
    """The scope of a recorded run, or ``None`` to let the compile run untouched."""
    ov = thread_local_overrides.get()
    if ov and (ov.get(CTX) is not None or ov.get("caller_modules")):
        return None  # nested in another compile, or run by a program's forward (KNNFewShot)
    if is_suppressed():
        return None
    student = _student_of(args, kwargs)
    agent = _compile_agent(optimizer, student)
    if agent is None:
        return None
    rt = get_runtime()
    if not rt.enabled:
        return None
    parent = _student_lineage(student, agent, rt)
    scope = rt.begin_run(agent, type(optimizer).__name__)
    if scope is None:
        return None
    return CompileScope(optimizer, student, agent, Run(scope), parent)


def make_compile(fn: Callable[..., Any], patches: Patches) -> Callable[..., Any]:
    """An optimizer class's ``compile`` (sync or async) recording its outermost runs."""
    gen = patches.generation

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def acompile(self: Any, *args: Any, **kwargs: Any) -> Any:
            if patches.generation != gen:
                return await fn(self, *args, **kwargs)
            try:
                scope = compile_scope(self, args, kwargs)
            except Exception as exc:  # noqa: BLE001  # never break the optimizer
                get_runtime().error("dspy", exc)
                scope = None
            if scope is None:
                return await fn(self, *args, **kwargs)
            try:
                with scope.inside():
                    result = await fn(self, *args, **kwargs)
            except BaseException as exc:
                scope.failed(exc)
                raise
            scope.succeeded(result)
            return result

        acompile.__driftwatch_original__ = fn  # type: ignore[attr-defined]  # what it wraps
        return acompile

    @functools.wraps(fn)
    def compile(self: Any, *args: Any, **kwargs: Any) -> Any:  # replaces Teleprompter.compile
        if patches.generation != gen:
            return fn(self, *args, **kwargs)
        try:
            scope = compile_scope(self, args, kwargs)
        except Exception as exc:  # noqa: BLE001  # never break the optimizer
            get_runtime().error("dspy", exc)
            scope = None
        if scope is None:
            return fn(self, *args, **kwargs)
        try:
            with scope.inside():
                result = fn(self, *args, **kwargs)
        except BaseException as exc:
            scope.failed(exc)
            raise
        scope.succeeded(result)
        return result

    compile.__driftwatch_original__ = fn  # type: ignore[attr-defined]  # what it wraps
    return compile
