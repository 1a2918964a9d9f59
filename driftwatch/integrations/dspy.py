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

What is recorded, and how it is hooked (DSPy is imported only in this module):

- **Components.** Each predictor of a program is a component named by its path in the program, as
  DSPy names it (``gen_query``, ``answer.predict``, ``self`` for a bare ``Predict``); each ``dspy.Flex``
  is one too (its code). Sub-programs that an optimizer marked compiled are included. The component
  ``<program>`` holds the program's shape (which predictor sits at which path). A predictor's state
  is its instructions, its fields (name, input/output, type, prefix, description), its demos, its
  ``config`` and its ``lm``; the change kind follows the part that moved (``instructions``,
  ``fields``, ``demos``, ``lm_config``, ``code``, ``topology``).
- **Calls.** ``dspy.Module.__call__`` / ``acall`` are patched once, at class level. The outermost call
  of a watched program is recorded (status, duration, output size, tokens when the LM reports
  usage, an ``invoke_agent`` span). Before it runs, a cheap check compares object identities (the
  signature class and its ``__doc__``, the demos list and its items, ``config`` values, the LM) with
  the last call; only when they moved is the state read in full and fingerprinted. An edit made
  while the program serves is therefore recorded once, source ``runtime``, on the next call.
  No DSPy callback is registered on the hot path (one costs ~1.5x per call).
- **Several instances.** Each program instance is compared with its *own* last state (per-instance
  cheap keys and revisions, held weakly: programs can be collected). An instance that serves
  unchanged records nothing, whatever another instance of the same agent did meanwhile: the student
  that keeps serving while its optimized copy is built and until the swap, the old program of a
  blue/green deployment, either half of an A/B. An edit of one instance reads "its revision → its
  new revision". The component's current revision (``driftwatch_revision_info``, the agent version
  on call spans) is the last one recorded by any instance. A new instance is compared with the
  current revision on its first call, unless another live instance already has its state (a
  deep copy, a reload): then it is no change.
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
  candidate (the program must have the same predictor paths); :func:`candidates` lists a run's.

Cost: driftwatch's own work is about 20 µs per program call, plus the core's call recording
(``benchmarks/bench_dspy.py``). Limits: in-place edits of a field's ``json_schema_extra``, of one
demo's contents, or of a mutable value inside ``config`` keep every identity the cheap check looks
at; they are seen when anything else about that predictor moves, or after :func:`refresh`. Modules
held in a list or dict of more than 64 items are not looked into. A program deep-copied before every
call is fingerprinted in full on every call (~100 µs for three predictors with a few demos each).
While two instances with different states serve one agent, call spans carry the agent version of the
last recorded revision, and drift is measured over both instances' calls together.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, ClassVar

from driftwatch.integrations import MINIMUM_VERSIONS, DidNotEnable

try:
    import dspy
except ImportError as _missing:  # the import is the check that DSPy is installed
    raise DidNotEnable("driftwatch's DSPy integration needs dspy: pip install 'driftwatch-agents[dspy]'") \
        from _missing

from dspy.dsp.utils.settings import thread_local_overrides
from dspy.evaluate.evaluate import Evaluate
from dspy.predict.parameter import Parameter
from dspy.predict.predict import Predict
from dspy.primitives.module import Module
from dspy.teleprompt.teleprompt import Teleprompter
from dspy.utils.usage_tracker import UsageTracker

from driftwatch.change import Change
from driftwatch.revision import combine, fingerprint
from driftwatch.runtime import CallScope, Runtime, get_runtime, is_suppressed, suppressed
from driftwatch.tracker import Lazy, Lineage

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
#: the component that holds a program's shape (which predictor sits at which path)
PROGRAM_COMPONENT = "<program>"


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        m = re.match(r"\d+", piece)
        if m is None:
            break
        parts.append(int(m.group()))
    return tuple(parts)


if _version_tuple(getattr(dspy, "__version__", "0")) < _version_tuple(MINIMUM_VERSION):
    raise DidNotEnable(f"driftwatch's DSPy integration needs dspy>={MINIMUM_VERSION}, found "
                       f"{getattr(dspy, '__version__', 'unknown')}: pip install 'driftwatch-agents[dspy]'")

try:  # experimental in DSPy 3.3+; GEPA rewrites its code
    from dspy.predict.flex.flex import Flex as _Flex
except ImportError:  # pragma: no cover - depends on the DSPy build
    _Flex = None

_MARK = "_driftwatch_agent"   # instance or class attribute: the agent a program is watched as
_CTX = "driftwatch_compile"   # dspy.context key: the optimizer run in progress
_CONTAINER_LIMIT = 64
_SKIP = frozenset({
    "history", "callbacks", "candidate_programs", "mb_candidate_programs", "trial_logs", "detailed_results",
    "results_best", "results_latest", "_driftwatch_agent", "demos", "traces", "train",
})
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None), bytes})
_SECRET = re.compile(r"key|secret|password|passwd|auth|credential|header|cookie|api_base|base_url", re.I)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")

_obj_getattr = object.__getattribute__


def _vars(obj: Any) -> dict[str, Any]:
    """``obj.__dict__`` without going through ``dspy.Module.__getattribute__`` (a Python-level hook)."""
    return _obj_getattr(obj, "__dict__")


# ----------------------------------------------------------------------------------------------
# State: what a predictor / Flex / program looks like, as JSON
# ----------------------------------------------------------------------------------------------

def _jsonable(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > 20:
        return "…"
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_jsonable(v, depth + 1) for v in items]
    to_dict = getattr(value, "toDict", None)  # dspy.Example
    if callable(to_dict):
        return _jsonable(to_dict(), depth + 1)
    dump = getattr(value, "model_dump", None)  # pydantic
    if callable(dump):
        with suppress(Exception):  # a model that cannot dump itself is recorded as its text
            return _jsonable(dump(mode="json"), depth + 1)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return _ADDRESS.sub("", str(value))


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def _lm_state(lm: Any) -> dict[str, Any] | None:
    if lm is None:
        return None
    kwargs = getattr(lm, "kwargs", None)
    kwargs = kwargs if isinstance(kwargs, Mapping) else {}
    return {
        "class": type(lm).__qualname__,
        "model": _jsonable(getattr(lm, "model", None)),
        "kwargs": {str(k): _jsonable(v) for k, v in kwargs.items() if not _SECRET.search(str(k))},
    }


def _signature_fields(sig: Any) -> list[dict[str, Any]]:
    fields = []
    for name, info in sig.fields.items():
        extra = info.json_schema_extra or {}
        fields.append({"name": name, "io": extra.get("__dspy_field_type"), "type": _type_name(info.annotation),
                       "prefix": _jsonable(extra.get("prefix")), "desc": _jsonable(extra.get("desc"))})
    return fields


def _signature_of(p: Any, d: dict[str, Any]) -> Any:
    sig = d.get("signature")
    return sig if sig is not None else p.signature  # a subclass may hold it elsewhere (a property)


def _predict_state(p: Any) -> dict[str, Any]:
    d = _vars(p)
    sig = _signature_of(p, d)
    state: dict[str, Any] = {
        "instructions": sig.instructions,
        "fields": _signature_fields(sig),
        "demos": [_jsonable(demo) for demo in d.get("demos") or ()],
        "config": _jsonable(d.get("config") or {}),
        "lm": _lm_state(d.get("lm")),
    }
    criteria = d.get("fields")
    if criteria:
        state["criteria"] = _jsonable(criteria)
    return state


def _flex_state(f: Any) -> dict[str, Any]:
    d = _vars(f)
    return {"module_src": d.get("_module_src"), "lm": _lm_state(d.get("lm"))}


def _is_flex(obj: Any) -> bool:
    return _Flex is not None and isinstance(obj, _Flex)


def _state_of(obj: Any) -> dict[str, Any]:
    return _flex_state(obj) if _is_flex(obj) else _predict_state(obj)


# cheap keys: object identities only (the objects are pinned by the caller, so ids cannot be reused)
def _predict_key(p: Any, d: dict[str, Any]) -> tuple[Any, ...]:
    sig = _signature_of(p, d)
    doc = sig.__doc__
    demos = d.get("demos")
    config = d.get("config")
    criteria = d.get("fields")
    return (id(sig), id(doc), id(d.get("lm")), id(demos), *map(id, demos or ()), -1, id(config),
            *map(id, config.values() if config else ()), -2, id(criteria), len(criteria) if criteria else 0)


def _predict_pins(p: Any, d: dict[str, Any]) -> tuple[Any, ...]:
    sig = _signature_of(p, d)
    demos = d.get("demos")
    config = d.get("config")
    return (sig, sig.__doc__, d.get("lm"), demos, tuple(demos or ()), config,
            tuple(config.values()) if config else (), d.get("fields"))


def _flex_key(f: Any, d: dict[str, Any]) -> tuple[Any, ...]:
    return (id(d.get("_module_src")), id(d.get("lm")))


def _flex_pins(f: Any, d: dict[str, Any]) -> tuple[Any, ...]:
    return (d.get("_module_src"), d.get("lm"))


_KIND_OF_KEY = {"instructions": "instructions", "fields": "fields", "criteria": "fields", "demos": "demos",
                "config": "lm_config", "lm": "lm_config", "module_src": "code", "predictors": "topology"}
_KIND_ORDER = ("code", "topology", "instructions", "fields", "demos", "lm_config")


def _kind(paths: tuple[str, ...]) -> str:
    """The kind of a predictor change: the most prompt-like part that moved."""
    found = set()
    for p in paths:
        head = p[2:].split(".", 1)[0].split("[", 1)[0] if p.startswith("$.") else ""
        kind = _KIND_OF_KEY.get(head)
        if kind is not None:
            found.add(kind)
    for kind in _KIND_ORDER:
        if kind in found:
            return kind
    return "custom"


# ----------------------------------------------------------------------------------------------
# The shape of a program: predictor paths, and a cheap key for it
# ----------------------------------------------------------------------------------------------

def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _scan(program: Any) -> tuple[list[tuple[str, Any]], list[Any]]:
    """Every predictor and Flex in ``program`` with its path, in DSPy's naming (compiled parts included),
    and a *probe* of the program's shape: for each non-leaf module, the identities of its attribute
    values and of the items of its small lists and dicts (see :func:`_same_shape`)."""
    found: list[tuple[str, Any]] = []
    probe: list[Any] = []
    seen: set[int] = set()

    def walk(path: str, mod: Any) -> None:
        if id(mod) in seen:
            return
        seen.add(id(mod))
        if isinstance(mod, Parameter):
            if isinstance(mod, Predict) or _is_flex(mod):
                found.append((path or "self", mod))
            return
        d = _vars(mod)
        values = tuple(d.values())
        containers = []
        for name, value in d.items():
            if name in _SKIP or type(value) in _SCALAR_TYPES:
                continue
            if isinstance(value, Module):
                walk(_join(path, name), value)
            elif type(value) is list or type(value) is tuple:
                if len(value) <= _CONTAINER_LIMIT:
                    if type(value) is list:
                        containers.append((value, _ids(value), tuple(value)))
                    for i, item in enumerate(value):
                        if isinstance(item, Module):
                            walk(_join(path, f"{name}[{i}]"), item)
            elif type(value) is dict and len(value) <= _CONTAINER_LIMIT:
                containers.append((value, _ids(value), tuple(value.items())))
                for key, item in value.items():
                    if isinstance(item, Module):
                        walk(_join(path, f"{name}['{key}']"), item)
        probe.append((d, tuple(map(id, values)), values, containers))

    walk("", program)
    return found, probe


def _ids(container: Any) -> tuple[int, ...]:
    if type(container) is dict:
        return (*map(id, container), -1, *map(id, container.values()))
    return tuple(map(id, container))


def _same_shape(probe: list[Any]) -> bool:
    """Whether no module, list or dict looked at by :func:`_scan` has changed its contents since.

    Identity only (~0.5 µs per module); the old values are pinned by the probe, so no id is reused.
    """
    for d, ids, _pins, containers in probe:
        if tuple(map(id, d.values())) != ids:
            return False
        for container, cids, _cpins in containers:
            if _ids(container) != cids:
                return False
    return True


def _components(program: Any) -> list[tuple[str, Any]]:
    """Every predictor and Flex in ``program`` with its path."""
    return _scan(program)[0]


def _shape_state(components: list[tuple[str, Any]]) -> dict[str, Any]:
    return {"predictors": {path: type(obj).__qualname__ for path, obj in components}}


def program_state(program: Any) -> dict[str, Any]:
    """The recorded state of every component of ``program``: ``{component: state}`` (JSON-able).

    ``fingerprint(program_state(p)[c])`` is the revision id driftwatch records for component ``c``.
    """
    if not isinstance(program, Module):
        raise TypeError(f"program_state(program=...): expected a dspy.Module, got {type(program).__name__}")
    components = _components(program)
    states = {path: _state_of(obj) for path, obj in components}
    states[PROGRAM_COMPONENT] = _shape_state(components)
    return states


#: the one key of a program revision's state: ``{"components": {component: revision id}}``
_PROGRAM_KEY = "components"


def _program_snapshot(program: Any) -> tuple[str, dict[str, Any]]:
    """A whole program's revision id and every revision it is made of, ``{revision_id: state}``: each
    component's state, and the program revision itself, whose state names its components' revisions
    (``{"components": {component: revision id}}``) and whose id is :func:`~driftwatch.revision.combine`
    of them (what the program's ``gen_ai.agent.version`` is)."""
    return _snapshot_of(program_state(program))


def _snapshot_of(states: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    revisions: dict[str, Any] = {}
    manifest: dict[str, str] = {}
    for comp, state in states.items():
        rid = fingerprint(state)
        manifest[comp] = rid
        revisions[rid] = state
    program_id = combine(manifest)
    revisions[program_id] = {_PROGRAM_KEY: manifest}
    return program_id, revisions


def program_revision(program: Any) -> str:
    """The revision id of a whole program: :func:`~driftwatch.revision.combine` of its components'
    revision ids. An optimizer candidate is recorded under this id (see :func:`candidates`), and a
    program watched alone reports it as its agent version (``gen_ai.agent.version``)."""
    if not isinstance(program, Module):
        raise TypeError(f"program_revision(program=...): expected a dspy.Module, got {type(program).__name__}")
    return _program_snapshot(program)[0]


def _manifest(state: Any) -> dict[str, str] | None:
    """The ``{component: revision id}`` of a program revision's state; ``None`` for a component's state."""
    if isinstance(state, Mapping) and len(state) == 1 and isinstance(state.get(_PROGRAM_KEY), Mapping):
        return dict(state[_PROGRAM_KEY])
    return None


# ----------------------------------------------------------------------------------------------
# Watching one program instance: the per-call cheap check
# ----------------------------------------------------------------------------------------------

class _Component(Lineage):
    """One predictor (or Flex) of one program instance, and that instance's lineage of it."""

    __slots__ = ("flex", "obj", "path", "pins", "read", "tracker")

    def __init__(self, path: str, obj: Any, tracker: Any) -> None:
        super().__init__()
        self.path = path
        self.obj = obj
        self.flex = _is_flex(obj)
        self.tracker = tracker
        self.pins: Any = None  # the objects whose ids make up ``key``: kept alive, so no id is reused
        self.read = functools.partial(_flex_state if self.flex else _predict_state, obj)


class _ProgramWatch:
    """What driftwatch keeps about one watched program instance (weakly keyed by the instance).

    Each instance has its own lineage per component (:class:`~driftwatch.tracker.Lineage`): its cheap
    keys and the revisions it last had. An instance that serves unchanged records nothing, whatever
    other instances of the same agent (an optimized copy, the other half of an A/B) did meanwhile.
    """

    __slots__ = ("agent", "components", "inherited", "lock", "probe", "runtime", "shape", "shape_tracker")

    def __init__(self, program: Any, agent: str, runtime: Runtime) -> None:
        self.agent = agent
        self.runtime = runtime
        self.probe: list[Any] | None = None
        self.components: list[_Component] = []
        self.shape_tracker = runtime.tracker(agent, PROGRAM_COMPONENT)
        self.shape = Lineage()
        #: the lineage a copy starts from (an optimizer's result: the student's), by component
        self.inherited: dict[str, Lineage] = {}
        self.lock = threading.Lock()

    def inherit(self, parent: Mapping[str, Lineage]) -> None:
        """Start from ``parent``'s lineage (``{component: lineage}``, ``<program>`` included): this
        instance is a copy of it, so only what differs from the parent is a change."""
        shape = parent.get(PROGRAM_COMPONENT)
        if shape is not None and shape.revision_id is not None:
            self.shape.inherit(shape)
        self.inherited = {c: lin for c, lin in parent.items() if c != PROGRAM_COMPONENT and lin.revision_id}

    def lineages(self) -> dict[str, Lineage]:
        """This instance's lineage by component (``<program>`` included), as last seen."""
        out: dict[str, Lineage] = {}
        for comp in self.components:
            lin = Lineage()
            lin.inherit(comp)
            out[comp.path] = lin
        shape = Lineage()
        shape.inherit(self.shape)
        out[PROGRAM_COMPONENT] = shape
        return out

    def forget_keys(self) -> None:
        """Make the next check fingerprint everything (in-place edits the cheap keys cannot see)."""
        self.probe = None
        self.shape.forget_key()
        for comp in self.components:
            comp.forget_key()

    def _rebuild(self, found: list[tuple[str, Any]]) -> list[_Component]:
        old = {c.path: c for c in self.components}
        rt = self.runtime
        out = []
        for path, obj in found:
            prev = old.get(path)
            if prev is not None and prev.obj is obj:
                out.append(prev)
                continue
            comp = _Component(path, obj, rt.tracker(self.agent, path))
            parent = prev if prev is not None and prev.revision_id is not None else self.inherited.get(path)
            if parent is not None:  # another object at the same path: the lineage goes on
                comp.inherit(parent)
            out.append(comp)
        self.inherited = {}
        return out

    def check(self, program: Any, *, source: str = "runtime", run_id: str | None = None,
              in_order: bool = False) -> list[Change]:
        """Compare the program with what was last seen; record what moved (the per-call hot path).

        ``in_order``: record the components by name, the shape last (an optimizer run's changes).
        """
        changes: list[Change] = []
        probe = self.probe
        shape_state = None
        if probe is None or not _same_shape(probe):
            with self.lock:
                found, probe = _scan(program)
                self.components = self._rebuild(found)
                self.probe = probe
                shape_state = _shape_state(found)
            if not in_order:
                self._check_shape(shape_state, changes, source, run_id)
        components = sorted(self.components, key=lambda c: c.path) if in_order else self.components
        for comp in components:
            d = _vars(comp.obj)
            obj = comp.obj
            key = _flex_key(obj, d) if comp.flex else _predict_key(obj, d)
            if key == comp.key:
                continue
            pins = _flex_pins(obj, d) if comp.flex else _predict_pins(obj, d)
            ch = comp.tracker.observe(Lazy(comp.read), key=key, kind=_kind, source=source, run_id=run_id,
                                      lineage=comp)
            comp.pins = pins
            if ch is not None:
                changes.append(ch)
        if in_order and shape_state is not None:
            self._check_shape(shape_state, changes, source, run_id)
        return changes

    def _check_shape(self, shape_state: dict[str, Any], changes: list[Change], source: str,
                     run_id: str | None) -> None:
        ch = self.shape_tracker.observe(shape_state, kind="topology", source=source, run_id=run_id,
                                        lineage=self.shape)
        if ch is not None:
            changes.append(ch)


# id(program) -> (weak reference, watch): keyed by identity, so that programs that define __eq__ (and
# are therefore unhashable) can be watched too; an entry goes away with its program
_WATCHES: dict[int, tuple[weakref.ref[Any], _ProgramWatch]] = {}
_WATCHES_LOCK = threading.Lock()


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    with _WATCHES_LOCK:
        entry = _WATCHES.get(key)
        if entry is not None and entry[0] is ref:
            del _WATCHES[key]


def _existing_watch(program: Any, agent: str, rt: Runtime) -> _ProgramWatch | None:
    entry = _WATCHES.get(id(program))
    if entry is not None and entry[0]() is program:
        pw = entry[1]
        if pw.runtime is rt and pw.agent == agent:
            return pw
    return None


def _watch_for(program: Any, agent: str, rt: Runtime, *, fresh: bool = False) -> _ProgramWatch:
    """The program's watch (``fresh``: a new one, replacing what was kept about the instance)."""
    key = id(program)
    if not fresh:
        pw = _existing_watch(program, agent, rt)
        if pw is not None:
            return pw
    pw = _ProgramWatch(program, agent, rt)
    ref = weakref.ref(program, lambda r: _forget(key, r))
    with _WATCHES_LOCK:
        _WATCHES[key] = (ref, pw)
    return pw


def _agent_of(program: Any) -> str | None:
    """The agent a program is watched as (instance mark, then class mark), or ``None``."""
    try:
        agent = _vars(program).get(_MARK)
    except AttributeError:
        return None
    if agent is None:
        agent = getattr(type(program), _MARK, None)
    return agent if isinstance(agent, str) else None


def _derived_agent(program: Any) -> str:
    return type(program).__name__


def _observe(program: Any, agent: str, rt: Runtime, **kw: Any) -> list[Change]:
    try:
        return _watch_for(program, agent, rt).check(program, **kw)
    except Exception as exc:  # noqa: BLE001  # never break the host: counted
        rt.error("dspy", exc)
        return []


def refresh(program: Any) -> list[Change]:
    """Check a watched program in full now (also in-place edits the cheap check cannot see).

    Returns the changes recorded (source ``runtime``).
    """
    agent = _agent_of(program) or _derived_agent(program)
    rt = get_runtime()
    if not rt.enabled or is_suppressed():
        return []
    _watch_for(program, agent, rt).forget_keys()
    return [c for c in _observe(program, agent, rt) if not c.is_baseline]


# ----------------------------------------------------------------------------------------------
# Calls
# ----------------------------------------------------------------------------------------------

class _Hooks:
    """Which patches are in place (the originals, to undo them)."""

    installed = False
    cover_all = False
    #: the generation of the patches in place (-1: none). A wrapper is live only while its own
    #: generation is: one left behind under another instrumentor's wrapper then just passes through.
    live = -1
    generation = 0
    lock = threading.RLock()
    saved: ClassVar[list[tuple[type, str, Any, bool, Any]]] = []
    compiles: ClassVar[dict[type, Any]] = {}


def _call_target(module: Any) -> str | None:
    """The agent to record this module call for, or ``None`` (not watched, nested, in a compile)."""
    agent = _agent_of(module)
    cover_all = _Hooks.cover_all
    if agent is None and not cover_all:
        return None
    ov = thread_local_overrides.get()
    if ov:
        if ov.get(_CTX) is not None:
            return None  # a trial inside an optimizer run
        callers = ov.get("caller_modules")
        if callers:
            if cover_all or agent is None:
                return None
            for caller in callers:
                if _agent_of(caller) is not None:
                    return None
    if is_suppressed():
        return None
    return agent or _derived_agent(module)


def _prediction_text(result: Any) -> str | None:
    if isinstance(result, str):
        return result
    store = getattr(result, "_store", None) if isinstance(result, dspy.Prediction) else None
    if not isinstance(store, dict):
        return None
    for key in ("answer", "response", "output", "result", "text", "content", "summary"):
        value = store.get(key)
        if isinstance(value, str):
            return value
    last = None
    for key, value in store.items():
        if isinstance(value, str) and key != "reasoning":
            last = value
    return last


def _tokens(usage: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    """(input, output) tokens summed over DSPy's ``{lm: usage}`` totals; ``None`` when none reported."""
    counter = _UsageSum()
    for entry in (usage or {}).values():
        if isinstance(entry, Mapping):
            counter.count(entry)
    return counter.totals()


class _UsageSum(UsageTracker):
    """A usage tracker that only sums input and output tokens (DSPy's merges every entry: ~5x dearer).

    DSPy deep-copies the usage tracker into each ``dspy.Parallel`` worker thread; this one hands out
    itself instead (with a lock), so the tokens a program spends in its own parallel sections count.
    """

    def __init__(self) -> None:
        super().__init__()
        self.tin = 0
        self.tout = 0
        self.seen = False
        self.lock = threading.Lock()

    def __deepcopy__(self, memo: Any) -> _UsageSum:
        return self

    def __copy__(self) -> _UsageSum:
        return self

    def add_usage(self, lm: str, usage_entry: Mapping[str, Any]) -> None:
        if usage_entry:
            self.count(usage_entry)

    def count(self, entry: Mapping[str, Any]) -> None:
        tin = entry.get("prompt_tokens", entry.get("input_tokens"))
        tout = entry.get("completion_tokens", entry.get("output_tokens"))
        with self.lock:
            if type(tin) is int:
                self.tin += tin
                self.seen = True
            if type(tout) is int:
                self.tout += tout
                self.seen = True

    def totals(self) -> tuple[int | None, int | None]:
        for entries in self.usage_data.values():  # rolled up by a nested dspy.track_usage() block
            for entry in entries:
                self.count(entry)
        self.usage_data.clear()
        return (self.tin, self.tout) if self.seen else (None, None)


class _CallRecord:
    """One recorded program call: the scope, and the usage tracker when driftwatch opened one."""

    __slots__ = ("scope", "tracker_cm", "usage")

    def __init__(self, scope: CallScope) -> None:
        self.scope = scope
        self.tracker_cm: Any = None
        self.usage: _UsageSum | None = None

    def open_usage(self) -> None:
        ov = thread_local_overrides.get()
        if ov.get("usage_tracker") is not None or dspy.settings.track_usage:
            return  # the user's own tracking is on: read the prediction's usage instead
        usage = _UsageSum()
        cm = dspy.context(usage_tracker=usage)
        cm.__enter__()
        self.usage = usage
        self.tracker_cm = cm

    def close_usage(self, exc: BaseException | None) -> None:
        cm, self.tracker_cm = self.tracker_cm, None
        if cm is not None:
            cm.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

    def finish(self, result: Any) -> None:
        if self.usage is not None:
            tin, tout = self.usage.totals()
        else:
            get = getattr(result, "get_lm_usage", None)
            tin, tout = _tokens(get() if callable(get) else None)
        text = _prediction_text(result)
        self.scope.finish(output_chars=len(text) if text is not None else None, output_text=text,
                          input_tokens=tin, output_tokens=tout)


def _begin(module: Any, agent: str) -> _CallRecord | None:
    rt = get_runtime()
    if not rt.enabled:
        return None
    _observe(module, agent, rt)
    scope = rt.begin_call(agent)
    if scope is None:
        return None
    rec = _CallRecord(scope)
    try:
        rec.open_usage()
    except Exception as exc:  # noqa: BLE001  # tokens are optional: counted
        rt.error("dspy", exc)
    return rec


def _end(rec: _CallRecord, result: Any = None, error: BaseException | None = None) -> None:
    try:
        rec.close_usage(error)
        if error is not None:
            rec.scope.finish(error=error)
        else:
            rec.finish(result)
    except Exception as exc:  # noqa: BLE001  # never break the host: counted
        rec.scope.runtime.error("call", exc)


def _make_call(orig: Callable[..., Any]) -> Callable[..., Any]:
    gen = _Hooks.generation

    @functools.wraps(orig)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N807  # replaces Module.__call__
        if _Hooks.live != gen:
            return orig(self, *args, **kwargs)
        try:
            agent = _call_target(self)
            rec = _begin(self, agent) if agent is not None else None
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("dspy", exc)
            rec = None
        if rec is None:
            return orig(self, *args, **kwargs)
        try:
            result = orig(self, *args, **kwargs)
        except BaseException as exc:
            _end(rec, error=exc)
            raise
        _end(rec, result)
        return result

    __call__.__driftwatch_original__ = orig  # type: ignore[attr-defined]  # read by uninstrument()
    return __call__


def _make_acall(orig: Callable[..., Any]) -> Callable[..., Any]:
    gen = _Hooks.generation

    @functools.wraps(orig)
    async def acall(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _Hooks.live != gen:
            return await orig(self, *args, **kwargs)
        try:
            agent = _call_target(self)
            rec = _begin(self, agent) if agent is not None else None
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("dspy", exc)
            rec = None
        if rec is None:
            return await orig(self, *args, **kwargs)
        try:
            result = await orig(self, *args, **kwargs)
        except BaseException as exc:
            _end(rec, error=exc)
            raise
        _end(rec, result)
        return result

    acall.__driftwatch_original__ = orig  # type: ignore[attr-defined]  # read by uninstrument()
    return acall


# ----------------------------------------------------------------------------------------------
# Optimizer runs
# ----------------------------------------------------------------------------------------------

class _Run:
    """One optimizer run in progress; held in ``dspy.context`` so that worker threads see it."""

    def __init__(self, rt: Runtime, agent: str, optimizer: str, run: Any) -> None:
        self.rt = rt
        self.agent = agent
        self.optimizer = optimizer
        self.run = run
        self.lock = threading.Lock()
        self.gepa = False
        self.gepa_parent: dict[str, Any] | None = None
        self.gepa_proposal: dict[str, Any] | None = None
        #: revision ids this run already wrote (trial programs share most of their predictors' states)
        self.stored: set[str] = set()
        #: GEPA's student: its candidates are instructions for the student's predictors
        self.gepa_student: Any = None

    # the run rides in dspy.context: whatever copies or pickles DSPy's settings gets a harmless stand-in
    def __copy__(self) -> _Run:
        return self

    def __deepcopy__(self, memo: Any) -> _Run:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_no_run, ())

    def snapshot(self, program: Any) -> str | None:
        """A trial program's revision id; its state (and each component's) is written to the ledger, so
        that :func:`restore` can put the candidate back. ``None`` (counted) when it cannot be read."""
        return self._store(lambda: _program_snapshot(program))

    def gepa_snapshot(self, candidate: Mapping[str, Any]) -> str | None:
        """A GEPA candidate (``{predictor name: instructions}``) as the program GEPA builds from it: the
        student with those instructions. A candidate naming anything else is recorded by the fingerprint
        of its own text (not restorable)."""
        student = self.gepa_student
        comps = dict(_components(student)) if student is not None else {}
        if not candidate or any(not isinstance(text, str) or name not in comps or _is_flex(comps[name])
                                for name, text in candidate.items()):
            return fingerprint(_jsonable(candidate)) if candidate else None

        def build() -> tuple[str, dict[str, Any]]:
            states = program_state(student)
            for name, text in candidate.items():
                sig = _signature_of(comps[name], _vars(comps[name])).with_instructions(text)
                states[name] = {**states[name], "instructions": sig.instructions,
                                "fields": _signature_fields(sig)}
            return _snapshot_of(states)

        return self._store(build)

    def _store(self, snapshot: Callable[[], tuple[str, dict[str, Any]]]) -> str | None:
        try:
            program_id, revisions = snapshot()
            with self.lock:
                new = {rid: state for rid, state in revisions.items() if rid not in self.stored}
                self.stored.update(new)
            if new:
                self.rt.write(lambda led: led.record_revisions(new))
            return program_id
        except Exception as exc:  # noqa: BLE001  # the candidate is recorded without its revision
            self.rt.error("dspy", exc)
            return None

    def candidate(self, score: float | None, revision_id: str | None, **attributes: Any) -> None:
        try:
            if score is not None:
                score = float(score)
                if not math.isfinite(score):
                    score = None
            with self.lock:
                self.rt.record_candidate(self.run, score, revision_id, **attributes)
        except Exception as exc:  # noqa: BLE001  # never break the optimizer: counted
            self.rt.error("dspy", exc)


def _no_run() -> None:
    """What an optimizer run becomes when DSPy's settings are pickled (``dspy.settings.save``)."""
    return None


class _GepaCallback:
    """GEPA's own callbacks (``gepa_kwargs={"callbacks": [...]}``): its candidates and their scores.

    Accepted candidates are recorded with their validation-set score; rejected proposals with no
    score (their minibatch scores are attributes: a minibatch is too small to compete for best score).
    """

    def __init__(self, run: _Run) -> None:
        self.run = run

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001  # never break GEPA: counted
            self.run.rt.error("dspy", exc)

    def on_valset_evaluated(self, event: Mapping[str, Any]) -> None:
        self._guard(lambda: self.run.candidate(
            event.get("average_score"), self.run.gepa_snapshot(dict(event.get("candidate") or {})),
            stage="valset", gepa_index=_jsonable(event.get("candidate_idx"))))

    def on_proposal_start(self, event: Mapping[str, Any]) -> None:
        self._guard(lambda: setattr(self.run, "gepa_parent", dict(event.get("parent_candidate") or {})))

    def on_proposal_end(self, event: Mapping[str, Any]) -> None:
        self._guard(lambda: setattr(self.run, "gepa_proposal", {
            **(self.run.gepa_parent or {}), **dict(event.get("new_instructions") or {})}))

    def on_candidate_rejected(self, event: Mapping[str, Any]) -> None:
        def record() -> None:
            proposal, self.run.gepa_proposal = self.run.gepa_proposal, None
            self.run.candidate(None, self.run.gepa_snapshot(proposal) if proposal else None, stage="minibatch",
                               accepted=False, minibatch_score=_jsonable(event.get("new_score")),
                               parent_minibatch_score=_jsonable(event.get("old_score")))

        self._guard(record)


def _current_run() -> _Run | None:
    ov = thread_local_overrides.get()
    return ov.get(_CTX) if ov else None


def _make_evaluate(orig: Callable[..., Any]) -> Callable[..., Any]:
    gen = _Hooks.generation

    @functools.wraps(orig)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N807  # replaces Evaluate.__call__
        run = _current_run() if _Hooks.live == gen else None
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
        run.candidate(score / 100.0 if isinstance(score, int | float) else None, revision, stage="evaluate")
        return result

    __call__.__driftwatch_original__ = orig  # type: ignore[attr-defined]  # read by uninstrument()
    return __call__


def _student_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if "student" in kwargs:
        return kwargs["student"]
    return args[0] if args else None


def _compile_agent(optimizer: Any, student: Any) -> str | None:
    if not isinstance(student, Module):
        return None
    agent = _agent_of(student)
    if agent is None:
        mark = getattr(optimizer, _MARK, None)
        agent = mark if isinstance(mark, str) else None
    if agent is None and _Hooks.cover_all:
        agent = _derived_agent(student)
    return agent


class _CompileScope:
    """Everything driftwatch does around one outermost ``compile``; each step guarded."""

    def __init__(self, optimizer: Any, student: Any, agent: str, rt: Runtime) -> None:
        self.optimizer = optimizer
        self.student = student
        self.agent = agent
        self.rt = rt
        self.name = type(optimizer).__name__
        self.span = self.token = None
        #: the student's lineage as the optimizer receives it: where the returned program's starts
        self.parent: dict[str, Lineage] = {}
        self.student_watched = _agent_of(student) is not None
        self.gepa_saved: Any = _UNSET
        try:
            # the student checked in full first (edits not recorded yet are its own runtime changes,
            # outside the run), so that the run's changes read "student -> result"
            pw = _watch_for(student, agent, rt)
            pw.forget_keys()
            pw.check(student)
            self.parent = pw.lineages()
        except Exception as exc:  # noqa: BLE001  # the run is still recorded
            rt.error("dspy", exc)
        tracing = rt.tracing
        if tracing is not None:
            try:
                self.span, self.token = tracing.start_run(agent, self.name)
            except Exception as exc:  # noqa: BLE001  # counted
                rt.error("tracing", exc)
        try:
            self.run = _Run(rt, agent, self.name, rt.start_run(agent, self.name))
        except BaseException:
            if self.span is not None:  # no run: leave no span behind (the caller counts the error)
                tracing.end_run(self.span, self.token, _NoRun(), error=None)  # type: ignore[union-attr]  # set
            raise
        if self.span is not None:
            try:
                self.span.set_attribute("driftwatch.optimizer.run_id", self.run.run.id)
            except Exception as exc:  # noqa: BLE001  # counted
                rt.error("tracing", exc)

    @contextmanager
    def inside(self) -> Iterator[None]:
        try:
            gk = getattr(self.optimizer, "gepa_kwargs", None)
            if isinstance(gk, dict):
                self.run.gepa = True
                self.run.gepa_student = self.student
                self.gepa_saved = gk
                self.optimizer.gepa_kwargs = {**gk, "callbacks": [*(gk.get("callbacks") or []),
                                                                  _GepaCallback(self.run)]}
        except Exception as exc:  # noqa: BLE001  # GEPA's candidates are then not recorded
            self.rt.error("dspy", exc)
        try:
            with dspy.context(**{_CTX: self.run}):
                yield
        finally:
            if self.gepa_saved is not _UNSET:
                try:
                    self.optimizer.gepa_kwargs = self.gepa_saved
                except Exception as exc:  # noqa: BLE001  # counted
                    self.rt.error("dspy", exc)

    def failed(self, exc: BaseException) -> None:
        self._end(exc)

    def succeeded(self, result: Any) -> None:
        try:
            if isinstance(result, Module):
                if self.student_watched and _vars(result).get(_MARK) != self.agent:
                    _vars(result)[_MARK] = self.agent
                self._record_result(result)
        except Exception as exc:  # noqa: BLE001  # the run is still recorded
            self.rt.error("dspy", exc)
        self._end(None)

    def _record_result(self, result: Any) -> None:
        """One change per component of the result that differs from the student (student -> result).

        The result gets its own watch, its lineage continuing the student's: when it is swapped in,
        its first call records nothing, and the student serving meanwhile records nothing either.
        """
        if self.run.run.candidates == 0:
            self._candidates_from(result)
        if result is self.student:  # tuned in place
            pw = _watch_for(result, self.agent, self.rt)
        else:
            pw = _watch_for(result, self.agent, self.rt, fresh=True)
            pw.inherit(self.parent)
        pw.forget_keys()
        pw.check(result, source=self.name, run_id=self.run.run.id, in_order=True)

    def _candidates_from(self, result: Any) -> None:
        """Optimizers that score without ``dspy.Evaluate`` (SIMBA) attach ``candidate_programs``."""
        cands = _vars(result).get("candidate_programs")
        if not isinstance(cands, list):
            return
        for i, item in enumerate(cands):
            if not isinstance(item, Mapping):
                continue
            program = item.get("program")
            revision = self.run.snapshot(program) if isinstance(program, Module) else None
            score = item.get("score")
            self.run.candidate(score if isinstance(score, int | float) else None, revision,
                               stage="candidate_programs", rank=i)

    def _end(self, error: BaseException | None) -> None:
        try:
            self.rt.end_run(self.run.run, error=error)
        except Exception as exc:  # noqa: BLE001  # counted
            self.rt.error("dspy", exc)
        if self.span is not None and self.rt.tracing is not None:
            try:
                self.rt.tracing.end_run(self.span, self.token, self.run.run, error=error,
                                        capture_content=self.rt.settings.capture_content, redact=self.rt.redact)
            except Exception as exc:  # noqa: BLE001  # counted
                self.rt.error("tracing", exc)


_UNSET: Any = object()


class _NoRun:
    """Stands in for a run that could not be started, when its span is closed."""

    id = ""
    outcome = "not_started"
    candidates = 0
    best_score = None


def _compile_scope(optimizer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _CompileScope | None:
    ov = thread_local_overrides.get()
    if ov and (ov.get(_CTX) is not None or ov.get("caller_modules")):
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
    return _CompileScope(optimizer, student, agent, rt)


def _wrap_compile(fn: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(fn, "__driftwatch_original__", None) is not None:
        return fn
    gen = _Hooks.generation

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def acompile(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _Hooks.live != gen:
                return await fn(self, *args, **kwargs)
            try:
                scope = _compile_scope(self, args, kwargs)
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

        acompile.__driftwatch_original__ = fn  # type: ignore[attr-defined]  # read by uninstrument()
        return acompile

    @functools.wraps(fn)
    def compile(self: Any, *args: Any, **kwargs: Any) -> Any:  # replaces Teleprompter.compile
        if _Hooks.live != gen:
            return fn(self, *args, **kwargs)
        try:
            scope = _compile_scope(self, args, kwargs)
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

    compile.__driftwatch_original__ = fn  # type: ignore[attr-defined]  # read by uninstrument()
    return compile


def _wrap_class_compile(cls: type) -> None:
    fn = cls.__dict__.get("compile")
    if not inspect.isfunction(fn) or getattr(fn, "__driftwatch_original__", None) is not None:
        return  # absent, already wrapped, or a staticmethod/classmethod/descriptor: left as it is
    cls.compile = _wrap_compile(fn)  # type: ignore[attr-defined]  # patched; undone by uninstrument()
    _Hooks.compiles[cls] = fn


def _all_subclasses(cls: type) -> Iterator[type]:
    seen: set[type] = set()
    stack = list(cls.__subclasses__())
    while stack:
        sub = stack.pop()
        if sub in seen:
            continue
        seen.add(sub)
        yield sub
        stack.extend(sub.__subclasses__())


# ----------------------------------------------------------------------------------------------
# instrument / uninstrument / watch_object
# ----------------------------------------------------------------------------------------------

def _patch(owner: type, name: str, make: Callable[[Any], Any]) -> None:
    had = name in owner.__dict__
    original = owner.__dict__.get(name)
    wrapper = make(getattr(owner, name))
    _Hooks.saved.append((owner, name, original, had, wrapper))
    setattr(owner, name, wrapper)


def _install() -> None:
    with _Hooks.lock:
        if _Hooks.installed:
            return
        _Hooks.generation += 1
        _Hooks.saved = []
        _Hooks.compiles = {}
        _patch(Module, "__call__", _make_call)
        _patch(Module, "acall", _make_acall)
        _patch(Evaluate, "__call__", _make_evaluate)
        original_init_subclass = Teleprompter.__dict__.get("__init_subclass__")
        gen = _Hooks.generation

        def __init_subclass__(cls: type, **kwargs: Any) -> None:  # noqa: N807  # the hook's own name
            func = getattr(original_init_subclass, "__func__", None)
            if func is not None:
                func(cls, **kwargs)
            else:
                super(Teleprompter, cls).__init_subclass__(**kwargs)
            if _Hooks.live != gen:
                return
            try:
                _wrap_class_compile(cls)
            except Exception as exc:  # noqa: BLE001  # never break a class definition
                get_runtime().error("dspy", exc)

        hook = classmethod(__init_subclass__)
        _Hooks.saved.append((Teleprompter, "__init_subclass__", original_init_subclass,
                             original_init_subclass is not None, hook))
        Teleprompter.__init_subclass__ = hook  # type: ignore[assignment]  # patched; undone by uninstrument()
        _Hooks.installed = True
        _Hooks.live = _Hooks.generation
        for cls in _all_subclasses(Teleprompter):
            _wrap_class_compile(cls)


def instrument() -> None:
    """Watch every DSPy program in the process (agent = the outermost program's class name, unless
    it was watched under another name) and every optimizer run. Idempotent."""
    _install()
    _Hooks.cover_all = True


def uninstrument() -> None:
    """Undo every patch (also those :func:`driftwatch.watch` put in place). Idempotent.

    A patch that another instrumentor has since wrapped is left in place, inert (it only passes
    calls through), so that the other tool keeps working. Programs keep their mark: watching
    anything again (or :func:`instrument`) re-arms them.
    """
    with _Hooks.lock:
        _Hooks.cover_all = False
        if not _Hooks.installed:
            return
        _Hooks.live = -1
        for cls, fn in reversed(list(_Hooks.compiles.items())):
            current = cls.__dict__.get("compile")
            if getattr(current, "__driftwatch_original__", None) is fn:
                cls.compile = fn  # type: ignore[attr-defined]  # restoring the original
        _Hooks.compiles = {}
        for owner, name, original, had, wrapper in reversed(_Hooks.saved):
            if owner.__dict__.get(name) is not wrapper:
                continue  # wrapped over by someone else: ours stays, inert
            if had:
                setattr(owner, name, original)
            else:
                with suppress(AttributeError):
                    delattr(owner, name)
        _Hooks.saved = []
        _Hooks.installed = False


def is_instrumented() -> bool:
    """Whether the patches are in place (``instrument()`` or any ``watch`` of a DSPy object)."""
    return _Hooks.installed


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
            _install()
            setattr(obj, _MARK, agent)
            return obj
        raise TypeError(f"driftwatch.watch cannot watch class {obj.__name__}: only dspy.Module subclasses "
                        "(programs) and optimizers")
    if isinstance(obj, Teleprompter):
        _install()
        obj.__dict__[_MARK] = agent
        return obj
    if not isinstance(obj, Module):
        raise TypeError(f"driftwatch.watch cannot watch a {type(obj).__module__}.{type(obj).__qualname__}: pass a "
                        "dspy.Module (a program), a dspy.Module subclass, or an optimizer")
    _install()
    _vars(obj)[_MARK] = agent
    rt = get_runtime()
    if rt.enabled and not is_suppressed():
        _observe(obj, agent, rt)
    return obj


# ----------------------------------------------------------------------------------------------
# restore
# ----------------------------------------------------------------------------------------------

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
    if shape_id is not None and shape_id != fingerprint(_shape_state(found)):
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
    current_fields = _signature_fields(current)
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
    if _lm_state(current) == state:
        return current
    if state.get("class") == "LM" and state.get("model"):
        return dspy.LM(state["model"], **dict(state.get("kwargs") or {}))
    raise ValueError(f"restore(): the recorded LM ({state.get('class')} {state.get('model')!r}) differs from the "
                     "program's and cannot be rebuilt: set it on the predictor yourself")


def _apply(obj: Any, state: Mapping[str, Any]) -> None:
    if _is_flex(obj):
        d = _vars(obj)
        lm = _lm_for(d.get("lm"), state.get("lm"))
        src = state.get("module_src")
        if src is not None and src != d.get("_module_src"):
            obj._bind_code(src)  # Flex's own rebinding (what load_state does)
        obj.lm = lm
        return
    d = _vars(obj)
    sig = _signature_for(_signature_of(obj, d), state)
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
    agent = agent or _agent_of(program)
    if isinstance(revision_id, Mapping):
        wanted = dict(revision_id)
    elif isinstance(revision_id, str) and revision_id:
        wanted = {component or "": revision_id}
    else:
        raise TypeError(f"restore(revision_id={revision_id!r}): expected a revision id or {{component: revision_id}}")
    led = rt.ledger
    plan: list[tuple[str, Any, Any]] = []
    found = _components(program)
    targets = dict(found)
    for comp, rid in wanted.items():
        rev = led.revision(rid) if isinstance(rid, str) else None
        if rev is None:
            raise KeyError(f"restore(revision_id={rid!r}): no such revision in {led.location}")
        manifest = _manifest(rev.state)
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
        if _is_flex(obj):
            _lm_for(_vars(obj).get("lm"), state.get("lm"))
        else:
            _signature_for(_signature_of(obj, _vars(obj)), state)
            _lm_for(_vars(obj).get("lm"), state.get("lm"))
    agent = agent or _derived_agent(program)
    live = rt.enabled
    pw = _existing_watch(program, agent, rt) if live else None
    if pw is not None:
        pw.check(program)  # edits made since its last call are its own (runtime) changes, not the restore's
    with suppressed():
        for _comp, obj, state in plan:
            _apply(obj, state)
    if not live:
        return []
    if pw is None:
        pw = _watch_for(program, agent, rt)
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
        out.append({**cand, "restorable": rev is not None and _manifest(rev.state) is not None})
    return out
