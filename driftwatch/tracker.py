"""Trackers: the per-(agent, component) state machine behind every change event.

``observe(state)`` is called on the hot path, once per agent call per component. It compares a cheap
key (``hash()`` of the prompt strings, cached by CPython) with the last one and returns at once when
it has not moved. Only when it moves does the tracker compute the canonical fingerprint, and only
when that differs does it build a change (diff, magnitude, paths) and hand it to the runtime.

The first sighting in a process is checked against the ledger's head for the component: no head
means a *baseline* (stored, not counted as a change); a head with other content means the component
changed while no process watched it (a redeploy, a loaded program), which is a change.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from driftwatch.change import Change, infer_kind, new_id
from driftwatch.revision import canonical_json, changed_paths, cheap_key, id_of, magnitude

if TYPE_CHECKING:
    from driftwatch.runtime import Runtime

__all__ = ["Tracker"]

_UNSET = object()


class Tracker:
    """Follows one component of one agent through its revisions."""

    __slots__ = ("_key", "_lock", "agent", "component", "revision_id", "runtime", "state")

    def __init__(self, runtime: Runtime, agent: str, component: str) -> None:
        self.runtime = runtime
        self.agent = agent
        self.component = component
        self.revision_id: str | None = None
        self.state: Any = None
        self._key: Any = _UNSET
        self._lock = threading.Lock()

    def observe(self, state: Any, *, key: Any = None, kind: str | Callable[[tuple[str, ...]], str] | None = None,
                source: str = "runtime", run_id: str | None = None, node: str | None = None,
                attributes: dict[str, Any] | None = None) -> Change | None:
        """Report the component's current state; returns the change when it moved, else ``None``.

        ``key`` is a caller-computed cheap key (identity tuple, length...) standing for ``state``;
        without one, :func:`~driftwatch.revision.cheap_key` of the state is used. ``state`` may be a
        zero-argument callable, evaluated only when the key moved.
        """
        if key is None:
            if callable(state):
                state = state()
            key = cheap_key(state)
        if key == self._key:
            return None
        with self._lock:
            if key == self._key:
                return None
            if callable(state):
                state = state()
            text = canonical_json(state)
            rid = id_of(text)
            if rid == self.revision_id:
                self._key = key
                return None
            before_id, before_state = self.revision_id, self.state
            if before_id is None:
                before_id = self.runtime.ledger_head(self.agent, self.component)
                if before_id == rid:
                    self._adopt(key, rid, text)
                    return None
                if before_id is not None:
                    before_state = self.runtime.ledger_state(before_id)
            after_state = json.loads(text)  # a private copy: the caller may mutate its object later
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
            self._key = key
            self.revision_id = rid
            self.state = after_state
            return self.runtime.emit_change(change)

    def _adopt(self, key: Any, rid: str, text: str) -> None:
        self._key = key
        self.revision_id = rid
        self.state = json.loads(text)
        self.runtime.note_revision(self.agent, self.component, rid)

    def reset(self) -> None:
        """Forget the cheap key, so the next observation is fingerprinted in full."""
        self._key = _UNSET
