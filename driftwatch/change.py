"""Changes: one self-modification of a component, from one revision to the next.

A change names the agent and component, what kind of thing changed, who changed it (source), the
before and after revisions, how much changed (magnitude, 0-1), which paths changed, when, and the
trace it happened in, and what became of it (:data:`STATUSES`: a guard may block it or hold it for
approval). The first sighting of a component is a *baseline* (``before_id is None``),
stored beside the changes but never counted as one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IN_EFFECT", "KINDS", "SOURCES", "STATUSES", "Change", "infer_kind", "new_id"]

#: the bounded set of values of the ``kind`` label
KINDS: tuple[str, ...] = (
    "instructions", "demos", "fields", "lm_config", "system_prompt", "tools",
    "model_params", "topology", "store", "code", "custom",
)
#: well-known sources; an optimizer's class name (``MIPROv2``, ``GEPA`` ...) is a source too
SOURCES: tuple[str, ...] = ("runtime", "agent", "store", "manual", "guard")
#: what became of a change (see ``docs/guardrails.md``): ``applied`` (the default), ``blocked`` (refused by a
#: guard: the component keeps serving its previous revision), ``held`` (waits for ``driftwatch approve``),
#: ``approved`` (was held, now in effect), ``rejected`` (was held, refused)
STATUSES: tuple[str, ...] = ("applied", "blocked", "held", "approved", "rejected")
#: the statuses of a change that is (or was) in effect
IN_EFFECT: frozenset[str] = frozenset({"applied", "approved"})


def new_id() -> str:
    """A new random id (32 hex digits); any 4+ character prefix can name it in the CLI."""
    return os.urandom(16).hex()


# top-level keys of a dict state that name a kind by themselves
_KEY_KINDS = {
    "instructions": "instructions", "instruction": "instructions", "signature": "instructions",
    "demos": "demos", "examples": "demos", "fields": "fields",
    "lm": "lm_config", "config": "lm_config", "lm_config": "lm_config",
    "system_prompt": "system_prompt", "system": "system_prompt", "prompt": "system_prompt",
    "tools": "tools", "model": "model_params", "model_params": "model_params", "settings": "model_params",
    "topology": "topology", "nodes": "topology", "edges": "topology", "code": "code",
}


def infer_kind(paths: tuple[str, ...]) -> str:
    """The kind named by the first changed top-level key that names one, else ``custom``."""
    for p in paths:
        head = p[2:].split(".", 1)[0].split("[", 1)[0] if p.startswith("$.") else ""
        kind = _KEY_KINDS.get(head)
        if kind is not None:
            return kind
    return "custom"


@dataclass(frozen=True, slots=True)
class Change:
    """One recorded transition ``before_id -> after_id`` of a component (or a baseline)."""

    id: str
    agent: str
    component: str
    kind: str
    source: str
    before_id: str | None
    after_id: str
    magnitude: float
    paths: tuple[str, ...]
    timestamp: float
    before_state: Any = None
    after_state: Any = None
    trace_id: str | None = None
    span_id: str | None = None
    run_id: str | None = None
    node: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    #: one of :data:`STATUSES`
    status: str = "applied"

    @property
    def is_baseline(self) -> bool:
        return self.before_id is None

    @property
    def in_effect(self) -> bool:
        """Whether the component serves this change's revision (not blocked, not held, not rejected)."""
        return self.status in IN_EFFECT
