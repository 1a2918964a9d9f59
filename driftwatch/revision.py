"""Revisions: content-addressed snapshots of one component's prompt / scaffolding state.

A state is a ``str`` or a JSON-able value (dicts, lists, numbers, ``None``). Its canonical form is
JSON with sorted keys and no whitespace; the revision id is the blake2b-128 of that text. Two equal
states always have the same id, whichever process or machine computed it.

Whatever else a state holds is recorded as a deterministic stand-in, never raised and never run
(:func:`jsonable`: the one conversion, also the integrations'): non-finite numbers, bytes, lone
surrogates, cycles, containers nested deeper than :data:`MAX_STATE_DEPTH`, functions (by qualified name,
signature and docstring; never called) and any other object (by type and ``repr``, memory addresses
removed). Each substitution is reported by reason (:data:`SUBSTITUTIONS`).

An agent's version (``gen_ai.agent.version``) is :func:`combine` of its components' revision ids: an
order-independent sum of per-component hashes, kept up to date in O(1) per changed component by
:class:`CombinedRevision`.

This module also holds the pure functions on pairs of states: the paths that differ, the
normalized edit distance (the change *magnitude*), and a unified diff for people.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import hashlib
import inspect
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_STATE_DEPTH",
    "SUBSTITUTIONS",
    "CombinedRevision",
    "Diff",
    "Revision",
    "canonical",
    "canonical_json",
    "changed_paths",
    "cheap_key",
    "combine",
    "fingerprint",
    "head",
    "id_of",
    "jsonable",
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


#: containers nested deeper than this (below the state itself) are recorded as a stand-in
MAX_STATE_DEPTH = 64
#: an object's ``repr`` longer than this is cut (its blake2b is kept, so a change past the cut still shows)
MAX_REPR_CHARS = 2_000
#: the reasons a value is recorded as a stand-in (``driftwatch_state_substitutions_total{reason}``)
SUBSTITUTIONS: tuple[str, ...] = ("non_finite", "big_int", "bytes", "surrogate", "key", "cycle", "depth",
                                  "function", "object", "unreadable")

_ADDRESS = re.compile(r"\s*\bat 0x[0-9a-fA-F]+|\b0x[0-9a-fA-F]{6,}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BIG_INT_BITS = 14_000  # about 4,200 decimal digits: below the interpreter's int-to-str limit (4,300)


def _short_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _note(found: dict[str, int] | None, reason: str) -> None:
    if found is not None:
        found[reason] = found.get(reason, 0) + 1


def _text(value: str, found: dict[str, int] | None) -> str:
    """A string as it can be stored: lone surrogates (not encodable as UTF-8) as ``\\udcff`` escapes."""
    if value.isascii() or _SURROGATE.search(value) is None:
        return value if type(value) is str else str.__str__(value)
    _note(found, "surrogate")
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _type_name(value: Any) -> str:
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    name = getattr(cls, "__qualname__", cls.__name__)
    return name if module in ("builtins", "") else f"{module}.{name}"


def _safe_repr(value: Any) -> str | None:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001  # an object whose repr raises is named by its type alone
        return None
    if not isinstance(text, str):
        return None
    text = _ADDRESS.sub("", text)
    if len(text) > MAX_REPR_CHARS:
        text = f"{text[:MAX_REPR_CHARS]}… ({len(text)} chars, blake2b {_short_hash(_text(text, None).encode())})"
    return text


def _is_function(value: Any) -> bool:
    return inspect.isroutine(value) or isinstance(value, functools.partial)


class _Bare(str):
    """An annotation kept as text (``from __future__ import annotations``), shown without quotes."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def _bare_annotations(sig: inspect.Signature) -> inspect.Signature:
    """The same signature whether or not its module postpones annotations (never evaluates them)."""
    def bare(annotation: Any) -> Any:
        return _Bare(annotation) if isinstance(annotation, str) else annotation
    params = [p.replace(annotation=bare(p.annotation)) for p in sig.parameters.values()]
    return sig.replace(parameters=params, return_annotation=bare(sig.return_annotation))


def _function(value: Any) -> dict[str, str]:
    """A function by qualified name, signature and docstring (it is never called)."""
    target = value.func if isinstance(value, functools.partial) else value
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or _type_name(target)
    try:
        signature = _ADDRESS.sub("", str(_bare_annotations(inspect.signature(value))))
    except (TypeError, ValueError):  # builtins without a signature
        signature = "(...)"
    try:
        doc = inspect.getdoc(target) or ""
    except Exception:  # noqa: BLE001  # a broken __doc__ descriptor: no docstring
        doc = ""
    qualified = f"{module}.{name}" if module else str(name)
    if isinstance(value, functools.partial):
        qualified = f"functools.partial({qualified})"
    return {"function": _text(qualified, None),
            "signature": _text(signature, None), "doc": _text(doc, None)}


def jsonable(value: Any, found: dict[str, int] | None = None, *, max_depth: int = MAX_STATE_DEPTH,
             opaque: bool = False) -> Any:
    """``value`` as a JSON value (``None``, ``bool``, ``int``, finite ``float``, ``str``, lists, string-keyed
    dicts): a private copy that is the same in every process, and that never raises.

    Stand-ins, each counted in ``found`` (``{reason: n}``, see :data:`SUBSTITUTIONS`):

    - NaN and infinities: ``"nan"``, ``"inf"``, ``"-inf"`` (``non_finite``); an int too large to print:
      ``"<int N bits blake2b …>"`` (``big_int``);
    - ``bytes`` / ``bytearray`` / ``memoryview``: ``"<bytes N blake2b …>"`` (``bytes``);
    - a string with lone surrogates (not UTF-8): those as ``\\udcff`` escapes (``surrogate``);
    - a dict key that is not a string: ``null``/``true``/numbers as JSON writes them, else the key's own
      stand-in (``key``);
    - a container inside itself: ``"<cycle TypeName>"`` (``cycle``); a container nested deeper than
      ``max_depth``: ``"<TypeName nested deeper than N>"`` (``depth``);
    - a function, method or ``functools.partial``: ``{"function": "module.qualname", "signature": "(…)",
      "doc": "…"}`` — never called (``function``); a class: ``"<class module.Qualname>"`` (``function``);
    - any other object: ``"<module.Type repr>"``, its ``repr`` with memory addresses removed (and cut at
      :data:`MAX_REPR_CHARS`); an object whose ``repr`` raises: ``"<module.Type>"`` (``object``). A generator
      or iterator is never iterated. With ``opaque=True`` (what the framework integrations use: framework
      objects' reprs may carry secrets or per-process counters) always ``"<module.Type>"``.

    Faithful conversions are not counted: tuples (lists), sets (lists sorted by their JSON), enum members
    (``"Type.NAME"``), dataclass instances (their fields), objects with ``model_dump()`` (pydantic) or
    ``toDict()`` (``dspy.Example``).
    """
    try:
        return _render(value, 0, set(), found, max_depth, opaque)
    except RecursionError:  # the host's own stack was already deep: the whole state as one stand-in
        _note(found, "unreadable")
        return f"<{_type_name(value)}: too deep to read here>"


def _render(value: Any, depth: int, path: set[int], found: dict[str, int] | None, max_depth: int,
            opaque: bool) -> Any:
    cls = type(value)
    if cls is str:
        return _text(value, found)
    if value is None or cls is bool:
        return value
    if cls is int:
        return _int(value, found)
    if cls is float:
        return value if math.isfinite(value) else _non_finite(value, found)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):  # StrEnum members too: by value, as JSON writes them
        return _text(str.__str__(value), found)
    if isinstance(value, int):  # IntEnum members too
        return _int(int(value), found)
    if isinstance(value, float):
        value = float(value)
        return value if math.isfinite(value) else _non_finite(value, found)
    if isinstance(value, enum.Enum):
        return f"{cls.__qualname__}.{value.name}"
    if isinstance(value, bytes | bytearray | memoryview):
        _note(found, "bytes")
        data = bytes(value)
        return f"<{cls.__name__} {len(data)} blake2b {_short_hash(data)}>"
    if isinstance(value, type):
        _note(found, "function")
        return f"<class {_text(_class_name(value), None)}>"
    if _is_function(value):
        _note(found, "function")
        return _function(value)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if depth >= max_depth:
            _note(found, "depth")
            return f"<{_type_name(value)} nested deeper than {max_depth}>"
        key = id(value)
        if key in path:
            _note(found, "cycle")
            return f"<cycle {_type_name(value)}>"
        path.add(key)
        try:
            return _container(value, depth + 1, path, found, max_depth, opaque)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001  # a container that cannot be read (a raising __iter__ …): its type
            _note(found, "unreadable")
            return f"<{_type_name(value)}>"
        finally:
            path.discard(key)
    if dataclasses.is_dataclass(value):
        return _render({f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)},
                       depth, path, found, max_depth, opaque)
    for method, kwargs in (("model_dump", {"mode": "json"}), ("toDict", {})):  # pydantic, dspy.Example
        dump = getattr(value, method, None)
        if callable(dump):
            try:
                dumped = dump(**kwargs)
            except Exception:  # noqa: BLE001  # an object that cannot dump itself: by its repr below
                continue
            return _render(dumped, depth, path, found, max_depth, opaque)
    _note(found, "object")
    text = None if opaque else _safe_repr(value)
    return f"<{_type_name(value)}>" if text is None else _text(f"<{_type_name(value)} {text}>", None)


def _class_name(cls: type) -> str:
    return f"{getattr(cls, '__module__', '')}.{getattr(cls, '__qualname__', cls.__name__)}"


def _int(value: int, found: dict[str, int] | None) -> Any:
    if -(1 << _BIG_INT_BITS) < value < (1 << _BIG_INT_BITS):
        return value
    _note(found, "big_int")
    data = value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)
    return f"<int {value.bit_length()} bits blake2b {_short_hash(data)}>"


def _non_finite(value: float, found: dict[str, int] | None) -> str:
    _note(found, "non_finite")
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


_KEY_WORDS = {None: "null", True: "true", False: "false"}


def _container(value: Any, depth: int, path: set[int], found: dict[str, int] | None, max_depth: int,
               opaque: bool) -> Any:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        clashes: dict[str, list[Any]] = {}
        for k, v in value.items():
            key = _text(k, found) if type(k) is str else _key(k, found, opaque)
            rendered = _render(v, depth, path, found, max_depth, opaque)
            if key in out:
                clashes.setdefault(key, [out[key]]).append(rendered)
            else:
                out[key] = rendered
        for key, values in clashes.items():  # keys that read alike (1 and "1"): "1", "1 (2)"… by value
            _note(found, "key")
            values.sort(key=_dumps)
            out[key] = values[0]
            n = 2
            for rendered in values[1:]:
                while f"{key} ({n})" in out:
                    n += 1
                out[f"{key} ({n})"] = rendered
        return out
    if isinstance(value, list | tuple):
        return [_render(v, depth, path, found, max_depth, opaque) for v in value]
    items = [_render(v, depth, path, found, max_depth, opaque) for v in value]  # a set: sorted by its JSON
    return sorted(items, key=_dumps)


def _key(k: Any, found: dict[str, int] | None, opaque: bool) -> str:
    if k is None or isinstance(k, bool):
        return _KEY_WORDS[k]
    if isinstance(k, int) and not isinstance(k, enum.Enum):
        rendered = _int(int(k), found)
        return rendered if isinstance(rendered, str) else str(rendered)
    if isinstance(k, float) and math.isfinite(k):
        return repr(float(k))
    if isinstance(k, str):
        return _text(str.__str__(k), found)
    _note(found, "key")
    rendered = _render(k, 0, set(), found, 1, opaque)
    return rendered if isinstance(rendered, str) else _dumps(rendered)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical(state: Any, found: dict[str, int] | None = None) -> tuple[Any, str]:
    """A state's :func:`jsonable` copy and its canonical text (JSON with sorted keys, no whitespace); never
    raises. ``found`` collects the stand-ins used, by reason."""
    value = jsonable(state, found)
    return value, _dumps(value)


def canonical_json(state: Any, found: dict[str, int] | None = None) -> str:
    """The canonical text of a state (see :func:`canonical`); never raises."""
    return canonical(state, found)[1]


def fingerprint(state: Any) -> str:
    """The revision id of a state: blake2b-128 of its canonical JSON, 32 hex characters."""
    return id_of(canonical_json(state))


def id_of(canonical: str) -> str:
    """The revision id of an already canonical JSON text."""
    return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()


_MOD = 1 << 256


def _component_hash(component: str, revision_id: str) -> int:
    data = f"{component}\x00{revision_id}".encode("utf-8", "backslashreplace")
    return int.from_bytes(hashlib.blake2b(data, digest_size=32).digest(), "big")


def _combined_id(total: int) -> str:
    return hashlib.blake2b(total.to_bytes(32, "big"), digest_size=8).hexdigest()


def combine(revisions: Mapping[str, str]) -> str:
    """One id for a set of component revisions (an agent's ``gen_ai.agent.version``, a DSPy program's
    revision): the blake2b-64 of the sum (mod 2**256) of each component's keyed blake2b-256. It depends on
    the set only — not on order, process or machine — and :class:`CombinedRevision` keeps it in O(1) per
    changed component."""
    total = 0
    for component, revision_id in revisions.items():
        total += _component_hash(component, revision_id)
    return _combined_id(total % _MOD)


class CombinedRevision:
    """An agent's component revisions and their :func:`combine`, updated in O(1) per changed component."""

    __slots__ = ("_total", "id", "revisions")

    def __init__(self) -> None:
        self.revisions: dict[str, str] = {}
        self._total = 0
        self.id = _combined_id(0)

    def set(self, component: str, revision_id: str) -> str:
        """Point ``component`` at ``revision_id``; returns the new combined id."""
        old = self.revisions.get(component)
        if old == revision_id:
            return self.id
        total = self._total
        if old is not None:
            total -= _component_hash(component, old)
        total += _component_hash(component, revision_id)
        self._total = total % _MOD
        self.revisions[component] = revision_id
        self.id = _combined_id(self._total)
        return self.id


def cheap_key(state: Any) -> int:
    """A process-local hash of a state, for the per-call cheap check; never raises.

    Built from ``hash()`` of strings (cached by CPython on the string object), so re-checking an
    unchanged prompt costs well under a microsecond. Equal keys mean "probably unchanged"; the
    full fingerprint settles it when the key moves. It follows the stand-in rules of :func:`jsonable`
    (cycles, depth, non-finite numbers), so an unchanged state keeps its key.
    """
    if type(state) is str:
        return hash(state)
    try:
        return hash(_freeze(state, 0, set()))
    except RecursionError:
        return hash(("deep", id(state)))


def _freeze(value: Any, depth: int, path: set[int]) -> Any:
    cls = type(value)
    if cls is str or cls is int or cls is bool or value is None:
        return value
    if cls is float:
        return value if value == value else "nan"  # NaN hashes by identity: one key for every NaN
    if isinstance(value, str | int):
        return (cls, str.__str__(value) if isinstance(value, str) else int(value))
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if depth >= MAX_STATE_DEPTH:
            return ("deep", cls)
        key = id(value)
        if key in path:
            return ("cycle", cls)
        path.add(key)
        try:
            if isinstance(value, Mapping):
                return ("d", tuple((_freeze_key(k), _freeze(v, depth + 1, path)) for k, v in value.items()))
            if isinstance(value, set | frozenset):
                return ("s", frozenset(_freeze(v, depth + 1, path) for v in value))
            return ("l", tuple(_freeze(v, depth + 1, path) for v in value))
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001  # unreadable: recorded by its type (see jsonable)
            return ("u", cls)
        finally:
            path.discard(key)
    if isinstance(value, bytes | bytearray | memoryview):
        return ("b", bytes(value))
    if isinstance(value, float):
        return ("f", repr(float(value)))
    try:  # process-local: the address stays in, so two objects that read alike keep two keys
        text = repr(value)
    except Exception:  # noqa: BLE001  # recorded by its type (see jsonable)
        text = None
    return ("r", cls, id(value) if text is None else text)


def _freeze_key(k: Any) -> Any:
    try:
        hash(k)
    except TypeError:
        return ("r", type(k), id(k))
    return k


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

    Character-level on the readable text, line-level when the part that differs is longer than 20,000
    characters (so a change on a huge state stays cheap). The common head and tail are matched first and only the
    part between them is compared (``difflib`` on a whole long prompt that repeats itself is quadratic: ~0.3 s for
    4 KB). Computed only when a change is recorded.
    """
    a, b = render(before), render(after)
    if a == b:
        return 0.0
    if not a or not b:
        return 1.0
    total = len(a) + len(b)
    lead = _common_prefix(a, b)
    tail = _common_prefix(a[lead:][::-1], b[lead:][::-1])
    ma, mb = a[lead:len(a) - tail], b[lead:len(b) - tail]
    matched = lead + tail
    if ma and mb:
        if max(len(ma), len(mb)) > _CHAR_DIFF_LIMIT:
            la, lb = ma.splitlines(keepends=True), mb.splitlines(keepends=True)
            blocks = difflib.SequenceMatcher(None, la, lb, autojunk=False).get_matching_blocks()
            matched += sum(len("".join(la[m.a:m.a + m.size])) for m in blocks)
        else:
            blocks = difflib.SequenceMatcher(None, ma, mb, autojunk=False).get_matching_blocks()
            matched += sum(m.size for m in blocks)
    ratio = 2.0 * matched / total
    return round(max(0.0, min(1.0, 1.0 - ratio)), 6)


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of ``a`` and ``b`` (binary search on slices compared in C)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True, slots=True)
class Diff:
    """A diff as it leaves the process (content capture): ``text``, cut at a limit when the whole diff (``chars``
    characters) is longer; a cut text ends with a line that says so."""

    text: str
    chars: int
    truncated: bool = False

    @classmethod
    def cut(cls, text: str, limit: int, total: int | None = None) -> Diff:
        """``text`` whole, or its first ``limit`` characters (at a line end when there is one) and a note that says
        so. ``total``: the size of the whole diff when ``text`` is already a cut of it (see :func:`head`)."""
        total = len(text) if total is None else total
        if len(text) <= limit and total <= len(text):
            return cls(text, total)
        text = head(text, limit)
        return cls(f"{text}… diff cut: {len(text):,} of {total:,} characters shown (max_diff_chars)\n", total,
                   truncated=True)


def head(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text``, ending at a line end when one is in the second half."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = cut.rfind("\n")
    return cut[:end + 1] if end > limit // 2 else cut + "\n"


def unified_diff(before: Any, after: Any, from_label: str = "before", to_label: str = "after") -> str:
    """A unified diff of the readable text of two states."""
    a = render(before).splitlines(keepends=True) if before is not None else []
    b = render(after).splitlines(keepends=True)
    lines = list(difflib.unified_diff(a, b, fromfile=from_label, tofile=to_label))
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
