"""DSPy integration: every optimizer run and every runtime prompt change of a watched program.

>>> import driftwatch
>>> program = driftwatch.watch(RAG(), agent="qa")          # an instance: the same object, now watched
>>> @driftwatch.watch(agent="qa")                           # a class: all its instances are watched
... class RAG(dspy.Module): ...
>>> from driftwatch.integrations import dspy as dw_dspy
>>> dw_dspy.instrument()                                    # or: every program in the process
>>> dw_dspy.restore(program, "3f2a9c…")                     # put a recorded revision back
>>> dw_dspy.candidates(run_id)                               # what an optimizer run tried, with revision ids
>>> dw_dspy.restore(optimized, "9be1d0…")                    # put one of its candidates back

What is recorded, and how it is hooked (DSPy is imported only in this package):

- **Components.** Each predictor of a program is a component named by its path in the program, as
  DSPy names it (``gen_query``, ``answer.predict``; a bare ``Predict`` watched alone by its class,
  ``Predict``); each ``dspy.Flex`` is one too (its code). Sub-programs that an optimizer marked compiled are
  included. The component named by the program's class (``SimplifiedBaleen``) holds the program's shape
  (which predictor sits at which path). (Earlier driftwatch versions named these ``self`` and ``<program>``: a ledger
  written then keeps them, and the new names start with a baseline.) A predictor's state
  is its instructions, its fields (name, input/output, type, prefix, description), its demos, its
  ``config`` and its ``lm``; the change kind follows the part that moved (``instructions``,
  ``fields``, ``demos``, ``lm_config``, ``code``, ``topology``).
- **Calls.** ``dspy.Module.__call__`` / ``acall`` are patched once, at class level. The outermost call
  of a watched program is recorded (status, duration, output size, tokens when the LM reports
  usage, the tools it ran — ``dspy.ReAct``'s steps, ``ToolCall.execute`` — and an ``invoke_agent`` span
  tagged with the revision of the instance that served it and its LM). Before it runs, a cheap check
  compares object identities (the
  signature class and its ``__doc__``, the demos list and its items, ``config`` values, the LM) with
  the last call; only when they moved is the state read in full and fingerprinted. An edit made
  while the program serves is therefore recorded once, source ``runtime``, on the next call.
  No DSPy callback is registered on the hot path (one costs ~1.5x per call).
- **Several instances.** Each program instance is compared with its *own* last state (per-instance
  cheap keys and revisions, held weakly: programs can be collected). An instance that serves
  unchanged records nothing, whatever another instance of the same agent did meanwhile: the student
  that keeps serving while its optimized copy is built and until the swap, the old program of a
  blue/green deployment, either half of an A/B. An edit of one instance reads "its revision → its
  new revision". The component's current revision (``driftwatch_revision_info``) is the last one
  recorded by any instance; a call span's agent version is the revision of the instance that served
  it. A new instance is compared with the current revision on its first call, unless another live
  instance already has its state (a deep copy, a reload): then it is no change.
- **Optimizer runs.** ``compile`` of every ``Teleprompter`` subclass is wrapped, including classes
  defined after :func:`instrument` (through ``Teleprompter.__init_subclass__``). The run is recorded
  (``driftwatch.optimizer.compile`` span, run and candidate metrics, ledger); each ``dspy.Evaluate``
  call inside the compile is a candidate with its score (a percentage in DSPy, recorded as a 0–1
  fraction); GEPA's candidates come from GEPA's own callbacks (valset evaluations and rejected
  proposals); optimizers that evaluate without ``Evaluate`` (SIMBA) have their scored
  ``candidate_programs`` recorded at the end. A candidate's revision id is its trial program's
  :func:`program_revision` (a GEPA candidate's: the program GEPA builds from it); the program's state
  (one revision per component, content-addressed, and the program revision naming them) is written to
  the ledger, so :func:`restore` can put any candidate back (~0.3 ms per candidate on an SQLite file,
  on top of the full fingerprint, which was already taken). Calls and edits inside a compile are
  trials, never production changes (the marker lives in ``dspy.context``, so DSPy's worker threads
  see it). The student is checked in full when ``compile`` starts (edits not yet recorded are its
  own ``runtime`` changes). The returned program is compared with the student: one change per predictor that
  differs (student's revision → result's), source = the optimizer's class name, linked to the run,
  recorded when ``compile`` returns; the returned program is watched under the same agent, its
  lineage continuing the student's, so its first call records nothing new and the student may
  serve on until the caller swaps the new program in.
- A compile started from inside a program's ``forward`` (``KNNFewShot``'s programs do that on every
  call) is part of that call, not an optimizer run.
- **Restore.** :func:`restore` reads a recorded revision from the ledger and puts it back on the
  predictor (instructions, fields, demos, config, LM), recorded as a change with source ``manual``. Given
  an optimizer candidate's (a whole program's) revision id, it puts back every predictor of that
  candidate (the program must have the same predictor paths); :func:`candidates` lists a run's. Both
  live in :mod:`driftwatch.integrations.dspy.restore` and are re-exported here.

Cost: driftwatch's own work is about 20 µs per program call, plus the core's call recording
(``benchmarks/bench_dspy.py``). Limits: in-place edits of a field's ``json_schema_extra``, of one
demo's contents, or of a mutable value inside ``config`` keep every identity the cheap check looks
at; they are seen when anything else about that predictor moves, or after :func:`refresh`. Modules
held in a list or dict of more than 64 items are not looked into. A program deep-copied before every
call is fingerprinted in full on every call (~100 µs for three predictors with a few demos each).
While two instances with different states serve one agent, drift is measured over both instances' calls
together (each call span carries its own instance's version).

The package, one module per concern: ``_state`` (a predictor's or Flex's state, cheap keys, change
kinds), ``_program`` (a program's shape and whole-program snapshot), ``_watch`` (per-instance lineages
and the per-call check), ``_calls`` (the patched ``Module.__call__``/``acall``), ``_optimizer`` (wrapped
``compile`` and ``Evaluate``), ``_gepa`` (GEPA's callbacks), ``_patching`` (the patch registry),
``_tools`` (tool calls), ``restore`` (public: :func:`restore`, :func:`candidates`).
"""

from __future__ import annotations

from typing import Any

from driftwatch.integrations import MINIMUM_VERSIONS, DidNotEnable
from driftwatch.integrations._common import check_versions

try:
    import dspy
except ImportError as _missing:  # the import is the check that DSPy is installed
    raise DidNotEnable("driftwatch's DSPy integration needs dspy: pip install 'driftwatch-agents[dspy]'") \
        from _missing

check_versions("DSPy", "dspy", {"dspy": getattr(dspy, "__version__", None)})

# the rest imports DSPy's own modules: only once the checks above have passed
from dspy.primitives.module import Module  # noqa: E402  # after the check that DSPy is installed
from dspy.teleprompt.teleprompt import Teleprompter  # noqa: E402  # likewise

from driftwatch.integrations.dspy._patching import PATCHES, install  # noqa: E402  # likewise
from driftwatch.integrations.dspy._program import (  # noqa: E402  # likewise
    MARK,
    PROGRAM_COMPONENT,
    program_revision,
    program_state,
)
from driftwatch.integrations.dspy._state import vars_of  # noqa: E402  # likewise
from driftwatch.integrations.dspy._watch import Cover, observe, refresh  # noqa: E402  # likewise
from driftwatch.integrations.dspy.restore import candidates, restore  # noqa: E402  # likewise
from driftwatch.runtime import get_runtime, is_suppressed  # noqa: E402  # likewise

__all__ = [
    "MINIMUM_VERSION",
    "PROGRAM_COMPONENT",
    "candidates",
    "instrument",
    "is_instrumented",
    "program_revision",
    "program_state",
    "refresh",
    "restore",
    "uninstrument",
    "watch_object",
]

#: the oldest DSPy this integration supports (equal to the ``dspy`` extra in setup.cfg)
MINIMUM_VERSION = MINIMUM_VERSIONS["dspy"]


def instrument() -> None:
    """Watch every DSPy program in the process (agent = the outermost program's class name, unless
    it was watched under another name) and every optimizer run. Idempotent."""
    install()
    Cover.cover(every=True)


def uninstrument() -> None:
    """Undo every patch (also those :func:`driftwatch.watch` put in place). Idempotent.

    A patch that another instrumentor has since wrapped is left in place, inert (it only passes
    calls through), so that the other tool keeps working. Programs keep their mark: watching
    anything again (or :func:`instrument`) re-arms them.
    """
    with PATCHES.lock:
        Cover.cover(every=False)
        PATCHES.undo()


def is_instrumented() -> bool:
    """Whether the patches are in place (``instrument()`` or any ``watch`` of a DSPy object)."""
    return bool(PATCHES)


def watch_object(obj: Any, *, agent: str, **options: Any) -> Any:
    """What :func:`driftwatch.watch` does with a DSPy object.

    - a ``dspy.Module`` instance: marked as ``agent`` and returned (the same object); its current
      state is recorded at once (a baseline, or a change if the ledger knew it otherwise);
    - a ``dspy.Module`` subclass: every instance is watched; the class is returned;
    - an optimizer (``Teleprompter``): its runs are recorded under ``agent`` even for a student
      that is not watched; the optimizer is returned.
    """
    if options:
        raise TypeError(f"driftwatch.watch(): option(s) {', '.join(sorted(options))} do not apply to DSPy objects")
    if not isinstance(agent, str) or not agent.strip():
        raise ValueError(f"driftwatch.watch(agent={agent!r}): expected a non-empty string")
    if isinstance(obj, type):
        if issubclass(obj, Module | Teleprompter):
            install()
            setattr(obj, MARK, agent)
            if issubclass(obj, Module):
                Cover.cover(a_class=True)
            return obj
        raise TypeError(f"driftwatch.watch cannot watch class {obj.__name__}: only dspy.Module subclasses "
                        "(programs) and optimizers")
    if isinstance(obj, Teleprompter):
        install()
        obj.__dict__[MARK] = agent
        return obj
    if not isinstance(obj, Module):
        raise TypeError(f"driftwatch.watch cannot watch a {type(obj).__module__}.{type(obj).__qualname__}: pass a "
                        "dspy.Module (a program), a dspy.Module subclass, or an optimizer")
    install()
    vars_of(obj)[MARK] = agent
    rt = get_runtime()
    if rt.enabled and not is_suppressed():
        observe(obj, agent, rt)
    return obj

