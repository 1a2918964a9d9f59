"""DSPy's patches, all in one registry: ``Module.__call__`` / ``acall``, ``Evaluate.__call__``, the
``compile`` of every ``Teleprompter`` subclass, and ``Teleprompter.__init_subclass__`` (which wraps the
``compile`` of optimizer classes defined later)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from dspy.evaluate.evaluate import Evaluate
from dspy.primitives.module import Module
from dspy.teleprompt.teleprompt import Teleprompter

from driftwatch.integrations._common import Patches
from driftwatch.integrations.dspy._calls import make_acall, make_call
from driftwatch.integrations.dspy._optimizer import make_compile, make_evaluate
from driftwatch.runtime import get_runtime

__all__ = ["PATCHES", "all_subclasses", "install", "wrap_class_compile"]

#: every patch the DSPy integration has in place
PATCHES = Patches()


def wrap_class_compile(cls: type) -> None:
    fn = cls.__dict__.get("compile")
    if not inspect.isfunction(fn) or getattr(fn, "__driftwatch_original__", None) is not None:
        return  # absent, already wrapped, or a staticmethod/classmethod/descriptor: left as it is
    PATCHES.patch(cls, "compile", lambda original: make_compile(original, PATCHES))


def all_subclasses(cls: type) -> Iterator[type]:
    seen: set[type] = set()
    stack = list(cls.__subclasses__())
    while stack:
        sub = stack.pop()
        if sub in seen:
            continue
        seen.add(sub)
        yield sub
        stack.extend(sub.__subclasses__())


def _make_init_subclass(original: Any) -> Any:
    """``Teleprompter.__init_subclass__`` that also wraps the new optimizer class's ``compile``."""
    gen = PATCHES.generation

    def __init_subclass__(cls: type, **kwargs: Any) -> None:  # noqa: N807  # the hook's own name
        func = getattr(original, "__func__", None)
        if func is not None:
            func(cls, **kwargs)
        else:
            super(Teleprompter, cls).__init_subclass__(**kwargs)
        if PATCHES.generation != gen:
            return
        try:
            wrap_class_compile(cls)
        except Exception as exc:  # noqa: BLE001  # never break a class definition
            get_runtime().error("dspy", exc)

    return classmethod(__init_subclass__)


def install() -> None:
    """Put every patch in place (once; :meth:`Patches.undo` takes them back)."""
    with PATCHES.lock:
        if PATCHES:
            return
        PATCHES.patch(Module, "__call__", lambda original: make_call(original, PATCHES))
        PATCHES.patch(Module, "acall", lambda original: make_acall(original, PATCHES))
        PATCHES.patch(Evaluate, "__call__", lambda original: make_evaluate(original, PATCHES))
        PATCHES.patch(Teleprompter, "__init_subclass__", _make_init_subclass)
        for cls in all_subclasses(Teleprompter):
            wrap_class_compile(cls)
