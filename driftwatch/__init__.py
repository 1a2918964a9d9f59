"""driftwatch: see every self-modification of an LLM agent, and the behavioural drift it causes.

>>> import driftwatch
>>> @driftwatch.watch(agent="support-bot")
... def answer(question: str) -> str: ...
>>> driftwatch.track("support-bot", "system_prompt", prompt, kind="system_prompt", source="agent")
>>> driftwatch.configure_agent("support-bot", format="json")   # how its answers are checked
>>> driftwatch.configure_agent("support-bot", on_alarm="rollback", approve=["tools"], max_rate="3/hour")
>>> driftwatch.guard("support-bot").allowed("system_prompt", new_prompt, kind="system_prompt")
>>> driftwatch.start_http_server(9464)        # /metrics on 127.0.0.1
"""

from __future__ import annotations

import math
import re
from typing import Any

from driftwatch._version import __version__
from driftwatch.alarm import Alarm
from driftwatch.change import KINDS, Change
from driftwatch.config import ConfigError, Settings
from driftwatch.decorator import watch
from driftwatch.guardrails.engine import ChangeBlocked, Decision
from driftwatch.guardrails.policy import GuardPolicy
from driftwatch.ledger import Ledger, LedgerError, open_ledger
from driftwatch.observation import Call, OptimizerRun
from driftwatch.options import AgentOptions
from driftwatch.revision import Revision, fingerprint
from driftwatch.runtime import configure, configure_agent, get_runtime, start_http_server

__all__ = [
    "KINDS",
    "AgentGuard",
    "AgentOptions",
    "Alarm",
    "Call",
    "Change",
    "ChangeBlocked",
    "ConfigError",
    "Decision",
    "GuardPolicy",
    "Ledger",
    "LedgerError",
    "OptimizerRun",
    "Revision",
    "Settings",
    "__version__",
    "configure",
    "configure_agent",
    "get_runtime",
    "guard",
    "open_ledger",
    "record_score",
    "start_http_server",
    "track",
    "watch",
]

_SOURCE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")


def _check_name(arg: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{arg}={value!r}: expected a non-empty string")


def track(agent: str, component: str, state: Any, *, kind: str | None = None, source: str = "runtime",
          node: str | None = None, enforce: bool = False) -> Change | None:
    """Report the current state of a prompt-bearing thing; returns the change, or ``None`` if none.

    ``state`` is a ``str`` or a JSON-able value. The first report of a component is its baseline (stored,
    not a change). ``kind`` is one of :data:`KINDS` (inferred from the changed keys of a dict state when
    omitted); ``source`` names who made the change (``runtime``, ``agent``, ``manual``, an optimizer).
    Call it as often as you like: an unchanged state costs a hash comparison.

    A guard may block the change (the agent is frozen, past its ``max_rate``, or the revision was rolled back
    from) or hold it for approval: the change is recorded with that :attr:`~Change.status` and the component
    keeps serving its previous revision. With ``enforce=True`` that raises :class:`ChangeBlocked` (also for a
    repeat of the same refused state), whose ``serving_state`` is what to go on using.
    """
    _check_name("agent", agent)
    _check_name("component", component)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(KINDS)}")
    if not isinstance(source, str) or not _SOURCE_RE.match(source):
        raise ValueError(f"source={source!r}: expected a short name such as 'runtime', 'agent' or 'MIPROv2'")
    rt = get_runtime()
    change = rt.observe(agent, component, state, kind=kind, source=source, node=node)
    if enforce:
        if change is not None and not change.in_effect:
            raise ChangeBlocked(agent, component, str(change.attributes.get("guard_reason", change.status)),
                                change.before_id, change.before_state, change)
        pin = (rt.guard.pins(agent) or {}).get(component) if change is None else None
        if pin is not None and fingerprint(state) != pin.revision_id:  # the same refused state, reported again
            raise ChangeBlocked(agent, component, pin.reason, pin.revision_id, pin.state)
    return None if change is None or change.is_baseline else change


class AgentGuard:
    """One agent's guard, as this process knows it (see :func:`guard`)."""

    __slots__ = ("agent",)

    def __init__(self, agent: str) -> None:
        self.agent = agent

    @property
    def frozen(self) -> bool:
        """Whether the agent's self-tuning is frozen (``driftwatch freeze``)."""
        return get_runtime().guard.frozen(self.agent)

    @property
    def policy(self) -> GuardPolicy | None:
        """The agent's guard policy (``configure_agent``, else ``DRIFTWATCH_GUARD``), or ``None``."""
        return get_runtime().policy_of(self.agent)

    def allowed(self, component: str, state: Any = None, *, kind: str | None = None) -> Decision:
        """Whether ``component`` may change now (to ``state``, when given): a :class:`Decision`, truthy when
        allowed, with ``action`` (``allow``, ``block``, ``hold``), ``reason`` and ``serve`` (the revision that keeps
        serving otherwise). Nothing is recorded: call it before making a change, so your code can refuse.
        ``kind`` (one of :data:`KINDS`) lets the policy's ``approve`` kinds apply."""
        _check_name("component", component)
        rt = get_runtime()
        revision = None if state is None else fingerprint(state)
        current = rt.tracker(self.agent, component).revision_id
        if revision is not None and revision == current:
            return Decision("allow", "no change")
        return rt.guard.check(self.agent, component, revision, kind=kind, before=current)

    def held(self) -> dict[tuple[str, str], str]:
        """The agent's changes held for approval, as this process knows them: ``{(component, revision): change}``."""
        return get_runtime().guard.held(self.agent)


def guard(agent: str) -> AgentGuard:
    """The guard of ``agent`` in this process: ``.allowed(component, state, kind=...)``, ``.frozen``, ``.policy``,
    ``.held()``. See ``docs/guardrails.md``."""
    _check_name("agent", agent)
    return AgentGuard(agent)


def record_score(agent: str, value: float, *, metric: str = "score") -> None:
    """Attach an evaluation or feedback score (0 to 1) to an agent; it feeds ``driftwatch_score`` and drift."""
    _check_name("agent", agent)
    _check_name("metric", metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise ValueError(f"record_score(value={value!r}): expected a number from 0 to 1")
    get_runtime().record_score(agent, float(value), metric)
