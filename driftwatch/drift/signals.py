"""Per-agent signal options: the refusal phrase detector, format checks, evaluators, embeddings.

These turn a call's output text (in-process only; never stored or exported) into the
:class:`~driftwatch.drift.record.CallRecord` fields the detector reads. Register them with
:func:`configure_agent`; they apply to every runtime of the process.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["REFUSAL_PHRASES", "AgentOptions", "agent_options", "configure_agent", "is_refusal", "make_format_check"]

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


def is_refusal(text: str) -> bool:
    """The built-in detector: a known refusal phrase in the first 240 characters."""
    head = text[:_HEAD].lower()
    if "’" in head:
        head = head.replace("’", "'")
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


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """What :func:`configure_agent` registered for one agent."""

    format_check: Callable[[str], bool] | None = None
    refusal: Callable[[str], bool] | None = None
    phrases: bool = True
    evaluator: Callable[[str], float] | None = None
    embed: Callable[[str], Any] | None = None
    score_metric: str = "score"


_DEFAULT = AgentOptions()
_OPTIONS: dict[str, AgentOptions] = {}
_LOCK = threading.Lock()


def agent_options(agent: str) -> AgentOptions:
    """The options registered for ``agent`` (defaults when none)."""
    return _OPTIONS.get(agent, _DEFAULT)


def configure_agent(agent: str, *, format: Any = None, refusal: Callable[[str], bool] | None = None,
                    refusal_phrases: bool = True, evaluator: Callable[[str], float] | None = None,
                    embed: Callable[[str], Any] | None = None, score_metric: str = "score") -> AgentOptions:
    """Declare how an agent's answers are checked, for the drift signals.

    ``format``: ``"json"``, a JSON schema, or a callable(text) that returns ``False`` or raises on a
    malformed answer (feeds ``format_failure``). ``refusal``: a classifier(text) -> bool, used in
    addition to the built-in phrase set (``refusal_phrases=False`` turns the phrases off).
    ``evaluator``: text -> score, per call (feeds ``score``, like ``record_score``).
    ``embed``: text -> vector (feeds ``embedding``; needs numpy). ``score_metric``: which
    ``record_score`` metric feeds the ``score`` signal. Calling again replaces the agent's options.
    The callables run inside the agent's call: keep them fast. Their exceptions are counted
    (``driftwatch_internal_errors_total{stage="drift"}``) and the value is treated as unknown.
    """
    if not isinstance(agent, str) or not agent:
        raise ValueError(f"configure_agent(agent={agent!r}): expected a non-empty agent name")
    for name, value in (("refusal", refusal), ("evaluator", evaluator), ("embed", embed)):
        if value is not None and not callable(value):
            raise ValueError(f"configure_agent({name}={value!r}): expected a callable taking the answer text")
    if not isinstance(score_metric, str) or not score_metric:
        raise ValueError(f"configure_agent(score_metric={score_metric!r}): expected a metric name")
    opts = AgentOptions(format_check=None if format is None else make_format_check(format), refusal=refusal,
                        phrases=bool(refusal_phrases), evaluator=evaluator, embed=embed, score_metric=score_metric)
    with _LOCK:
        _OPTIONS[agent] = opts
    return opts


def clear_agent_options(agent: str | None = None) -> None:
    """Forget the options of one agent (or of all agents)."""
    with _LOCK:
        if agent is None:
            _OPTIONS.clear()
        else:
            _OPTIONS.pop(agent, None)
