"""The shape of a program (which predictor sits at which path, and a cheap probe of it) and the state of a
whole program: :func:`program_state`, its content-addressed snapshot and :func:`program_revision`."""

from __future__ import annotations

from collections.abc import Mapping
from operator import is_not
from typing import Any

from dspy.predict.parameter import Parameter
from dspy.predict.predict import Predict
from dspy.primitives.module import Module

from driftwatch.integrations.dspy._state import is_flex, state_of, vars_of
from driftwatch.revision import combine, fingerprint

__all__ = ["LEGACY_ROOT", "MARK", "PROGRAM_COMPONENT", "components", "is_shape_state", "manifest_of",
           "program_revision", "program_snapshot", "program_state", "same_shape", "scan", "shape_component",
           "shape_state", "snapshot_of"]

#: the name earlier driftwatch versions gave the component that holds a program's shape (now: the program's class name,
#: :func:`shape_component`); kept so that revisions recorded under it can still be restored
PROGRAM_COMPONENT = "<program>"
#: the name earlier driftwatch versions gave a predictor that is the program itself (now: its class name)
LEGACY_ROOT = "self"
#: instance or class attribute: the agent a program (or an optimizer) is watched as
MARK = "_driftwatch_agent"

_CONTAINER_LIMIT = 64
_SKIP = frozenset({
    "history", "callbacks", "candidate_programs", "mb_candidate_programs", "trial_logs", "detailed_results",
    "results_best", "results_latest", MARK, "demos", "traces", "train",
})
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None), bytes})


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def scan(program: Any) -> tuple[list[tuple[str, Any]], list[Any]]:
    """Every predictor and Flex in ``program`` with its path, in DSPy's naming (compiled parts included),
    and a *probe* of the program's shape: for each non-leaf module, the identities of its attribute
    values and of the items of its small lists and dicts (see :func:`same_shape`)."""
    found: list[tuple[str, Any]] = []
    probe: list[Any] = []
    seen: set[int] = set()

    def walk(path: str, mod: Any) -> None:
        if id(mod) in seen:
            return
        seen.add(id(mod))
        if isinstance(mod, Parameter):
            if isinstance(mod, Predict) or is_flex(mod):
                found.append((path or type(mod).__name__, mod))  # a bare predictor: its class name
            return
        d = vars_of(mod)
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
                        containers.append((value, None, tuple(value)))
                    for i, item in enumerate(value):
                        if isinstance(item, Module):
                            walk(_join(path, f"{name}[{i}]"), item)
            elif type(value) is dict and len(value) <= _CONTAINER_LIMIT:
                containers.append((value, tuple(value), tuple(value.values())))
                for key, item in value.items():
                    if isinstance(item, Module):
                        walk(_join(path, f"{name}['{key}']"), item)
        probe.append((d, values, containers))

    walk("", program)
    return found, probe


def same_shape(probe: list[Any]) -> bool:
    """Whether no module, list or dict looked at by :func:`scan` has changed its contents since.

    Identity only (~0.2 µs per module): the probe holds the values (and a dict's keys) it saw, in order.
    """
    for d, values, containers in probe:
        if len(d) != len(values) or any(map(is_not, d.values(), values)):
            return False
        for container, keys, items in containers:
            if len(container) != len(items):
                return False
            if keys is None:  # a list
                if any(map(is_not, container, items)):
                    return False
            elif any(map(is_not, container, keys)) or any(map(is_not, container.values(), items)):
                return False
    return True


def components(program: Any) -> list[tuple[str, Any]]:
    """Every predictor and Flex in ``program`` with its path."""
    return scan(program)[0]


def shape_state(found: list[tuple[str, Any]]) -> dict[str, Any]:
    return {"predictors": {path: type(obj).__qualname__ for path, obj in found}}


def is_shape_state(state: Any) -> bool:
    """Whether a recorded state is a program's shape (``{"predictors": {path: class}}``)."""
    return isinstance(state, Mapping) and set(state) == {"predictors"} and isinstance(state["predictors"], Mapping)


def shape_component(program: Any, found: list[tuple[str, Any]] | None = None) -> str | None:
    """The component that holds ``program``'s shape: the program's class name (``SimplifiedBaleen``), or
    ``<Class>.program`` if a predictor path has that name; ``None`` for a program that is itself a predictor
    (its shape cannot change)."""
    if isinstance(program, Parameter):
        return None
    name = type(program).__name__
    paths = {path for path, _ in (components(program) if found is None else found)}
    return name if name not in paths else f"{name}.program"


def program_state(program: Any) -> dict[str, Any]:
    """The recorded state of every component of ``program``: ``{component: state}`` (JSON-able).

    ``fingerprint(program_state(p)[c])`` is the revision id driftwatch records for component ``c``.
    """
    if not isinstance(program, Module):
        raise TypeError(f"program_state(program=...): expected a dspy.Module, got {type(program).__name__}")
    found = components(program)
    states = {path: state_of(obj) for path, obj in found}
    shape = shape_component(program, found)
    if shape is not None:
        states[shape] = shape_state(found)
    return states


#: the one key of a program revision's state: ``{"components": {component: revision id}}``
_PROGRAM_KEY = "components"


def program_snapshot(program: Any) -> tuple[str, dict[str, Any]]:
    """A whole program's revision id and every revision it is made of, ``{revision_id: state}``: each
    component's state, and the program revision itself, whose state names its components' revisions
    (``{"components": {component: revision id}}``) and whose id is :func:`~driftwatch.revision.combine`
    of them (what the program's ``gen_ai.agent.version`` is)."""
    return snapshot_of(program_state(program))


def snapshot_of(states: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
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
    revision ids. An optimizer candidate is recorded under this id (see
    :func:`~driftwatch.integrations.dspy.candidates`), and a program watched alone reports it as its agent
    version (``gen_ai.agent.version``)."""
    if not isinstance(program, Module):
        raise TypeError(f"program_revision(program=...): expected a dspy.Module, got {type(program).__name__}")
    return program_snapshot(program)[0]


def manifest_of(state: Any) -> dict[str, str] | None:
    """The ``{component: revision id}`` of a program revision's state; ``None`` for a component's state."""
    if isinstance(state, Mapping) and len(state) == 1 and isinstance(state.get(_PROGRAM_KEY), Mapping):
        return dict(state[_PROGRAM_KEY])
    return None
