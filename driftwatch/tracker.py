"""Trackers: the per-(agent, component) state machine behind every change event.

``observe(state)`` is called on the hot path, once per agent call per component. It compares a cheap
key (``hash()`` of the prompt strings, cached by CPython) with the last one and returns at once when
it has not moved. Only when it moves does the tracker compute the canonical fingerprint, and only
when that differs does it build a change (diff, magnitude, paths) and hand it to its host (the runtime).

The first sighting in a process is checked against the ledger's head for the component: no head
means a *baseline* (stored, not counted as a change); a head with other content means the component
changed while no process watched it (a redeploy, a loaded program), which is a change.

A change a guard blocks or holds (:attr:`~driftwatch.change.Change.status`) leaves the tracker at its
*before* revision, with the observed key remembered, so that the same attempt is recorded once; the hook
enforces the before revision (see ``docs/guardrails.md``).

A tracker knows nothing of the runtime: it is given a :class:`TrackerHost` (the ledger reads it needs and
where to send what it finds); the runtime is the host in a watched process.

A state is data: whatever it holds is recorded (:func:`~driftwatch.revision.jsonable`: stand-ins for what JSON
cannot hold, each counted on the change as ``attributes["substitutions"]``), never called and never raised.
A function in a state is recorded by name, signature and docstring. A hook that wants a state computed only
when its cheap key moved passes :class:`Lazy` (``observe(Lazy(read), key=...)``): the one way a tracker runs
code to get a state.

Several live copies of one component (a program instance that keeps serving while its optimized copy
is swapped in, an A/B pair) each observe through their own :class:`Lineage`: the cheap key and the
revision that copy last had. A copy is compared with its *own* last revision, so serving an unchanged
copy never records anything, and a change made to one copy reads "its revision → its new revision".
The tracker's current revision (:attr:`Tracker.revision_id`, the agent version, the ledger head) is
the last one recorded by any copy. A copy seen for the first time is compared with the current
revision, unless another live copy already holds its revision (then it is no change).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from driftwatch.change import Change, infer_kind, new_id
from driftwatch.revision import canonical, changed_paths, cheap_key, id_of, magnitude

__all__ = ["Lazy", "Lineage", "Tracker", "TrackerHost"]


class Lazy:
    """A state computed on demand: ``Tracker.observe(Lazy(read), key=k)`` calls ``read()`` only when the cheap
    key ``k`` moved (without a key, at once). For hooks that know a cheap key of what they watch; a plain
    callable passed as a state is recorded as a function, never called."""

    __slots__ = ("read",)

    def __init__(self, read: Callable[[], Any]) -> None:
        self.read = read


class TrackerHost(Protocol):
    """What a :class:`Tracker` needs from its owner (the runtime)."""

    def ledger_head(self, agent: str, component: str) -> str | None:
        """The component's head revision in the ledger (``None``: never seen, or the ledger is unavailable)."""

    def ledger_state(self, revision_id: str) -> Any:
        """A stored revision's state (``None`` when unknown or unavailable)."""

    def emit_change(self, change: Change) -> Change:
        """Record and export a change (or baseline); returns it as recorded (with trace ids)."""

    def note_revision(self, agent: str, component: str, revision_id: str) -> None:
        """The component is at ``revision_id`` without a change (its ledger head, adopted)."""

_UNSET = object()


class Lineage:
    """One live copy's view of a component: the cheap key, revision and state it last had.

    Pass it to :meth:`Tracker.observe` as ``lineage=`` (one per copy, e.g. per program instance; hold
    it as long as the copy lives). Subclasses may add slots.
    """

    __slots__ = ("__weakref__", "key", "revision_id", "state")

    def __init__(self) -> None:
        self.key: Any = _UNSET
        self.revision_id: str | None = None
        self.state: Any = None

    def inherit(self, parent: Lineage) -> None:
        """Continue ``parent``'s lineage (a copy made from it): its revision, not its cheap key."""
        self.revision_id = parent.revision_id
        self.state = parent.state
        self.key = _UNSET

    def forget_key(self) -> None:
        """Forget the cheap key, so the next observation is fingerprinted in full."""
        self.key = _UNSET


class Tracker:
    """Follows one component of one agent through its revisions."""

    __slots__ = ("__weakref__", "_key", "_lineages", "_lock", "agent", "component", "host", "revision_id", "state")

    def __init__(self, host: TrackerHost, agent: str, component: str) -> None:
        self.host = host
        self.agent = agent
        self.component = component
        self.revision_id: str | None = None
        self.state: Any = None
        self._key: Any = _UNSET
        self._lock = threading.Lock()
        self._lineages: weakref.WeakSet[Lineage] = weakref.WeakSet()

    def observe(self, state: Any, *, key: Any = None, kind: str | Callable[[tuple[str, ...]], str] | None = None,
                source: str = "runtime", run_id: str | None = None, node: str | None = None,
                attributes: dict[str, Any] | None = None, lineage: Lineage | None = None) -> Change | None:
        """Report the component's current state; returns the change when it moved, else ``None``.

        ``key`` is a caller-computed cheap key (identity tuple, length...) standing for ``state``;
        without one, :func:`~driftwatch.revision.cheap_key` of the state is used. ``state`` may be a
        :class:`Lazy`, read only when the key moved. ``lineage``: the live copy that is observed (see
        :class:`Lineage`); without one, the state is compared with the current revision.
        """
        if key is None:
            if type(state) is Lazy:
                state = state.read()
            key = cheap_key(state)
        if key == (self._key if lineage is None else lineage.key):
            return None
        with self._lock:
            if key == (self._key if lineage is None else lineage.key):
                return None
            if type(state) is Lazy:
                state = state.read()
            found: dict[str, int] = {}
            value, text = canonical(state, found)  # value: a private copy (the caller may mutate its object)
            rid = id_of(text)
            before_id, before_state = self.revision_id, self.state
            if lineage is not None:
                if lineage.revision_id is not None:
                    before_id, before_state = lineage.revision_id, lineage.state
                elif rid != before_id:
                    live = self._live(rid)
                    if live is not None:  # another live copy holds this revision: not a change
                        self._hold(lineage, key, rid, live.state)
                        return None
            if rid == before_id:
                self._hold(lineage, key, rid, before_state)
                return None
            if before_id is None:
                before_id = self.host.ledger_head(self.agent, self.component)
                if before_id == rid:
                    self._adopt(key, rid, value, lineage)
                    return None
                if before_id is not None:
                    before_state = self.host.ledger_state(before_id)
            after_state = value
            if before_id is None:
                paths: tuple[str, ...] = ()
                mag = 0.0
            else:
                paths = changed_paths(before_state, after_state)
                mag = magnitude(before_state, after_state) if before_state is not None else 1.0
            if callable(kind):
                kind = kind(paths)
            change = Change(
                id=new_id(), agent=self.agent, component=self.component,
                kind=kind or (infer_kind(paths) if paths else "custom"), source=source,
                before_id=before_id, after_id=rid, magnitude=mag, paths=paths, timestamp=time.time(),
                before_state=before_state, after_state=after_state, run_id=run_id, node=node,
                attributes=dict(attributes or {}),
            )
            if found:  # what JSON could not hold, by reason (the runtime counts it)
                change.attributes["substitutions"] = found
            recorded = self.host.emit_change(change)
            if not recorded.in_effect:  # blocked or held by a guard: the component keeps serving ``before``
                self._hold(lineage, key, before_id, before_state)  # the same attempt is not decided twice
                if self.revision_id is None and before_id is not None:  # a first sighting, refused: the head serves
                    self.revision_id, self.state = before_id, before_state
                    self.host.note_revision(self.agent, self.component, before_id)
                return recorded
            if lineage is not None:
                self._key = _UNSET  # observers without a lineage compare with the new current revision
            self._hold(lineage, key, rid, after_state)
            self.revision_id = rid
            self.state = after_state
            return recorded

    def _live(self, rid: str) -> Lineage | None:
        for other in list(self._lineages):
            if other.revision_id == rid:
                return other
        return None

    def _hold(self, lineage: Lineage | None, key: Any, rid: str, state: Any) -> None:
        """Remember ``key`` as seen: the tracker's own (no lineage), or the copy's, with its revision."""
        if lineage is None:
            self._key = key
            return
        lineage.key = key
        lineage.revision_id = rid
        lineage.state = state
        self._lineages.add(lineage)

    def _adopt(self, key: Any, rid: str, value: Any, lineage: Lineage | None = None) -> None:
        self.revision_id = rid
        self.state = value
        self._hold(lineage, key, rid, self.state)
        self.host.note_revision(self.agent, self.component, rid)

    def reset(self) -> None:
        """Forget the cheap key, so the next observation is fingerprinted in full."""
        self._key = _UNSET

    def serve(self, revision_id: str, state: Any) -> None:
        """The component serves ``revision_id`` now by a guard's doing (a rollback, an approval): no change is
        recorded; the next observation is fingerprinted in full and compared with it."""
        with self._lock:
            self.revision_id = revision_id
            self.state = state
            self._key = _UNSET
