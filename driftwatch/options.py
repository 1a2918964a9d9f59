"""Per-agent options: what :func:`driftwatch.configure_agent` registers for one agent.

One frozen record per agent, kept by the runtime (:meth:`~driftwatch.runtime.Runtime.configure_agent`) and
read on the call path. It holds how the agent's answers are checked (the per-call signals of
:mod:`driftwatch.signals`), which score feeds drift, and the agent's guard policy
(:class:`~driftwatch.guardrails.policy.GuardPolicy`: ``on_alarm``, ``approve``, ``max_rate``). A new group of
options is more fields here, each with a default, validated in :func:`agent_options`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from driftwatch.guardrails.policy import GuardPolicy, policy_from_options
from driftwatch.signals import make_format_check

__all__ = ["DEFAULT_OPTIONS", "OPTION_NAMES", "AgentOptions", "agent_options"]


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """The options of one agent (defaults: the built-in refusal phrases, no other check)."""

    # -- per-call signals (driftwatch.signals) --
    #: a format check (from ``format=``): text -> passes
    format_check: Callable[[str], bool] | None = None
    #: a refusal classifier, used in addition to the phrase set
    refusal: Callable[[str], bool] | None = None
    #: use the built-in refusal phrase set
    phrases: bool = True
    #: text -> score, per call (feeds the ``score`` drift signal)
    evaluator: Callable[[str], float] | None = None
    #: text -> vector (feeds the ``embedding`` drift signal)
    embed: Callable[[str], Any] | None = None
    # -- drift --
    #: which ``record_score`` metric feeds the ``score`` signal
    score_metric: str = "score"
    # -- guardrails (driftwatch.guardrails) --
    #: the agent's guard policy (``None``: none set in code; ``DRIFTWATCH_GUARD`` may give one)
    guard: GuardPolicy | None = None


DEFAULT_OPTIONS = AgentOptions()
#: the keyword arguments :func:`agent_options` (and so ``configure_agent``) takes
OPTION_NAMES: tuple[str, ...] = ("format", "refusal", "refusal_phrases", "evaluator", "embed", "score_metric",
                                 "on_alarm", "approve", "max_rate")


def agent_options(agent: str, **options: Any) -> AgentOptions:
    """Validate ``configure_agent(agent, **options)`` into a record; ``ValueError`` names the bad argument.

    ``format``: ``"json"``, a JSON schema, or a callable(text) that returns ``False`` or raises on a
    malformed answer (feeds ``format_failure``). ``refusal``: a classifier(text) -> bool, used in
    addition to the built-in phrase set (``refusal_phrases=False`` turns the phrases off).
    ``evaluator``: text -> score, per call (feeds ``score``, like ``record_score``).
    ``embed``: text -> vector (feeds ``embedding``; needs numpy). ``score_metric``: which
    ``record_score`` metric feeds the ``score`` signal. ``on_alarm`` (``"page"``, ``"freeze"``, ``"rollback"``),
    ``approve`` (change kinds held for approval) and ``max_rate`` (``"3/hour"``): the guard policy (see
    ``docs/guardrails.md``).
    """
    if not isinstance(agent, str) or not agent:
        raise ValueError(f"configure_agent(agent={agent!r}): expected a non-empty agent name")
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise ValueError(f"configure_agent({unknown[0]}=...): unknown option; known options: {', '.join(OPTION_NAMES)}")
    fmt = options.get("format")
    refusal = options.get("refusal")
    evaluator = options.get("evaluator")
    embed = options.get("embed")
    score_metric = options.get("score_metric", "score")
    for name, value in (("refusal", refusal), ("evaluator", evaluator), ("embed", embed)):
        if value is not None and not callable(value):
            raise ValueError(f"configure_agent({name}={value!r}): expected a callable taking the answer text")
    if not isinstance(score_metric, str) or not score_metric:
        raise ValueError(f"configure_agent(score_metric={score_metric!r}): expected a metric name")
    guard = policy_from_options(options, lambda key, value: f"configure_agent({key}={value!r})")
    return AgentOptions(format_check=None if fmt is None else make_format_check(fmt), refusal=refusal,
                        phrases=bool(options.get("refusal_phrases", True)), evaluator=evaluator, embed=embed,
                        score_metric=score_metric, guard=guard)
