"""What every framework integration shares (private to ``driftwatch.integrations``).

- :func:`jsonable` — a JSON-able, process-independent rendering of framework state (settings, demos,
  store values, tool schemas) for fingerprints;
- :func:`check_versions` / :func:`check_installed` — the one minimum-version check against
  :data:`~driftwatch.integrations.MINIMUM_VERSIONS`;
- :class:`Patches` — the patch registry: patch by owner and attribute, undo in reverse order, inert
  when another tool has wrapped over a patch;
- :class:`PerRuntime` — state that belongs to one runtime (it holds that runtime's trackers), dropped
  when :func:`driftwatch.configure` or :func:`driftwatch.testing.capture` puts another one in place.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from contextlib import suppress
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Generic, TypeVar

from driftwatch.integrations import MINIMUM_VERSIONS, DidNotEnable
from driftwatch.revision import jsonable as _jsonable

__all__ = ["MAX_DEPTH", "Patches", "PerRuntime", "check_installed", "check_versions", "jsonable",
           "parse_version"]

K = TypeVar("K")
V = TypeVar("V")

# -- JSON-able state ---------------------------------------------------------------------------------------

#: containers nested deeper than this are rendered as ``<TypeName>`` (bounded work on any input)
MAX_DEPTH = 8


def jsonable(value: Any) -> Any:
    """``value`` as JSON for a fingerprint: :func:`driftwatch.revision.jsonable` (the one set of rules — NaN as
    ``"nan"``, sets sorted, functions by name, signature and docstring, cycles and bytes as stand-ins …) with
    containers below :data:`MAX_DEPTH` levels cut and every other object named by its type alone
    (``"<module.Type>"``: a framework object's ``repr`` may carry a secret or a per-process counter)."""
    return _jsonable(value, max_depth=MAX_DEPTH, opaque=True)


# -- versions -------------------------------------------------------------------------------------------

_RELEASE = re.compile(r"\s*v?(\d+(?:\.\d+)*)")


def parse_version(text: str) -> tuple[int, ...]:
    """The release numbers of a version string, trailing zeros dropped (so ``1.0 == 1.0.0``):
    ``"3.4.1rc1"`` → ``(3, 4, 1)``, ``"1.0.0.dev0"`` → ``(1,)``, ``"unknown"`` → ``()``."""
    m = _RELEASE.match(text or "")
    parts = [int(p) for p in m.group(1).split(".")] if m else []
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def check_versions(integration: str, extra: str, found: Mapping[str, str | None]) -> None:
    """``DidNotEnable`` with the install command when a package of ``found`` (``{package: version}``,
    ``None`` when unknown) is older than :data:`~driftwatch.integrations.MINIMUM_VERSIONS` says."""
    for package, installed in found.items():
        minimum = MINIMUM_VERSIONS[package]
        if parse_version(installed or "") < parse_version(minimum):
            raise DidNotEnable(f"driftwatch's {integration} integration needs {package}>={minimum} "
                               f"(found {installed or 'unknown'}): pip install 'driftwatch-agents[{extra}]'")


_CHECKED: set[tuple[str, str]] = set()  # (package, minimum) already found new enough


def check_installed(integration: str, extra: str, packages: tuple[str, ...]) -> None:
    """:func:`check_versions` for the installed distributions of ``packages`` (read once per minimum)."""
    todo = [p for p in packages if (p, MINIMUM_VERSIONS[p]) not in _CHECKED]
    if not todo:
        return
    found: dict[str, str | None] = {}
    for package in todo:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    check_versions(integration, extra, found)
    _CHECKED.update((p, MINIMUM_VERSIONS[p]) for p in todo)


# -- the patch registry --------------------------------------------------------------------------------

_MISSING: Any = object()


class Patches:
    """The patches one integration put in place, so that :meth:`undo` can take them back.

    :meth:`patch` replaces ``owner.name`` with ``make(original)`` and records what was there. A
    wrapper reads :attr:`generation` when it is made and passes every call straight through once
    :meth:`undo` has moved it on (``if patches.generation != gen: return original(...)``): a patch that
    another instrumentor (OpenInference, OpenLLMetry) has wrapped since cannot be taken out without
    breaking theirs, so it stays in place, inert. The others are undone in reverse order.
    """

    __slots__ = ("_saved", "generation", "lock")

    def __init__(self) -> None:
        #: the generation of the wrappers in place; :meth:`undo` moves it on, which makes them inert
        self.generation = 0
        self.lock = threading.RLock()
        self._saved: list[tuple[Any, str, Any, Any]] = []  # (owner, name, original or _MISSING, wrapper)

    def __bool__(self) -> bool:
        return bool(self._saved)

    def patch(self, owner: Any, name: str, make: Callable[[Any], Any]) -> Any:
        """Put ``make(original)`` in place of ``owner.name``; returns it.

        ``original`` is the attribute as stored (a ``classmethod`` object, a plain function), found on
        ``owner`` or the first class of its MRO that has it (``None`` when none has).
        """
        with self.lock:
            own = owner.__dict__.get(name, _MISSING)
            original = own if own is not _MISSING else _inherited(owner, name)
            wrapper = make(original)
            self._saved.append((owner, name, own, wrapper))
            setattr(owner, name, wrapper)
            return wrapper

    def patched(self, owner: Any, name: str) -> bool:
        """Whether ``owner.name`` is patched (and not yet undone) by this registry."""
        return any(o is owner and n == name for o, n, _own, _w in self._saved)

    def undo(self) -> None:
        """Take every patch back, the last first; those wrapped over by someone else stay, inert."""
        with self.lock:
            self.generation += 1
            while self._saved:
                owner, name, own, wrapper = self._saved.pop()
                if owner.__dict__.get(name) is not wrapper:
                    continue  # wrapped over by another tool: ours stays, inert (the generation moved on)
                if own is _MISSING:
                    with suppress(AttributeError):
                        delattr(owner, name)
                else:
                    setattr(owner, name, own)


def _inherited(owner: Any, name: str) -> Any:
    for klass in getattr(owner, "__mro__", ())[1:]:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


# -- per-runtime state ----------------------------------------------------------------------------------

class PerRuntime(Generic[K, V]):
    """A dict of values that belong to one runtime (they hold its trackers).

    :meth:`values` hands out the dict of the runtime given, a new empty one when another runtime was
    in use before (``configure()`` or ``driftwatch.testing.capture()`` replaced it).

    ``agent_of(key)``: the agent a key belongs to; when given, the runtime's eviction of an idle agent (past
    ``max_agents``) drops that agent's values too, so per-agent state stays bounded like the runtime's own.
    """

    __slots__ = ("_agent_of", "_lock", "_runtime", "_values")

    def __init__(self, agent_of: Callable[[K], str] | None = None) -> None:
        self._runtime: Any = None
        self._values: dict[K, V] = {}
        self._lock = threading.Lock()
        self._agent_of = agent_of

    def values(self, runtime: Any) -> dict[K, V]:
        if self._runtime is not runtime:
            with self._lock:
                if self._runtime is not runtime:
                    self._values = {}
                    self._runtime = runtime
                    if self._agent_of is not None:
                        runtime.on_evict(self._forget_agent)
        return self._values

    def _forget_agent(self, agent: str) -> None:
        """Drop the values of an evicted agent. Called under the runtime's lock, so it takes no lock of its own
        (:meth:`get` makes values under this one's lock and may take the runtime's): ``list()`` of a dict and
        ``pop`` are atomic."""
        values, agent_of = self._values, self._agent_of
        for key in list(values):
            if agent_of(key) == agent:  # type: ignore[misc]  # set when registered
                values.pop(key, None)

    def get(self, runtime: Any, key: K, make: Callable[[], V]) -> V:
        """The value under ``key`` for ``runtime``, made (once, under a lock) when missing."""
        values = self.values(runtime)
        value = values.get(key)
        if value is None:
            with self._lock:
                value = values.get(key)
                if value is None:
                    value = values[key] = make()
        return value

    def discard(self, key: K, value: V) -> None:
        """Forget ``key`` if it still holds ``value`` (in the dict now in use)."""
        with self._lock:
            if self._values.get(key) is value:
                del self._values[key]
