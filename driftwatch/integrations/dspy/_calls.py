"""Program calls: the patched ``dspy.Module.__call__`` / ``acall``, which check a watched program's state
(cheaply) and record its outermost call (status, duration, output, tokens, an ``invoke_agent`` span)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

import dspy
from dspy.dsp.utils.settings import thread_local_overrides
from dspy.utils.usage_tracker import UsageTracker

from driftwatch.integrations._common import Patches
from driftwatch.integrations.dspy._optimizer import CTX
from driftwatch.integrations.dspy._watch import Cover, agent_of, derived_agent, observe
from driftwatch.runtime import CallScope, get_runtime, is_suppressed

__all__ = ["CallRecord", "UsageSum", "begin", "call_target", "end", "make_acall", "make_call"]


def call_target(module: Any) -> str | None:
    """The agent to record this module call for, or ``None`` (not watched, nested, in a compile)."""
    agent = agent_of(module)
    cover_all = Cover.all
    if agent is None and not cover_all:
        return None
    ov = thread_local_overrides.get()
    if ov:
        if ov.get(CTX) is not None:
            return None  # a trial inside an optimizer run
        callers = ov.get("caller_modules")
        if callers:
            if cover_all or agent is None:
                return None
            for caller in callers:
                if agent_of(caller) is not None:
                    return None
    if is_suppressed():
        return None
    return agent or derived_agent(module)


def prediction_text(result: Any) -> str | None:
    if isinstance(result, str):
        return result
    store = getattr(result, "_store", None) if isinstance(result, dspy.Prediction) else None
    if not isinstance(store, dict):
        return None
    for key in ("answer", "response", "output", "result", "text", "content", "summary"):
        value = store.get(key)
        if isinstance(value, str):
            return value
    last = None
    for key, value in store.items():
        if isinstance(value, str) and key != "reasoning":
            last = value
    return last


def tokens(usage: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    """(input, output) tokens summed over DSPy's ``{lm: usage}`` totals; ``None`` when none reported."""
    counter = UsageSum()
    for entry in (usage or {}).values():
        if isinstance(entry, Mapping):
            counter.count(entry)
    return counter.totals()


class UsageSum(UsageTracker):
    """A usage tracker that only sums input and output tokens (DSPy's merges every entry: ~5x dearer).

    DSPy deep-copies the usage tracker into each ``dspy.Parallel`` worker thread; this one hands out
    itself instead (with a lock), so the tokens a program spends in its own parallel sections count.
    """

    def __init__(self) -> None:
        super().__init__()
        self.tin = 0
        self.tout = 0
        self.seen = False
        self.lock = threading.Lock()

    def __deepcopy__(self, memo: Any) -> UsageSum:
        return self

    def __copy__(self) -> UsageSum:
        return self

    def add_usage(self, lm: str, usage_entry: Mapping[str, Any]) -> None:
        if usage_entry:
            self.count(usage_entry)

    def count(self, entry: Mapping[str, Any]) -> None:
        tin = entry.get("prompt_tokens", entry.get("input_tokens"))
        tout = entry.get("completion_tokens", entry.get("output_tokens"))
        with self.lock:
            if type(tin) is int:
                self.tin += tin
                self.seen = True
            if type(tout) is int:
                self.tout += tout
                self.seen = True

    def totals(self) -> tuple[int | None, int | None]:
        for entries in self.usage_data.values():  # rolled up by a nested dspy.track_usage() block
            for entry in entries:
                self.count(entry)
        self.usage_data.clear()
        return (self.tin, self.tout) if self.seen else (None, None)


class CallRecord:
    """One recorded program call: the scope, and the usage tracker when driftwatch opened one."""

    __slots__ = ("scope", "tracker_cm", "usage")

    def __init__(self, scope: CallScope) -> None:
        self.scope = scope
        self.tracker_cm: Any = None
        self.usage: UsageSum | None = None

    def open_usage(self) -> None:
        ov = thread_local_overrides.get()
        if ov.get("usage_tracker") is not None or dspy.settings.track_usage:
            return  # the user's own tracking is on: read the prediction's usage instead
        usage = UsageSum()
        cm = dspy.context(usage_tracker=usage)
        cm.__enter__()
        self.usage = usage
        self.tracker_cm = cm

    def close_usage(self, exc: BaseException | None) -> None:
        cm, self.tracker_cm = self.tracker_cm, None
        if cm is not None:
            cm.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

    def finish(self, result: Any) -> None:
        if self.usage is not None:
            tin, tout = self.usage.totals()
        else:
            get = getattr(result, "get_lm_usage", None)
            tin, tout = tokens(get() if callable(get) else None)
        text = prediction_text(result)
        self.scope.finish(output_chars=len(text) if text is not None else None, output_text=text,
                          input_tokens=tin, output_tokens=tout)


def begin(module: Any, agent: str) -> CallRecord | None:
    rt = get_runtime()
    if not rt.enabled:
        return None
    observe(module, agent, rt)
    scope = rt.begin_call(agent)
    if scope is None:
        return None
    rec = CallRecord(scope)
    try:
        rec.open_usage()
    except Exception as exc:  # noqa: BLE001  # tokens are optional: counted
        rt.error("dspy", exc)
    return rec


def end(rec: CallRecord, result: Any = None, error: BaseException | None = None) -> None:
    try:
        rec.close_usage(error)
        if error is not None:
            rec.scope.finish(error=error)
        else:
            rec.finish(result)
    except Exception as exc:  # noqa: BLE001  # never break the host: counted
        rec.scope.runtime.error("call", exc)


def make_call(orig: Callable[..., Any], patches: Patches) -> Callable[..., Any]:
    """``Module.__call__`` recording the outermost call of a watched program (inert once ``patches`` is undone)."""
    gen = patches.generation

    @functools.wraps(orig)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N807  # replaces Module.__call__
        if patches.generation != gen:
            return orig(self, *args, **kwargs)
        try:
            agent = call_target(self)
            rec = begin(self, agent) if agent is not None else None
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("dspy", exc)
            rec = None
        if rec is None:
            return orig(self, *args, **kwargs)
        try:
            result = orig(self, *args, **kwargs)
        except BaseException as exc:
            end(rec, error=exc)
            raise
        end(rec, result)
        return result

    __call__.__driftwatch_original__ = orig  # type: ignore[attr-defined]  # what it wraps
    return __call__


def make_acall(orig: Callable[..., Any], patches: Patches) -> Callable[..., Any]:
    """``Module.acall``, likewise."""
    gen = patches.generation

    @functools.wraps(orig)
    async def acall(self: Any, *args: Any, **kwargs: Any) -> Any:
        if patches.generation != gen:
            return await orig(self, *args, **kwargs)
        try:
            agent = call_target(self)
            rec = begin(self, agent) if agent is not None else None
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("dspy", exc)
            rec = None
        if rec is None:
            return await orig(self, *args, **kwargs)
        try:
            result = await orig(self, *args, **kwargs)
        except BaseException as exc:
            end(rec, error=exc)
            raise
        end(rec, result)
        return result

    acall.__driftwatch_original__ = orig  # type: ignore[attr-defined]  # what it wraps
    return acall

