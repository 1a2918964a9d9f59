"""Program calls: the patched ``dspy.Module.__call__`` / ``acall``, which check a watched program's state
(cheaply) and record its outermost call (status, duration, output, tokens, the tools it ran, an
``invoke_agent`` span tagged with the revision of the program instance that served it and its LM)."""

from __future__ import annotations

import functools
import importlib
import operator
from collections.abc import Callable, Mapping
from itertools import chain, compress, repeat
from operator import is_
from types import MappingProxyType
from typing import Any

import dspy
from dspy.dsp.utils.settings import thread_local_overrides
from dspy.dsp.utils.utils import dotdict
from dspy.utils.usage_tracker import UsageTracker

from driftwatch.integrations._common import Patches
from driftwatch.integrations.dspy import _guard as guard
from driftwatch.integrations.dspy._optimizer import CTX
from driftwatch.integrations.dspy._program import MARK
from driftwatch.integrations.dspy._state import vars_of
from driftwatch.integrations.dspy._tools import CALL_KEY
from driftwatch.integrations.dspy._watch import _WATCHES, Cover, ProgramWatch, agent_of, derived_agent, watch_for
from driftwatch.observation import output_text
from driftwatch.runtime import CallScope, get_runtime, is_suppressed
from driftwatch.scopes import would_trace
from driftwatch.tracing import GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL, provider_name

#: the module (``dspy.dsp.utils.settings``: the package's ``settings`` is the instance), for its main config
_dspy_settings = importlib.import_module("dspy.dsp.utils.settings")
_obj_getattr = object.__getattribute__

__all__ = ["CallRecord", "UsageSum", "begin", "call_target", "end", "lm_model", "make_acall", "make_call",
           "prediction_text"]


def call_target(module: Any) -> str | None:
    """The agent to record this module call for, or ``None`` (not watched, nested, in a compile)."""
    agent = _obj_getattr(module, "__dict__").get(MARK)  # agent_of(module), inline (the per-call path)
    if agent is None:
        agent = getattr(type(module), MARK, None)
    if type(agent) is not str:
        agent = agent if isinstance(agent, str) else None
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


_ANSWER_FIELDS = ("answer", "response", "output", "result", "text", "content", "summary")
_ANSWER_SET = frozenset(_ANSWER_FIELDS)
_Prediction = dspy.Prediction


def _field_text(value: Any) -> str | None:
    """A prediction field as text: a string, or a list of strings (joined with newlines)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return None


def prediction_text(result: Any, key: str | None = None) -> str | None:
    """The answer text of a program's result: the ``key`` field (the agent's ``output_key``), else the first
    usual answer field, else the last text field but ``reasoning``; a list-of-strings field counts as its
    items joined. A result that is not a ``dspy.Prediction`` is read as any call's result."""
    store = getattr(result, "_store", None) if isinstance(result, _Prediction) else None
    if not isinstance(store, dict):
        return output_text(result, key)
    if key is not None:
        text = _field_text(store.get(key))
        if text is not None:
            return text
    found = _ANSWER_SET.intersection(store)  # which of the usual answer fields it has, in C (usually one)
    for name in found if len(found) == 1 else _ANSWER_FIELDS if found else ():
        value = store.get(name)
        if value is not None:
            text = value if type(value) is str else _field_text(value)
            if text is not None:
                return text
    last = None
    for name, value in store.items():
        if name != "reasoning":
            text = value if type(value) is str else _field_text(value)
            if text is not None:
                last = text
    return last


_LM_MODELS: dict[int, tuple[Any, tuple[str | None, str | None], Mapping[str, str | None]]] = {}
_LM_MODELS_KEPT = 64


def lm_model(lm: Any) -> tuple[str | None, str | None]:
    """``(gen_ai.provider.name, gen_ai.request.model)`` of a DSPy LM: LiteLLM's ``provider/model`` split
    (``openai/gpt-4o-mini``), else the LM's class (``DummyLM`` → ``dummy``) and its ``model``."""
    if lm is None:
        return None, None
    hit = _LM_MODELS.get(id(lm))
    if hit is not None and hit[0] is lm:
        return hit[1]
    return _lm_entry(lm)[1]


def lm_attributes(lm: Any) -> Mapping[str, str | None] | None:
    """The span attributes of :func:`lm_model`: one read-only mapping per LM, kept (a ``MappingProxyType``, which
    :meth:`Tracing.start_call <driftwatch.tracing.Tracing.start_call>` merges once per agent version, not per call)."""
    if lm is None:
        return None
    hit = _LM_MODELS.get(id(lm))
    if hit is not None and hit[0] is lm:
        return hit[2]
    return _lm_entry(lm)[2]


def _lm_entry(lm: Any) -> tuple[Any, tuple[str | None, str | None], Mapping[str, str | None]]:
    model = getattr(lm, "model", None)
    if not isinstance(model, str) or not model:
        result: tuple[str | None, str | None] = (None, None)
    else:
        prefix, sep, rest = model.partition("/")
        if sep and rest:
            result = (provider_name(prefix), rest)
        else:
            cls = type(lm).__name__
            result = (provider_name(cls[:-2] if cls.endswith("LM") and len(cls) > 2 else cls), model)
    if len(_LM_MODELS) >= _LM_MODELS_KEPT:
        _LM_MODELS.clear()
    entry = (lm, result, MappingProxyType({GEN_AI_PROVIDER_NAME: result[0], GEN_AI_REQUEST_MODEL: result[1]}))
    _LM_MODELS[id(lm)] = entry  # the LM is pinned, so its id is not reused
    return entry


def _serving_lm(pw: ProgramWatch, ov: Mapping[str, Any] | None = None) -> Any:
    """The LM a program call uses: its first predictor's own ``lm``, else DSPy's configured one (``ov``: the
    thread's DSPy overrides, when the caller has them: ``dspy.settings.lm`` read as DSPy reads it)."""
    fast = pw.fast
    if fast is not None:  # the first own LM, as pinned by the per-call check that just passed
        lm = fast[4]
        if lm is not None:
            return lm
    else:
        for comp in pw.components:
            lm = vars_of(comp.obj).get("lm")
            if lm is not None:
                return lm
    if ov is None:
        return dspy.settings.lm
    return ov["lm"] if "lm" in ov else _dspy_settings.main_thread_config["lm"]


def tokens(usage: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    """(input, output) tokens summed over DSPy's ``{lm: usage}`` totals; ``None`` when none reported."""
    counter = UsageSum()
    counter.pending.extend(entry for entry in (usage or {}).values() if isinstance(entry, Mapping))
    return counter.totals()


_ABSENT = object()
#: ``entry.get(name, _ABSENT)`` for DSPy's names of an LM call's input and output tokens, mapped over the entries in C
_PROMPT = operator.methodcaller("get", "prompt_tokens", _ABSENT)
_COMPLETION = operator.methodcaller("get", "completion_tokens", _ABSENT)


def _count(n: Any, entry: Mapping[str, Any], other: str) -> Any:
    """``n`` (an entry's count under DSPy's name), else ``entry[other]`` (the Responses API's name), else ``None``."""
    return entry.get(other) if n is _ABSENT else n


class UsageSum(UsageTracker):
    """A usage tracker that only sums input and output tokens (DSPy's merges every entry: ~5x dearer).

    DSPy deep-copies the usage tracker into each ``dspy.Parallel`` worker thread; this one hands out
    itself instead, so the tokens a program spends in its own parallel sections count. An LM call only appends
    its usage (``list.append`` is atomic: no lock on the LM call's path); :meth:`totals` sums them, once per
    program call, by the thread that made the call.
    """

    #: the sums so far (class defaults until :meth:`totals` sets them on the instance)
    tin = 0
    tout = 0
    seen = False

    def __init__(self) -> None:
        UsageTracker.__init__(self)
        self.pending: list[Mapping[str, Any]] = []

    def __deepcopy__(self, memo: Any) -> UsageSum:
        return self

    def __copy__(self) -> UsageSum:
        return self

    def add_usage(self, lm: str, usage_entry: Mapping[str, Any]) -> None:
        if usage_entry:
            self.pending.append(usage_entry)

    def totals(self) -> tuple[int | None, int | None]:
        """The input and output tokens of every entry added so far (``None`` when none reported either):
        ``prompt_tokens`` / ``completion_tokens``, else ``input_tokens`` / ``output_tokens``."""
        pending, self.pending = self.pending, []
        if self.usage_data:  # rolled up by a nested dspy.track_usage() block
            for entries in self.usage_data.values():
                pending.extend(entries)
            self.usage_data.clear()
        if pending:
            ins = list(map(_PROMPT, pending))
            outs = list(map(_COMPLETION, pending))
            if any(map(is_, chain(ins, outs), repeat(_ABSENT))):  # the Responses API's names
                ins = list(map(_count, ins, pending, repeat("input_tokens")))
                outs = list(map(_count, outs, pending, repeat("output_tokens")))
            ins = list(compress(ins, map(is_, map(type, ins), repeat(int))))  # the exact ints (no bool, no None)
            outs = list(compress(outs, map(is_, map(type, outs), repeat(int))))
            if ins or outs:
                self.tin += sum(ins)
                self.tout += sum(outs)
                self.seen = True
        return (self.tin, self.tout) if self.seen else (None, None)


class CallRecord:
    """One recorded program call: the scope, the usage tracker when driftwatch opened one, the tools it ran."""

    __slots__ = ("context_token", "scope", "tools", "usage")

    def __init__(self, scope: CallScope) -> None:
        self.scope = scope
        self.context_token: Any = None
        self.usage: UsageSum | None = None
        #: appended to by the threads the program runs tools in (``list.append`` and ``tuple(list)`` are atomic)
        self.tools: list[str] = []

    def add_tool(self, name: str) -> None:
        """A tool the program ran during the call (possibly from a ``dspy.Parallel`` worker thread)."""
        self.tools.append(name)


def begin(module: Any, agent: str) -> CallRecord | None:
    """Check the program (its edits recorded, a guard's revisions put on it) and open the record of its call: the
    scope, and in DSPy's context for the call the record (for tool calls) and, unless the user tracks usage, a
    token counter (what ``dspy.context(...)`` does: the same overrides, made the same way, without its
    generator-based context manager). ``observe_watch`` and the record's setup are inline: the per-call path."""
    rt = get_runtime()
    if not rt.enabled:
        return None
    try:
        pw = _WATCHES.values(rt).get(id(module))
        if pw is None or pw.ref() is not module or pw.agent != agent:  # not existing_watch(module, agent, rt)
            pw = watch_for(module, agent, rt, fresh=True)
        pw.check(module)
        serial = rt.guard.tick(agent)  # polls operator commands when due
        if serial != pw.guard_serial:  # the agent's guard state moved: put pinned revisions on this instance
            guard.sync(pw, serial)
    except Exception as exc:  # noqa: BLE001  # never break the host: counted
        rt.error("dspy", exc)
        pw = None
    ov = thread_local_overrides.get()
    version = attributes = None
    if pw is not None:
        try:
            version = pw.version()
        except Exception as exc:  # noqa: BLE001  # span attributes are optional: counted
            rt.error("dspy", exc)
        else:
            try:  # only a span reads them: made also when none will be (cheaper than asking, ~1/2 without an SDK)
                attributes = lm_attributes(_serving_lm(pw, ov))
            except Exception as exc:  # noqa: BLE001  # span attributes are optional: counted when a span reads them
                if would_trace(rt.tracing):
                    rt.error("dspy", exc)
    scope = rt.begin_call(agent, version=version, attributes=attributes)
    if scope is None:
        return None
    rec = CallRecord(scope)
    try:
        overrides = dotdict({**_dspy_settings.main_thread_config, **ov, CALL_KEY: rec})
        if ov.get("usage_tracker") is None and not overrides.get("track_usage"):  # dspy.settings.track_usage
            rec.usage = overrides["usage_tracker"] = UsageSum()
        rec.context_token = thread_local_overrides.set(overrides)
    except Exception as exc:  # noqa: BLE001  # tokens and tools are optional: counted
        rt.error("dspy", exc)
    return rec


def end(rec: CallRecord, result: Any = None, error: BaseException | None = None) -> None:
    """Close the record's DSPy context and finish its scope (tokens, output, tools)."""
    scope = rec.scope
    try:
        token, rec.context_token = rec.context_token, None
        if token is not None:
            thread_local_overrides.reset(token)
        if error is not None:
            scope.finish(error=error, tools=tuple(rec.tools))
            return
        usage = rec.usage
        if usage is not None:
            tin, tout = usage.totals()
        else:  # the user's own tracking is on: read the prediction's usage instead
            get = getattr(result, "get_lm_usage", None)
            tin, tout = tokens(get() if callable(get) else None)
        text = prediction_text(result, scope.runtime.agent_options(scope.agent).output_key)
        scope.finish(output_chars=len(text) if text is not None else None, output_text=text,
                     input_tokens=tin, output_tokens=tout, tools=tuple(rec.tools))
    except Exception as exc:  # noqa: BLE001  # never break the host: counted
        scope.runtime.error("call", exc)


def _enter(module: Any) -> CallRecord | None:
    """The record of a call of ``module`` when it is a watched program's outermost call, else ``None``."""
    try:
        agent = call_target(module)
        return begin(module, agent) if agent is not None else None
    except Exception as exc:  # noqa: BLE001  # never break the host
        get_runtime().error("dspy", exc)
        return None


_CALLBACKS_WRAPPERS = ("with_callbacks.<locals>.sync_wrapper", "with_callbacks.<locals>.async_wrapper")


def unwrapped(orig: Callable[..., Any]) -> Callable[..., Any] | None:
    """What DSPy's ``with_callbacks`` wrapper ``orig`` wraps (``Module.__call__`` / ``acall`` itself), or ``None``
    when ``orig`` is not exactly that wrapper (e.g. another instrumentor's, which must not be skipped)."""
    code = getattr(orig, "__code__", None)
    inner = getattr(orig, "__wrapped__", None)
    if code is None or not callable(inner) or code.co_qualname not in _CALLBACKS_WRAPPERS \
            or not code.co_filename.replace("\\", "/").endswith("dspy/utils/callback.py"):
        return None
    return inner


def _callee(self: Any, d: dict[str, Any], orig: Callable[..., Any], inner: Callable[..., Any] | None) -> Any:
    """What a patched ``__call__``/``acall`` calls: DSPy's unwrapped method (``inner``) when no callback is active —
    what DSPy's wrapper computes, read as DSPy's settings read it (see :func:`make_call`) — else ``orig``, DSPy's
    wrapper (also when the check itself fails: the wrapper meets the same error and raises it)."""
    if inner is not None:
        try:
            ov = thread_local_overrides.get()
            cbs = ov["callbacks"] if "callbacks" in ov else _dspy_settings.main_thread_config.get("callbacks", [])
            if not (cbs + (d["callbacks"] if "callbacks" in d else getattr(self, "callbacks", []))):
                return inner
        except Exception:  # noqa: BLE001, S110  # DSPy's wrapper meets the same error: let it raise it
            pass
    return orig


def make_call(orig: Callable[..., Any], patches: Patches) -> Callable[..., Any]:
    """``Module.__call__`` recording the outermost call of a watched program (inert once ``patches`` is undone).

    It takes the place of DSPy's ``with_callbacks`` wrapper when no callback is active (what that wrapper does
    then: call ``Module.__call__``), so that a module call has as many frames as without driftwatch: DSPy 3.3
    walks the whole stack (``inspect.stack()``, source lines included) each time a module reads its ``forward``,
    which cost ~50 µs per extra frame per program call. Most module calls are of modules nobody watched (a
    program's predictors): for those, one look at the instance's ``__dict__`` for the mark (what
    :func:`call_target` would read first) before DSPy's own call.

    Whether a callback is active is what DSPy's wrapper computes (``dspy.settings.get("callbacks", []) +
    getattr(instance, "callbacks", [])``), read the way ``dspy.settings`` reads it (the thread's overrides, then the
    main config: the same two mappings ``dspy.context`` and :func:`begin` use) and from the instance's
    ``__dict__`` when it holds ``callbacks``, without the Python-level ``Settings.get`` / ``__getattr__`` and
    ``Module.__getattribute__`` (~25 bytecodes per module call).
    """
    gen = patches.generation
    inner = unwrapped(orig)

    @functools.wraps(orig)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N807  # replaces Module.__call__
        d = _obj_getattr(self, "__dict__")
        fn = _callee(self, d, orig, inner)
        if (MARK not in d and not Cover.any) or patches.generation != gen:
            return fn(self, *args, **kwargs)
        try:  # _enter(self), inline
            agent = call_target(self)
            rec = begin(self, agent) if agent is not None else None
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("dspy", exc)
            rec = None
        if rec is None:
            return fn(self, *args, **kwargs)
        try:
            result = fn(self, *args, **kwargs)
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
    inner = unwrapped(orig)

    @functools.wraps(orig)
    async def acall(self: Any, *args: Any, **kwargs: Any) -> Any:
        d = _obj_getattr(self, "__dict__")
        fn = _callee(self, d, orig, inner)
        if (MARK not in d and not Cover.any) or patches.generation != gen:
            return await fn(self, *args, **kwargs)
        rec = _enter(self)
        if rec is None:
            return await fn(self, *args, **kwargs)
        try:
            result = await fn(self, *args, **kwargs)
        except BaseException as exc:
            end(rec, error=exc)
            raise
        end(rec, result)
        return result

    acall.__driftwatch_original__ = orig  # type: ignore[attr-defined]  # what it wraps
    return acall
