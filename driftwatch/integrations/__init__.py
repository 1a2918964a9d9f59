"""Framework integrations: where DSPy, LangGraph, LangChain and LangMem objects are hooked. With the demo
(``driftwatch/demo/``), the only place where a framework is imported; nothing else in driftwatch imports
one. (``scripted_dspy`` and ``scripted_langchain`` here only re-export the demo's scripted models, for
compatibility.)

Each integration (the packages ``dspy`` and ``langgraph``, the module ``langmem``) offers the calls below;
``dspy`` and ``langgraph`` import their framework at the top, so importing them is the check that it is
installed (``langmem`` recognises LangMem's optimizers by their class and imports nothing).

- ``instrument()`` / ``uninstrument()`` (``dspy``, ``langgraph``) — idempotent; cover every program or
  graph in the process;
- ``watch_object(obj, *, agent, **options)`` — what :func:`driftwatch.watch` calls for that
  framework's objects (and classes).

What they share (JSON-able state, the version check, the patch registry, per-runtime state) lives once,
in the private ``_common`` module.

:func:`adapter_for` maps an object to its integration by the modules of its type, without importing
any framework that the object does not already come from.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["MINIMUM_VERSIONS", "DidNotEnable", "adapter_for", "unavailable_reason"]

#: the oldest framework versions each integration supports (kept equal to setup.cfg's extras by a test)
MINIMUM_VERSIONS: dict[str, str] = {
    "dspy": "3.3.1",
    "langgraph": "1.0.0",
    "langchain-core": "1.0.0",
}

# top-level module of an object's type -> the integration that handles it
_ROOTS = {
    "dspy": "driftwatch.integrations.dspy",
    "langgraph": "driftwatch.integrations.langgraph",
    "langchain": "driftwatch.integrations.langgraph",
    "langchain_core": "driftwatch.integrations.langgraph",
    "langmem": "driftwatch.integrations.langmem",
}
_CACHE: dict[type, ModuleType | None] = {}
_FAILED: dict[str, str] = {}  # integration module -> why it could not be imported (its DidNotEnable message)


class DidNotEnable(ImportError):  # noqa: N818  # named like sentry-sdk's, which users know
    """An integration cannot run: its framework is missing or too old (the message says what to install)."""


def adapter_for(obj: Any) -> ModuleType | None:
    """The integration module that handles ``obj`` (an instance or a class), or ``None``."""
    cls = obj if isinstance(obj, type) else type(obj)
    try:
        return _CACHE[cls]
    except KeyError:
        pass
    except TypeError:  # an unhashable metaclass instance: never cached
        return _lookup(cls)
    found = _lookup(cls)
    _CACHE[cls] = found
    return found


def _lookup(cls: type) -> ModuleType | None:
    for klass in getattr(cls, "__mro__", (cls,)):
        root = (getattr(klass, "__module__", "") or "").split(".", 1)[0]
        target = _ROOTS.get(root)
        if target is not None:
            try:
                module = importlib.import_module(target)
            except ImportError as exc:
                _FAILED[target] = str(exc) if isinstance(exc, DidNotEnable) else \
                    f"{target} could not be imported ({exc}); pip install 'driftwatch-agents[all]'"
                return None
            return module if hasattr(module, "watch_object") else None
    return None


def unavailable_reason(obj: Any) -> str | None:
    """Why the integration for ``obj``'s framework could not load (``None`` when it loaded or none applies)."""
    cls = obj if isinstance(obj, type) else type(obj)
    for klass in getattr(cls, "__mro__", (cls,)):
        target = _ROOTS.get((getattr(klass, "__module__", "") or "").split(".", 1)[0])
        if target is not None:
            return _FAILED.get(target)
    return None
