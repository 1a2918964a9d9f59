"""Per-call signals: derived once from a call's output text, before the call fans out to the sinks.

The runtime calls :func:`derive` on every watched call that has an answer text, with the agent's
:class:`~driftwatch.options.AgentOptions`, and puts what it finds on the :class:`~driftwatch.observation.Call`:
``refused`` (the built-in phrase set and/or the agent's classifier), ``format_ok`` (the agent's format
check), and, when the drift engine is on (nothing else reads them), ``score`` (the agent's evaluator) and
``embedding``. Metrics, call windows and the drift engine only read those fields. The text itself is used
in-process only: never stored, exported or logged.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftwatch.observation import Call
    from driftwatch.options import AgentOptions

__all__ = ["MAX_EMBEDDING_DIMS", "REFUSAL_PHRASES", "derive", "is_refusal", "make_format_check"]

#: an embedding longer than this is not used (a projection matrix grows with it)
MAX_EMBEDDING_DIMS = 16_384

#: the built-in refusal detector: an answer that opens with one of these (case-insensitive) is a refusal
REFUSAL_PHRASES: tuple[str, ...] = (
    "i can't help", "i cannot help", "i can't assist", "i cannot assist", "i can't provide", "i cannot provide",
    "i can't do that", "i cannot do that", "i can't comply", "i cannot comply", "i won't be able",
    "i will not be able", "i'm unable to", "i am unable to", "i'm not able to", "i am not able to",
    "i'm sorry, but i can", "i am sorry, but i can", "sorry, but i can't", "sorry, i can't", "sorry, i cannot",
    "i must decline", "i have to decline", "i'm afraid i can't", "i'm afraid i cannot", "as an ai language model",
    "i'm not allowed to", "i am not allowed to", "i can't share", "i cannot share", "unable to comply",
)
_REFUSAL = re.compile("|".join(re.escape(p) for p in REFUSAL_PHRASES))
_HEAD = 240  # refusals announce themselves early: only the opening is scanned
#: every phrase holds one of these: a text that holds none is no refusal, without running the regex
_ANCHORS = ("i ", "i'm", "unable")
if not all(any(a in p for a in _ANCHORS) for p in REFUSAL_PHRASES):  # pragma: no cover - a phrase list edit
    raise AssertionError("signals._ANCHORS must cover every refusal phrase")


_SHORTEST = min(len(p) for p in REFUSAL_PHRASES)  # a shorter text holds none (lowering adds no phrase character)


def is_refusal(text: str) -> bool:
    """The built-in detector: a known refusal phrase in the first 240 characters."""
    if len(text) < _SHORTEST:
        return False
    head = text[:_HEAD].lower()
    if "’" in head:
        head = head.replace("’", "'")
    if "i " not in head and "i'm" not in head and "unable" not in head:  # _ANCHORS
        return False
    return _REFUSAL.search(head) is not None


def make_format_check(spec: Any) -> Callable[[str], bool]:
    """A format check from ``"json"``, a JSON schema (a mapping; needs ``jsonschema``), or a callable.

    A callable passes unless it returns ``False`` or raises (so ``json.loads`` or a pydantic
    ``model_validate_json`` work as they are).
    """
    if spec == "json":
        def check_json(text: str) -> bool:
            try:
                json.loads(text)
            except ValueError:
                return False
            return True
        return check_json
    if isinstance(spec, Mapping):
        try:
            import jsonschema
        except ImportError:
            raise ValueError("format=<JSON schema> needs the jsonschema package "
                             "(pip install 'driftwatch-agents[drift]'), or pass a callable") from None
        try:
            validator_cls = jsonschema.validators.validator_for(spec)
            validator_cls.check_schema(spec)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"format: not a valid JSON schema: {exc.message}") from None
        validator = validator_cls(spec)

        def check_schema(text: str) -> bool:
            try:
                return validator.is_valid(json.loads(text))
            except ValueError:
                return False
        return check_schema
    if callable(spec):
        def check_callable(text: str) -> bool:
            try:
                return spec(text) is not False
            except Exception:  # noqa: BLE001  # the user's parse check failing means the format failed
                return False
        return check_callable
    raise ValueError(f"format={spec!r}: expected 'json', a JSON schema (dict) or a callable(text) -> bool")


def derive(call: Call, options: AgentOptions, on_error: Callable[[str, BaseException], None], *,
           evaluate: bool = True) -> None:
    """Fill ``call.refused``, ``call.format_ok`` and (``evaluate``) ``call.score`` and ``call.embedding`` from
    ``call.output_text``; a field the hook already set is kept, and nothing is derived without a text.
    A user callable that raises is reported to ``on_error("signals", exc)`` and its value is left unknown."""
    text = call.output_text
    if text is None:
        return
    if call.refused is None:
        refused: bool | None = is_refusal(text) if options.phrases else False
        if options.refusal is not None and not refused:
            verdict = _user(options.refusal, text, on_error)
            refused = None if verdict is None else bool(verdict)
        call.refused = refused
    if options.format_check is not None and call.format_ok is None:
        call.format_ok = options.format_check(text)  # never raises: see make_format_check
    if not evaluate:
        return
    if options.evaluator is not None and call.score is None:
        score = _user(options.evaluator, text, on_error)
        if score is not None:
            call.score = _score(score, on_error)
    if options.embed is not None and call.embedding is None:
        vector = _user(options.embed, text, on_error)
        if vector is not None:
            call.embedding = _embedding(vector, on_error)


def _score(value: Any, on_error: Callable[[str, BaseException], None]) -> float | None:
    """An evaluator's score as a finite float; anything else is unknown, and said so."""
    try:
        score = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        on_error("signals", ValueError(f"evaluator returned {type(value).__name__}, not a number: {exc}"))
        return None
    if not math.isfinite(score):
        on_error("signals", ValueError(f"evaluator returned {score!r}: only finite scores are used"))
        return None
    return score


def _embedding(value: Any, on_error: Callable[[str, BaseException], None]) -> Any:
    """An embedding function's vector if it is one (a 1-d sequence or array of at most
    :data:`MAX_EMBEDDING_DIMS` finite numbers); anything else is unknown, and said so."""
    problem = None
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):  # an array: checked in C
        try:
            import numpy as np

            if len(shape) != 1 or not 0 < shape[0] <= MAX_EMBEDDING_DIMS or value.dtype.kind not in "fiu":
                problem = f"an array of shape {tuple(shape)} and dtype {value.dtype}"
            elif not bool(np.isfinite(value).all()):
                problem = "an array with NaN or infinite values"
        except Exception as exc:  # noqa: BLE001  # an array-like we cannot read: unknown
            problem = f"an unreadable {type(value).__name__} ({type(exc).__name__})"
    elif isinstance(value, list | tuple):
        if not 0 < len(value) <= MAX_EMBEDDING_DIMS:
            problem = f"a {type(value).__name__} of {len(value)} values"
        elif not all(isinstance(v, numbers.Real) and math.isfinite(v) for v in value):
            problem = "values that are not all finite numbers"
    else:
        problem = f"a {type(value).__name__}"
    if problem is None:
        return value
    on_error("signals", ValueError(f"embed returned {problem}: expected 1 to {MAX_EMBEDDING_DIMS} finite numbers"))
    return None


def _user(fn: Callable[[str], Any], text: str, on_error: Callable[[str, BaseException], None]) -> Any:
    try:
        return fn(text)
    except Exception as exc:  # noqa: BLE001  # a user callable failing must not break the call
        on_error("signals", exc)
        return None
