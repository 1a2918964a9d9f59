"""Putting recorded revisions back on a DSPy program, and listing what an optimizer run tried.

>>> from driftwatch.integrations.dspy import candidates, restore
>>> restore(program, "3f2a9c…")                  # a predictor's recorded revision (source ``manual``)
>>> [c["revision_id"] for c in candidates(run_id)] # what an optimizer run evaluated
>>> restore(program, candidates(run_id)[2]["revision_id"])   # one of its candidates, every predictor
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dspy
from dspy.primitives.module import Module

from driftwatch.change import Change
from driftwatch.integrations.dspy._program import PROGRAM_COMPONENT, components, manifest_of, shape_state
from driftwatch.integrations.dspy._state import is_flex, lm_state, signature_fields, signature_of, vars_of
from driftwatch.integrations.dspy._watch import agent_of, derived_agent, existing_watch, watch_for
from driftwatch.revision import fingerprint
from driftwatch.runtime import Runtime, get_runtime, suppressed

__all__ = ["candidates", "restore"]


def _find_component(rt: Runtime, agent: str | None, revision_id: str) -> tuple[str, str]:
    led = rt.ledger
    matches = {(c.agent, c.component) for c in led.changes(agent=agent, baselines=True) if c.after_id == revision_id}
    if not matches:
        where = f" of agent {agent!r}" if agent else ""
        raise KeyError(f"restore(revision_id={revision_id!r}): no component{where} was ever at that revision "
                       f"in {led.location}")
    if len(matches) > 1:
        names = ", ".join(sorted(f"{a}/{c}" for a, c in matches))
        raise ValueError(f"restore(revision_id={revision_id!r}): several components had that revision ({names}): "
                         "pass component=")
    return next(iter(matches))


def _program_plan(led: Any, program_id: str, manifest: Mapping[str, str],
                  found: list[tuple[str, Any]]) -> list[tuple[str, Any, Any]]:
    """(component, predictor, state) for each predictor of a program revision; the program must have the
    same shape (the same kinds of predictor at the same paths)."""
    shape_id = manifest.get(PROGRAM_COMPONENT)
    if shape_id is not None and shape_id != fingerprint(shape_state(found)):
        shape = led.revision(shape_id)
        theirs = sorted((shape.state.get("predictors") or {}) if shape is not None else {})
        raise ValueError(f"restore(revision_id={program_id!r}): that program has predictors at "
                         f"{', '.join(theirs) or '(unknown)'}; this one at {', '.join(p for p, _ in found) or 'none'}: "
                         "restore its predictors one by one with component=")
    targets = dict(found)
    plan = []
    for comp, rid in sorted(manifest.items()):
        if comp == PROGRAM_COMPONENT:
            continue
        rev = led.revision(rid)
        if rev is None:
            raise KeyError(f"restore(revision_id={program_id!r}): revision {rid!r} of its component "
                           f"{comp!r} is missing from {led.location}")
        obj = targets.get(comp)
        if obj is None:  # pragma: no cover - the shape check above rules this out
            raise KeyError(f"restore(revision_id={program_id!r}): the program has no predictor at {comp!r}")
        plan.append((comp, obj, rev.state))
    return plan


def _signature_for(current: Any, state: Mapping[str, Any]) -> Any:
    fields = state.get("fields") or []
    current_fields = signature_fields(current)
    same_shape = [(f["name"], f["io"], f["type"]) for f in fields] == \
        [(f["name"], f["io"], f["type"]) for f in current_fields]
    if same_shape:
        sig = current.with_instructions(state.get("instructions", ""))
    else:
        inputs = ", ".join(f"{f['name']}: {f['type']}" for f in fields if f["io"] == "input")
        outputs = ", ".join(f"{f['name']}: {f['type']}" for f in fields if f["io"] == "output")
        try:
            sig = dspy.Signature(f"{inputs} -> {outputs}", state.get("instructions", ""))
        except Exception as exc:  # noqa: BLE001  # DSPy's parser raises several types: one clear error
            raise ValueError(f"restore(): cannot rebuild the signature {inputs} -> {outputs}: {exc}") from None
    for f in fields:
        info = sig.fields[f["name"]]
        extra = info.json_schema_extra or {}
        updates = {}
        if f.get("prefix") is not None and extra.get("prefix") != f["prefix"]:
            updates["prefix"] = f["prefix"]
        if f.get("desc") is not None and extra.get("desc") != f["desc"]:
            updates["desc"] = f["desc"]
        if updates:
            sig = sig.with_updated_fields(f["name"], **updates)
    return sig


def _lm_for(current: Any, state: Mapping[str, Any] | None) -> Any:
    if state is None:
        return None
    if lm_state(current) == state:
        return current
    if state.get("class") == "LM" and state.get("model"):
        return dspy.LM(state["model"], **dict(state.get("kwargs") or {}))
    raise ValueError(f"restore(): the recorded LM ({state.get('class')} {state.get('model')!r}) differs from the "
                     "program's and cannot be rebuilt: set it on the predictor yourself")


def _apply(obj: Any, state: Mapping[str, Any]) -> None:
    if is_flex(obj):
        d = vars_of(obj)
        lm = _lm_for(d.get("lm"), state.get("lm"))
        src = state.get("module_src")
        if src is not None and src != d.get("_module_src"):
            obj._bind_code(src)  # Flex's own rebinding (what load_state does)
        obj.lm = lm
        return
    d = vars_of(obj)
    sig = _signature_for(signature_of(obj, d), state)
    lm = _lm_for(d.get("lm"), state.get("lm"))
    obj.signature = sig
    obj.demos = [dspy.Example(**demo) if isinstance(demo, Mapping) else demo for demo in state.get("demos") or []]
    obj.config = dict(state.get("config") or {})
    obj.lm = lm
    if "criteria" in state or d.get("fields"):
        obj.fields = dict(state.get("criteria") or {})


def restore(program: Any, revision_id: str | Mapping[str, str], *, component: str | None = None,
            agent: str | None = None) -> list[Change]:
    """Put recorded revision(s) back onto ``program``; returns the changes recorded (source ``manual``).

    ``revision_id`` is one component's revision id (or a unique prefix of 6+ characters; the
    component is found in the ledger, or named with ``component=``), or a mapping
    ``{component: revision_id}`` to restore several at once, or a whole program's revision id (an
    optimizer candidate's, see :func:`candidates`): every predictor it covers is put back, and the
    program's :func:`program_revision` then equals it. The state is read from the ledger.
    ``agent`` defaults to the name the program is watched as. Edits made to the program since its
    last call are recorded first, as its own ``runtime`` changes.
    """
    if not isinstance(program, Module):
        raise TypeError(f"restore(program=...): expected a dspy.Module, got {type(program).__name__}")
    rt = get_runtime()
    agent = agent or agent_of(program)
    if isinstance(revision_id, Mapping):
        wanted = dict(revision_id)
    elif isinstance(revision_id, str) and revision_id:
        wanted = {component or "": revision_id}
    else:
        raise TypeError(f"restore(revision_id={revision_id!r}): expected a revision id or {{component: revision_id}}")
    led = rt.ledger
    plan: list[tuple[str, Any, Any]] = []
    found = components(program)
    targets = dict(found)
    for comp, rid in wanted.items():
        rev = led.revision(rid) if isinstance(rid, str) else None
        if rev is None:
            raise KeyError(f"restore(revision_id={rid!r}): no such revision in {led.location}")
        manifest = manifest_of(rev.state)
        if manifest is not None:  # a whole program's revision (an optimizer candidate): every predictor
            if comp:
                raise ValueError(f"restore(revision_id={rid!r}): a whole program's revision: pass it without "
                                 f"component= (got {comp!r})")
            plan.extend(_program_plan(led, rev.id, manifest, found))
            continue
        if not comp:
            found_agent, comp = _find_component(rt, agent, rev.id)
            agent = agent or found_agent
        if comp == PROGRAM_COMPONENT:
            raise ValueError(f"restore(component={comp!r}): a program's shape cannot be restored, only its "
                             "predictors")
        obj = targets.get(comp)
        if obj is None:
            raise KeyError(f"restore(component={comp!r}): the program has no predictor at that path "
                           f"(it has: {', '.join(targets) or 'none'})")
        plan.append((comp, obj, rev.state))
    for _comp, obj, state in plan:  # validate everything before touching anything
        if is_flex(obj):
            _lm_for(vars_of(obj).get("lm"), state.get("lm"))
        else:
            _signature_for(signature_of(obj, vars_of(obj)), state)
            _lm_for(vars_of(obj).get("lm"), state.get("lm"))
    agent = agent or derived_agent(program)
    live = rt.enabled
    pw = existing_watch(program, agent, rt) if live else None
    if pw is not None:
        pw.check(program)  # edits made since its last call are its own (runtime) changes, not the restore's
    with suppressed():
        for _comp, obj, state in plan:
            _apply(obj, state)
    if not live:
        return []
    if pw is None:
        pw = watch_for(program, agent, rt)
    restored = {comp for comp, _obj, _state in plan}
    return [c for c in pw.check(program, source="manual") if not c.is_baseline and c.component in restored]


def candidates(run_id: str) -> list[dict[str, Any]]:
    """The candidates an optimizer run evaluated, in order: ``index``, ``score`` (0–1 or ``None``),
    ``revision_id`` (the trial program's :func:`program_revision`, or ``None``), ``restorable`` (its
    state is in the ledger: ``restore(program, c["revision_id"])`` puts it back) and the recorded
    attributes (``stage`` …). ``run_id`` is a run's id or a unique prefix (see ``driftwatch history``).
    """
    led = get_runtime().ledger
    if not isinstance(run_id, str):
        raise KeyError(f"candidates(run_id={run_id!r}): give a run id or a unique prefix of 4+ characters")
    try:
        run = led.run(run_id)
    except KeyError as exc:
        raise KeyError(f"candidates(run_id={run_id!r}): {exc.args[0]}") from None
    out = []
    for cand in led.candidates(run.id):
        rid = cand.get("revision_id")
        rev = led.revision(rid) if rid else None
        out.append({**cand, "restorable": rev is not None and manifest_of(rev.state) is not None})
    return out

