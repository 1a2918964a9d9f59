"""The state of one predictor or ``dspy.Flex``, as JSON, its cheap identity key, and the kind of a change."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from operator import is_not
from typing import Any

from driftwatch.integrations._common import jsonable

try:  # experimental in DSPy 3.3+; GEPA rewrites its code
    from dspy.predict.flex.flex import Flex
except ImportError:  # pragma: no cover - depends on the DSPy build
    Flex = None

__all__ = ["FLEX_KEYS", "PREDICT_KEYS", "flex_key", "flex_pins", "flex_same", "flex_state", "is_flex", "kind_of",
           "lm_state", "predict_key", "predict_pins", "predict_same", "predict_sources", "predict_state",
           "signature_fields", "signature_of", "state_of", "vars_of"]

_SECRET = re.compile(r"key|secret|password|passwd|auth|credential|header|cookie|api_base|base_url", re.I)

_obj_getattr = object.__getattribute__


def vars_of(obj: Any) -> dict[str, Any]:
    """``obj.__dict__`` without going through ``dspy.Module.__getattribute__`` (a Python-level hook)."""
    return _obj_getattr(obj, "__dict__")


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def lm_state(lm: Any) -> dict[str, Any] | None:
    if lm is None:
        return None
    kwargs = getattr(lm, "kwargs", None)
    kwargs = kwargs if isinstance(kwargs, Mapping) else {}
    return {
        "class": type(lm).__qualname__,
        "model": jsonable(getattr(lm, "model", None)),
        "kwargs": {str(k): jsonable(v) for k, v in kwargs.items() if not _SECRET.search(str(k))},
    }


def signature_fields(sig: Any) -> list[dict[str, Any]]:
    fields = []
    for name, info in sig.fields.items():
        extra = info.json_schema_extra or {}
        fields.append({"name": name, "io": extra.get("__dspy_field_type"), "type": _type_name(info.annotation),
                       "prefix": jsonable(extra.get("prefix")), "desc": jsonable(extra.get("desc"))})
    return fields


def signature_of(p: Any, d: dict[str, Any]) -> Any:
    sig = d.get("signature")
    return sig if sig is not None else p.signature  # a subclass may hold it elsewhere (a property)


def predict_state(p: Any) -> dict[str, Any]:
    d = vars_of(p)
    sig = signature_of(p, d)
    state: dict[str, Any] = {
        "instructions": sig.instructions,
        "fields": signature_fields(sig),
        "demos": [jsonable(demo) for demo in d.get("demos") or ()],
        "config": jsonable(d.get("config") or {}),
        "lm": lm_state(d.get("lm")),
    }
    criteria = d.get("fields")
    if criteria:
        state["criteria"] = jsonable(criteria)
    return state


def flex_state(f: Any) -> dict[str, Any]:
    d = vars_of(f)
    return {"module_src": d.get("_module_src"), "lm": lm_state(d.get("lm"))}


def is_flex(obj: Any) -> bool:
    return Flex is not None and isinstance(obj, Flex)


def state_of(obj: Any) -> dict[str, Any]:
    return flex_state(obj) if is_flex(obj) else predict_state(obj)


# cheap keys: object identities only (the objects are pinned by the caller, so ids cannot be reused)
def predict_key(p: Any, d: dict[str, Any]) -> tuple[Any, ...]:
    sig = signature_of(p, d)
    doc = sig.__doc__
    demos = d.get("demos")
    config = d.get("config")
    criteria = d.get("fields")
    return (id(sig), id(doc), id(d.get("lm")), id(demos), *map(id, demos or ()), -1, id(config),
            *map(id, config.values() if config else ()), -2, id(criteria), len(criteria) if criteria else 0)


def predict_pins(p: Any, d: dict[str, Any]) -> tuple[Any, ...]:
    """The objects :func:`predict_key` takes the identities of (and the criteria's length), for
    :func:`predict_same`; holding them keeps the ids of the key from being reused."""
    sig = signature_of(p, d)
    demos = d.get("demos")
    config = d.get("config")
    criteria = d.get("fields")
    return (sig, sig.__doc__, d.get("lm"), demos, tuple(demos or ()), config,
            tuple(config.values()) if config else (), criteria, len(criteria) if criteria else 0)


def predict_same(p: Any, d: dict[str, Any], pins: tuple[Any, ...]) -> bool:
    """Whether :func:`predict_key` is what it was when ``pins`` (:func:`predict_pins`) were taken: the same
    objects, compared by identity without building the key (the per-call check: ~3x cheaper)."""
    sig, doc, lm, demos, items, config, values, criteria, size = pins
    s = d.get("signature")
    if s is None:
        s = p.signature
    if s is not sig or s.__doc__ is not doc or d.get("lm") is not lm or d.get("demos") is not demos \
            or d.get("config") is not config or d.get("fields") is not criteria:
        return False
    if demos is not None and (len(demos) != len(items) or any(map(is_not, demos, items))):
        return False  # also a list emptied in place
    if config is not None and (len(config) != len(values) or any(map(is_not, config.values(), values))):
        return False
    return not criteria or len(criteria) == size


#: the ``__dict__`` entries :func:`predict_same` compares by identity, in the order of :func:`predict_pins`
PREDICT_KEYS = ("signature", "lm", "demos", "config", "fields")
#: likewise for :func:`flex_same`
FLEX_KEYS = ("_module_src", "lm")
_dict_get = dict.get
_SMALL_INT = 256  # CPython keeps one object per int up to this: ``is`` compares them by value


def predict_sources(d: dict[str, Any], pins: tuple[Any, ...]) -> tuple[list[Any], list[Any], list[Any]] | None:
    """What :func:`predict_same` compares, laid out for a check of many predictors in one pass (``ProgramWatch``'s
    fast path), or ``None`` when this predictor's pins do not fit it (a signature held elsewhere, demos or config
    of an unusual type, a large criteria): calls without arguments whose results are compared by identity with
    what is expected (the entries of :data:`PREDICT_KEYS` in ``d``, the signature's ``__doc__``, the criteria's
    length: a small int, which CPython caches) and iterables whose items are (the demos list, the config's
    values), and what each is expected to give: the same objects ``predict_same`` compares with."""
    sig, doc, lm, demos, items, config, values, criteria, size = pins
    if d.get("signature") is not sig:
        return None  # a subclass's signature property: the per-predictor check
    calls: list[Any] = [functools.partial(_dict_get, d, k) for k in PREDICT_KEYS]
    calls.append(functools.partial(getattr, sig, "__doc__"))
    expect: list[Any] = [sig, lm, demos, config, criteria, doc]
    iters: list[Any] = []
    if demos is not None:
        if type(demos) is not list and type(demos) is not tuple:
            return None
        iters.append((demos, items))
    if config is not None:
        if type(config) is not dict:
            return None
        iters.append((config.values(), values))
    if criteria is not None:
        if not hasattr(type(criteria), "__len__") or not 0 <= size <= _SMALL_INT:
            return None
        calls.append(functools.partial(len, criteria))
        expect.append(size)
    return calls, expect, iters


def flex_key(f: Any, d: dict[str, Any]) -> tuple[Any, ...]:
    return (id(d.get("_module_src")), id(d.get("lm")))


def flex_pins(f: Any, d: dict[str, Any]) -> tuple[Any, ...]:
    return (d.get("_module_src"), d.get("lm"))


def flex_same(f: Any, d: dict[str, Any], pins: tuple[Any, ...]) -> bool:
    return d.get("_module_src") is pins[0] and d.get("lm") is pins[1]


_KIND_OF_KEY = {"instructions": "instructions", "fields": "fields", "criteria": "fields", "demos": "demos",
                "config": "lm_config", "lm": "lm_config", "module_src": "code", "predictors": "topology"}
_KIND_ORDER = ("code", "topology", "instructions", "fields", "demos", "lm_config")


def kind_of(paths: tuple[str, ...]) -> str:
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
