"""Revisions: content-addressed snapshots of one component's prompt / scaffolding state.

A state is a ``str`` or a JSON-able value (dicts, lists, numbers, ``None``). Its canonical form is
JSON with sorted keys and no whitespace; the revision id is the blake2b-128 of that text. Two equal
states always have the same id, whichever process or machine computed it.

This module also holds the pure functions on pairs of states: the paths that differ, the
normalized edit distance (the change *magnitude*), and a unified diff for people.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Revision",
    "canonical_json",
    "changed_paths",
    "cheap_key",
    "combine",
    "fingerprint",
    "id_of",
    "magnitude",
    "render",
    "unified_diff",
]

#: above this many characters, the magnitude is computed on lines instead of characters
_CHAR_DIFF_LIMIT = 20_000


@dataclass(frozen=True, slots=True)
class Revision:
    """One stored snapshot. ``parent`` is the revision it was first derived from (``None`` for a baseline)."""

    id: str
    state: Any
    parent: str | None = None
    created_at: float = 0.0


def _check(value: Any, path: str) -> None:
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"state at {path} is {value!r}: only finite numbers can be recorded")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"state at {path} has a {type(k).__name__} key {k!r}: keys must be str")
            _check(v, f"{path}.{k}")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check(v, f"{path}[{i}]")
        return
    raise TypeError(
        f"state at {path} is a {type(value).__name__}: a state must be a str or JSON-able "
        "(dict with str keys, list, str, number, bool, None)"
    )


def canonical_json(state: Any) -> str:
    """The canonical text of a state; ``TypeError``/``ValueError`` naming the offending path."""
    try:
        return json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        _check(state, "$")
        raise


def fingerprint(state: Any) -> str:
    """The revision id of a state: blake2b-128 of its canonical JSON, 32 hex characters."""
    return id_of(canonical_json(state))


def id_of(canonical: str) -> str:
    """The revision id of an already canonical JSON text."""
    return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()


def combine(revisions: dict[str, str]) -> str:
    """One id for a set of component revisions (an agent's ``gen_ai.agent.version``)."""
    text = "\n".join(f"{k}={v}" for k, v in sorted(revisions.items()))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def cheap_key(state: Any) -> int:
    """A process-local hash of a state, for the per-call cheap check.

    Built from ``hash()`` of strings (cached by CPython on the string object), so re-checking an
    unchanged prompt costs well under a microsecond. Equal keys mean "probably unchanged"; the
    full fingerprint settles it when the key moves.
    """
    if isinstance(state, str):
        return hash(state)
    return hash(_freeze(state))


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return ("d", tuple(sorted((k, _freeze(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("l", tuple(_freeze(v) for v in value))
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return ("r", repr(value))


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{path}.{k}", out)
    elif isinstance(value, list | tuple) and value:
        for i, v in enumerate(value):
            _flatten(v, f"{path}[{i}]", out)
    else:
        out[path] = value


def changed_paths(before: Any, after: Any, *, depth: int = 2) -> tuple[str, ...]:
    """Sorted JSONPath-style paths (``$``, ``$.tools``, ``$.demos[2]``) whose values differ.

    Paths are cut at ``depth`` levels below the root so that a rewritten demo reads ``$.demos[2]``
    rather than every field inside it.
    """
    if before == after:
        return ()
    b: dict[str, Any] = {}
    a: dict[str, Any] = {}
    _flatten(before, "$", b)
    _flatten(after, "$", a)
    paths = set()
    for p in b.keys() | a.keys():
        if b.get(p, _MISSING) != a.get(p, _MISSING):
            paths.add(_truncate(p, depth))
    return tuple(sorted(paths))


_MISSING = object()


def _truncate(path: str, depth: int) -> str:
    level = 0
    for i, ch in enumerate(path):
        if ch in ".[" and i > 0:
            level += 1
            if level > depth:
                return path[:i]
    return path


def render(state: Any) -> str:
    """A state as readable text: a string as is, anything else as indented, sorted JSON."""
    if isinstance(state, str):
        return state
    return json.dumps(state, sort_keys=True, indent=2, ensure_ascii=False)


def magnitude(before: Any, after: Any) -> float:
    """Normalized edit distance between two states, in [0, 1] (0 = equal, 1 = nothing in common).

    Character-level on the readable text, line-level when either side is longer than 20,000
    characters (so a change on a huge state stays cheap). Computed only when a change is recorded.
    """
    a, b = render(before), render(after)
    if a == b:
        return 0.0
    if not a or not b:
        return 1.0
    if max(len(a), len(b)) > _CHAR_DIFF_LIMIT:
        sa, sb = a.splitlines(), b.splitlines()
    else:
        sa, sb = a, b  # type: ignore[assignment]  # str and list[str] are both sequences here
    ratio = difflib.SequenceMatcher(None, sa, sb, autojunk=False).ratio()
    return round(max(0.0, min(1.0, 1.0 - ratio)), 6)


def unified_diff(before: Any, after: Any, from_label: str = "before", to_label: str = "after") -> str:
    """A unified diff of the readable text of two states."""
    a = render(before).splitlines(keepends=True) if before is not None else []
    b = render(after).splitlines(keepends=True)
    lines = list(difflib.unified_diff(a, b, fromfile=from_label, tofile=to_label))
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
