"""Watching program instances: each instance's own lineage of each component, and the per-call cheap check
that compares it with what that instance last had."""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from driftwatch.change import Change
from driftwatch.integrations._common import PerRuntime
from driftwatch.integrations.dspy import _guard as guard
from driftwatch.integrations.dspy._program import MARK, PROGRAM_COMPONENT, same_shape, scan, shape_state
from driftwatch.integrations.dspy._state import (
    flex_key,
    flex_pins,
    flex_state,
    is_flex,
    kind_of,
    predict_key,
    predict_pins,
    predict_state,
    vars_of,
)
from driftwatch.runtime import Runtime, get_runtime, is_suppressed
from driftwatch.tracker import Lazy, Lineage

__all__ = ["Component", "Cover", "ProgramWatch", "agent_of", "derived_agent", "existing_watch", "observe",
           "refresh", "watch_for"]


class Cover:
    """Which programs are watched: those marked with an agent, or every one (:func:`instrument`)."""

    all = False


class Component(Lineage):
    """One predictor (or Flex) of one program instance, and that instance's lineage of it."""

    __slots__ = ("flex", "obj", "path", "pins", "read", "tracker")

    def __init__(self, path: str, obj: Any, tracker: Any) -> None:
        super().__init__()
        self.path = path
        self.obj = obj
        self.flex = is_flex(obj)
        self.tracker = tracker
        self.pins: Any = None  # the objects whose ids make up ``key``: kept alive, so no id is reused
        self.read = functools.partial(flex_state if self.flex else predict_state, obj)


class ProgramWatch:
    """What driftwatch keeps about one watched program instance (weakly keyed by the instance).

    Each instance has its own lineage per component (:class:`~driftwatch.tracker.Lineage`): its cheap
    keys and the revisions it last had. An instance that serves unchanged records nothing, whatever
    other instances of the same agent (an optimized copy, the other half of an A/B) did meanwhile.
    """

    __slots__ = ("agent", "components", "guard_serial", "inherited", "lock", "probe", "ref", "runtime", "shape",
                 "shape_tracker")

    def __init__(self, program: Any, agent: str, runtime: Runtime) -> None:
        key = id(program)
        #: the program, weakly: its watch is forgotten when it goes
        self.ref: weakref.ref[Any] = weakref.ref(program, lambda _ref: _WATCHES.discard(key, self))
        self.agent = agent
        self.runtime = runtime
        self.probe: list[Any] | None = None
        self.components: list[Component] = []
        self.shape_tracker = runtime.tracker(agent, PROGRAM_COMPONENT)
        self.shape = Lineage()
        #: the lineage a copy starts from (an optimizer's result: the student's), by component
        self.inherited: dict[str, Lineage] = {}
        self.lock = threading.Lock()
        #: the guard state of the agent this instance was last synced with (``_guard.sync``)
        self.guard_serial = 0

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
        changes: list[Change] = []
        probe = self.probe
        new_shape = None
        if probe is None or not same_shape(probe):
            with self.lock:
                found, probe = scan(program)
                self.components = self._rebuild(found)
                self.probe = probe
                new_shape = shape_state(found)
            if not in_order:
                self._check_shape(new_shape, changes, source, run_id)
        components = sorted(self.components, key=lambda c: c.path) if in_order else self.components
        for comp in components:
            d = vars_of(comp.obj)
            obj = comp.obj
            key = flex_key(obj, d) if comp.flex else predict_key(obj, d)
            if key == comp.key:
                continue
            pins = flex_pins(obj, d) if comp.flex else predict_pins(obj, d)
            ch = comp.tracker.observe(Lazy(comp.read), key=key, kind=kind_of, source=source, run_id=run_id,
                                      lineage=comp)
            comp.pins = pins
            if ch is not None:
                changes.append(ch)
        if in_order and new_shape is not None:
            self._check_shape(new_shape, changes, source, run_id)
        if changes and not all(c.in_effect for c in changes):
            guard.enforce(self, changes)  # a guard refused some: this instance keeps its revisions
        return changes

    def _check_shape(self, shape: dict[str, Any], changes: list[Change], source: str,
                     run_id: str | None) -> None:
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


def observe(program: Any, agent: str, rt: Runtime, **kw: Any) -> list[Change]:
    try:
        pw = watch_for(program, agent, rt)
        changes = pw.check(program, **kw)
        serial = rt.guard.tick(agent)  # polls operator commands when due
        if serial != pw.guard_serial:  # the agent's guard state moved: put pinned revisions on this instance
            guard.sync(pw, serial)
        return changes
    except Exception as exc:  # noqa: BLE001  # never break the host: counted
        rt.error("dspy", exc)
        return []


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
