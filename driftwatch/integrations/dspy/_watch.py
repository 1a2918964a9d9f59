"""Watching program instances: each instance's own lineage of each component, and the per-call cheap check
that compares it with what that instance last had."""

from __future__ import annotations

import functools
import operator
import threading
import weakref
from collections.abc import Mapping
from itertools import chain
from operator import is_not
from typing import Any

from driftwatch.change import Change
from driftwatch.integrations._common import PerRuntime
from driftwatch.integrations.dspy import _guard as guard
from driftwatch.integrations.dspy._program import MARK, same_shape, scan, shape_component, shape_state
from driftwatch.integrations.dspy._state import (
    FLEX_KEYS,
    flex_key,
    flex_pins,
    flex_same,
    flex_state,
    is_flex,
    kind_of,
    predict_key,
    predict_pins,
    predict_same,
    predict_sources,
    predict_state,
    vars_of,
)
from driftwatch.revision import combine
from driftwatch.runtime import Runtime, get_runtime, is_suppressed
from driftwatch.tracker import Lazy, Lineage

_obj_getattr = object.__getattribute__
_revision_id = operator.attrgetter("revision_id")
_dict_get = dict.get
_call = getattr(operator, "call", None) or operator.methodcaller("__call__")  # operator.call: Python 3.11+
#: the end mark after each iterable the per-call path compares (:meth:`ProgramWatch._fast`)
_END = (object(),)

__all__ = ["SHAPE", "Component", "Cover", "ProgramWatch", "agent_of", "derived_agent", "existing_watch", "observe",
           "observe_watch", "refresh", "watch_for"]

#: the key of the shape's lineage in :meth:`ProgramWatch.lineages` (the component is named per program class)
SHAPE = "<shape>"


class Cover:
    """Which programs are watched: those marked with an agent, or every one (:func:`instrument`).

    ``any``: whether a module without a mark of its own (in its ``__dict__``) may be watched: every one is
    (:func:`instrument`), or a ``dspy.Module`` subclass is marked. While it is false, the patched
    ``Module.__call__`` passes an unmarked module's call straight through (:meth:`cover`).
    """

    all = False
    classes = False
    any = False

    @classmethod
    def cover(cls, *, every: bool | None = None, a_class: bool = False) -> None:
        """``every``: :func:`instrument` (True) or :func:`uninstrument` (False); ``a_class``: a class was marked."""
        if every is not None:
            cls.all = every
        if a_class:
            cls.classes = True
        cls.any = cls.all or cls.classes


class Component(Lineage):
    """One predictor (or Flex) of one program instance, and that instance's lineage of it."""

    __slots__ = ("flex", "obj", "path", "pin_key", "pins", "read", "same", "tracker")

    def __init__(self, path: str, obj: Any, tracker: Any) -> None:
        super().__init__()
        self.path = path
        self.obj = obj
        self.flex = is_flex(obj)
        self.tracker = tracker
        self.pins: Any = None  # the objects whose ids make up ``key``: kept alive, so no id is reused
        #: the key ``pins`` were taken for: while it is still ``key`` (not forgotten, not replaced), objects
        #: identical to ``pins`` mean an unchanged key (``same``), which is cheaper to check than the key
        self.pin_key: Any = None
        self.same = flex_same if self.flex else predict_same
        self.read = functools.partial(flex_state if self.flex else predict_state, obj)


class ProgramWatch:
    """What driftwatch keeps about one watched program instance (weakly keyed by the instance).

    Each instance has its own lineage per component (:class:`~driftwatch.tracker.Lineage`): its cheap
    keys and the revisions it last had. An instance that serves unchanged records nothing, whatever
    other instances of the same agent (an optimized copy, the other half of an A/B) did meanwhile.
    """

    __slots__ = ("_version", "agent", "components", "fast", "guard_serial", "inherited", "lock", "probe", "ref",
                 "runtime", "shape", "shape_name", "shape_tracker")

    def __init__(self, program: Any, agent: str, runtime: Runtime) -> None:
        key = id(program)
        #: the program, weakly: its watch is forgotten when it goes
        self.ref: weakref.ref[Any] = weakref.ref(program, lambda _ref: _WATCHES.discard(key, self))
        self.agent = agent
        self.runtime = runtime
        self.probe: list[Any] | None = None
        #: the whole per-call check in one pass (:meth:`_fast`), or ``None``
        self.fast: tuple[Any, ...] | None = None
        self.components: list[Component] = []
        #: the shape's component (the program's class name; None for a bare predictor) and its tracker
        self.shape_name: str | None = None
        self.shape_tracker: Any = None
        self.shape = Lineage()
        self._version: tuple[tuple[Any, ...], str, Any] | None = None
        #: the lineage a copy starts from (an optimizer's result: the student's), by component
        self.inherited: dict[str, Lineage] = {}
        self.lock = threading.Lock()
        #: the guard state of the agent this instance was last synced with (``_guard.sync``)
        self.guard_serial = 0

    def inherit(self, parent: Mapping[str, Lineage]) -> None:
        """Start from ``parent``'s lineage (``{component: lineage}``, the shape's under :data:`SHAPE`): this
        instance is a copy of it, so only what differs from the parent is a change."""
        shape = parent.get(SHAPE)
        if shape is not None and shape.revision_id is not None:
            self.shape.inherit(shape)
        self.inherited = {c: lin for c, lin in parent.items() if c != SHAPE and lin.revision_id}

    def lineages(self) -> dict[str, Lineage]:
        """This instance's lineage by component (the shape's under :data:`SHAPE`), as last seen."""
        out: dict[str, Lineage] = {}
        for comp in self.components:
            lin = Lineage()
            lin.inherit(comp)
            out[comp.path] = lin
        shape = Lineage()
        shape.inherit(self.shape)
        out[SHAPE] = shape
        return out

    def version(self) -> str | None:
        """This instance's own revision (the ``gen_ai.agent.version`` of the calls it serves): the combined
        revision id of its components as it last had them, what :func:`program_revision` gives for it.

        Kept with the per-call check's layout (:attr:`fast`) it was worked out with: while that is in place, no
        revision moved (a revision moves only in a check that found a change, which lays the check out anew, or
        where a guard puts one back, which drops it)."""
        fast = self.fast
        cached = self._version
        if fast is not None and cached is not None and cached[2] is fast:
            return cached[1]
        comps = self.components
        key = (self.shape_name, self.shape.revision_id, *map(_revision_id, comps))
        if cached is not None and cached[0] == key:
            self._version = (key, cached[1], fast)
            return cached[1]
        revs = {c.path: c.revision_id for c in comps if c.revision_id is not None}
        if self.shape_name is not None and self.shape.revision_id is not None:
            revs[self.shape_name] = self.shape.revision_id
        if not revs:
            return None
        version = combine(revs)
        self._version = (key, version, fast)
        return version

    def forget_keys(self) -> None:
        """Make the next check fingerprint everything (in-place edits the cheap keys cannot see)."""
        self.fast = None
        self.probe = None
        self.shape.forget_key()
        for comp in self.components:
            comp.forget_key()

    def _rebuild(self, found: list[tuple[str, Any]]) -> list[Component]:
        old = {c.path: c for c in self.components}
        rt = self.runtime
        out = []
        for path, obj in found:
            prev = old.get(path)
            if prev is not None and prev.obj is obj:
                out.append(prev)
                continue
            comp = Component(path, obj, rt.tracker(self.agent, path))
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
        fast = self.fast
        if fast is not None and fast[0] is self.probe \
                and not any(map(is_not, chain(map(_call, fast[1]), chain.from_iterable(fast[2])), fast[3])):
            return []  # the per-call path: nothing moved (see _fast)
        changes: list[Change] = []
        probe = self.probe
        new_shape = None
        if probe is None or not same_shape(probe):
            with self.lock:
                found, probe = scan(program)
                self.components = self._rebuild(found)
                self.probe = probe
                new_shape = shape_state(found)
                name = shape_component(program, found)
                if name != self.shape_name:
                    if self.shape_name is not None:  # renamed (a predictor took the class's name): a new lineage
                        self.shape = Lineage()
                    self.shape_name = name
                    self.shape_tracker = None if name is None else self.runtime.tracker(self.agent, name)
            if not in_order:
                self._check_shape(new_shape, changes, source, run_id)
        components = sorted(self.components, key=lambda c: c.path) if in_order else self.components
        for comp in components:
            obj = comp.obj
            d = _obj_getattr(obj, "__dict__")
            if comp.pin_key is comp.key and comp.same(obj, d, comp.pins):  # the per-call path: identities only
                continue
            key = flex_key(obj, d) if comp.flex else predict_key(obj, d)
            pins = flex_pins(obj, d) if comp.flex else predict_pins(obj, d)
            if key != comp.key:
                ch = comp.tracker.observe(Lazy(comp.read), key=key, kind=kind_of, source=source, run_id=run_id,
                                          lineage=comp)
                if ch is not None:
                    changes.append(ch)
            comp.pins = pins
            comp.pin_key = comp.key if comp.key == key else None
        if in_order and new_shape is not None:
            self._check_shape(new_shape, changes, source, run_id)
        if changes and not all(c.in_effect for c in changes):
            guard.enforce(self, changes)  # a guard refused some: this instance keeps its revisions
        self.fast = self._fast(probe)
        return changes

    def _fast(self, probe: list[Any] | None) -> tuple[Any, ...] | None:
        """What the per-call path compares (:meth:`check`): everything the check looks at when nothing moved (the
        probe of :func:`same_shape`, each component's pins as its ``same`` compares them, each component's cheap
        key), laid out so that one pass in C compares it all by identity (~10x fewer bytecodes than a loop over
        the modules and components): calls without arguments, then the items of iterables (each followed by
        an end mark, so that a longer or shorter one shows), against what they are expected to give. Built from
        what the probe and pins hold (not from the live program), so it compares with exactly what they compare
        with; ``None`` when some component does not fit (its own ``same`` then runs each call)."""
        if probe is None:
            return None
        calls: list[Any] = []
        expect: list[Any] = []
        iters: list[Any] = []
        own_lm = None  # the first component's own LM (pinned: what _calls._serving_lm reads while this holds)
        for comp in self.components:
            pins = comp.pins
            if comp.pin_key is not comp.key or pins is None:
                return None
            calls.append(functools.partial(getattr, comp, "key"))
            expect.append(comp.pin_key)
            d = vars_of(comp.obj)
            if own_lm is None:
                own_lm = pins[1] if comp.flex else pins[2]
            if comp.flex:
                calls.extend(functools.partial(_dict_get, d, k) for k in FLEX_KEYS)
                expect.extend(pins)
                continue
            parts = predict_sources(d, pins)
            if parts is None:
                return None
            calls.extend(parts[0])
            expect.extend(parts[1])
            iters.extend(parts[2])
        for d, values, containers in probe:
            iters.append((d.values(), values))
            for container, keys, items in containers:
                if keys is not None:  # a dict
                    iters.append((container.keys(), keys))
                    container = container.values()
                iters.append((container, items))
        live: list[Any] = []
        for iterable, items in iters:
            live.extend((iterable, _END))
            expect.extend(items)
            expect.append(_END[0])
        return probe, calls, live, tuple(expect), own_lm

    def _check_shape(self, shape: dict[str, Any], changes: list[Change], source: str,
                     run_id: str | None) -> None:
        if self.shape_tracker is None:
            return  # a bare predictor: its shape cannot change
        ch = self.shape_tracker.observe(shape, kind="topology", source=source, run_id=run_id,
                                        lineage=self.shape)
        if ch is not None:
            changes.append(ch)


#: id(program) -> its watch, for the runtime in use: keyed by identity, so that programs that define __eq__
#: (and are therefore unhashable) can be watched too; an entry goes away with its program
_WATCHES: PerRuntime[int, ProgramWatch] = PerRuntime()


def existing_watch(program: Any, agent: str, rt: Runtime) -> ProgramWatch | None:
    pw = _WATCHES.values(rt).get(id(program))
    if pw is not None and pw.ref() is program and pw.agent == agent:
        return pw
    return None


def watch_for(program: Any, agent: str, rt: Runtime, *, fresh: bool = False) -> ProgramWatch:
    """The program's watch (``fresh``: a new one, replacing what was kept about the instance)."""
    if not fresh:
        pw = existing_watch(program, agent, rt)
        if pw is not None:
            return pw
    pw = ProgramWatch(program, agent, rt)
    _WATCHES.values(rt)[id(program)] = pw
    return pw


def agent_of(program: Any) -> str | None:
    """The agent a program is watched as (instance mark, then class mark), or ``None``."""
    try:
        agent = vars_of(program).get(MARK)
    except AttributeError:
        return None
    if agent is None:
        agent = getattr(type(program), MARK, None)
    return agent if isinstance(agent, str) else None


def derived_agent(program: Any) -> str:
    return type(program).__name__


def observe_watch(program: Any, agent: str, rt: Runtime, **kw: Any) -> tuple[ProgramWatch | None, list[Change]]:
    """Check the program instance (its edits recorded, a guard's pinned revisions put on it); its watch and the
    changes recorded (``(None, [])`` after an error, which is counted)."""
    try:
        pw = watch_for(program, agent, rt)
        changes = pw.check(program, **kw)
        serial = rt.guard.tick(agent)  # polls operator commands when due
        if serial != pw.guard_serial:  # the agent's guard state moved: put pinned revisions on this instance
            guard.sync(pw, serial)
        return pw, changes
    except Exception as exc:  # noqa: BLE001  # never break the host: counted
        rt.error("dspy", exc)
        return None, []


def observe(program: Any, agent: str, rt: Runtime, **kw: Any) -> list[Change]:
    return observe_watch(program, agent, rt, **kw)[1]


def refresh(program: Any) -> list[Change]:
    """Check a watched program in full now (also in-place edits the cheap check cannot see).

    Returns the changes recorded (source ``runtime``).
    """
    agent = agent_of(program) or derived_agent(program)
    rt = get_runtime()
    if not rt.enabled or is_suppressed():
        return []
    watch_for(program, agent, rt).forget_keys()
    return [c for c in observe(program, agent, rt) if not c.is_baseline]
