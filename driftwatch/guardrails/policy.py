"""Guard policies: what an agent's guard does on its own, per agent.

A :class:`GuardPolicy` says what happens when the agent's drift alert fires (``on_alarm``: ``page``, the
default, only pages; ``freeze`` freezes self-tuning; ``rollback`` restores the revisions in force before the
change that anchored the alarm), which kinds of change wait for ``driftwatch approve`` (``approve``), and how
many self-modifications may take effect per window (``max_rate``, e.g. ``"3/hour"``).

Set in code with :func:`driftwatch.configure_agent` (``on_alarm=``, ``approve=``, ``max_rate=``) or for a
deployment with ``DRIFTWATCH_GUARD`` (:func:`parse_policies`)::

    DRIFTWATCH_GUARD="support-bot: on_alarm=rollback approve=tools,system_prompt max_rate=3/hour; *: on_alarm=freeze"

Entries are separated by ``;``; each is ``AGENT: key=value ...`` (``*``: every agent without an entry of its
own). Every error is one line naming the entry and the key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftwatch.change import KINDS

__all__ = ["DEFAULT_POLICY", "ON_ALARM", "POLICY_KEYS", "GuardPolicy", "Namer", "parse_policies", "parse_rate",
           "policy_from_options"]

#: what ``on_alarm`` may be
ON_ALARM: tuple[str, ...] = ("page", "freeze", "rollback")
#: the keys of a policy (``configure_agent`` arguments and ``DRIFTWATCH_GUARD`` keys)
POLICY_KEYS: tuple[str, ...] = ("on_alarm", "approve", "max_rate")

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0,
          "hour": 3600.0, "d": 86400.0, "day": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+?)s?\s*$")


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """One agent's guard policy (the defaults: page only, nothing held, no rate limit)."""

    #: ``page`` | ``freeze`` | ``rollback``: applied when the agent's drift alert fires
    on_alarm: str = "page"
    #: change kinds that are held until ``driftwatch approve CHANGE_ID``
    approve: frozenset[str] = field(default_factory=frozenset)
    #: self-modifications allowed per ``window_s`` (``None``: no limit); past it they are blocked
    max_changes: int | None = None
    #: the rate window, seconds
    window_s: float = 3600.0

    @property
    def acts_on_alarm(self) -> bool:
        """Whether an alert makes the guard act (``on_alarm`` is not ``page``)."""
        return self.on_alarm != "page"

    @property
    def rate(self) -> str | None:
        """``max_rate`` as text (``"3/hour"``), or ``None``."""
        if self.max_changes is None:
            return None
        for name, seconds in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0)):
            if self.window_s == seconds:
                return f"{self.max_changes}/{name}"
        return f"{self.max_changes}/{self.window_s:g}s"

    def describe(self) -> str:
        """The policy in ``DRIFTWATCH_GUARD`` form (``on_alarm=rollback approve=tools max_rate=3/hour``)."""
        parts = [f"on_alarm={self.on_alarm}"]
        if self.approve:
            parts.append("approve=" + ",".join(sorted(self.approve)))
        if self.rate is not None:
            parts.append(f"max_rate={self.rate}")
        return " ".join(parts)

    def to_json(self) -> str:
        return json.dumps({"on_alarm": self.on_alarm, "approve": sorted(self.approve),
                           "max_changes": self.max_changes, "window_s": self.window_s}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GuardPolicy:
        """The policy :meth:`to_json` wrote (``ValueError`` when it is not one)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"not a guard policy: {text[:80]!r}")
        rate = data.get("max_changes")
        policy = policy_from_options({"on_alarm": data.get("on_alarm"), "approve": data.get("approve") or (),
                                      "max_rate": None if rate is None else (rate, data.get("window_s", 3600.0))})
        return policy or DEFAULT_POLICY


DEFAULT_POLICY = GuardPolicy()


#: ``fmt(key, value)``: how an error names the bad argument (``configure_agent(max_rate='x')``)
Namer = Callable[[str, Any], str]


def _arg(key: str, value: Any) -> str:
    return f"{key}={value!r}"


def parse_rate(value: Any, fmt: Namer = _arg) -> tuple[int, float]:
    """``"3/hour"`` (also ``3/h``, ``10/day``, ``1/min``, ``5/30m``, ``2/90s``) or ``(3, 3600)`` →
    (changes, window seconds); the ``ValueError`` names the argument (``fmt("max_rate", value)``)."""
    where = fmt("max_rate", value)
    if isinstance(value, tuple | list) and len(value) == 2:
        n, seconds = value
        if isinstance(n, bool) or not isinstance(n, int) or isinstance(seconds, bool) \
                or not isinstance(seconds, int | float):
            raise ValueError(f"{where}: expected (changes, seconds) such as (3, 3600)")
    elif isinstance(value, str):
        m = _RATE.match(value.lower())
        unit = _UNITS.get(m.group(3)) if m else None
        if m is None or unit is None:
            raise ValueError(f"{where}: expected a rate such as 3/hour, 10/day or 5/30m")
        n, seconds = int(m.group(1)), float(m.group(2) or 1.0) * unit
    else:
        raise ValueError(f"{where}: expected a rate such as '3/hour' or (3, 3600)")
    if n < 1:
        raise ValueError(f"{where}: expected at least 1 change per window (to block every change, freeze the agent)")
    if not (math.isfinite(seconds) and 1.0 <= seconds <= 31 * 86400.0):
        raise ValueError(f"{where}: expected a window from 1 second to 31 days")
    return n, float(seconds)


def _kinds(value: Any, fmt: Namer) -> frozenset[str]:
    if isinstance(value, str):
        items: list[Any] = [k.strip() for k in value.split(",") if k.strip()]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise ValueError(f"{fmt('approve', value)}: expected change kinds such as ('tools', 'system_prompt')")
    bad = [k for k in items if not isinstance(k, str) or k not in KINDS]
    if bad:
        raise ValueError(f"{fmt('approve', value)}: unknown change kind {bad[0]!r}; kinds: {', '.join(KINDS)}")
    return frozenset(items)


def policy_from_options(options: Mapping[str, Any], fmt: Namer = _arg) -> GuardPolicy | None:
    """The policy of ``on_alarm=``, ``approve=`` and ``max_rate=`` in ``options``; ``None`` when none of them is
    there. The ``ValueError`` names the argument (``fmt(key, value)``)."""
    if not any(options.get(k) is not None for k in POLICY_KEYS):
        return None
    on_alarm = options.get("on_alarm") or "page"
    if on_alarm not in ON_ALARM:
        raise ValueError(f"{fmt('on_alarm', on_alarm)}: expected page, freeze or rollback")
    kinds = _kinds(options.get("approve") or (), fmt)
    rate = options.get("max_rate")
    n, seconds = (None, 3600.0) if rate is None else parse_rate(rate, fmt)
    return GuardPolicy(on_alarm=on_alarm, approve=kinds, max_changes=n, window_s=seconds)


def parse_policies(text: str, var: str = "DRIFTWATCH_GUARD") -> dict[str, GuardPolicy]:
    """``AGENT: key=value ...; AGENT: ...`` → ``{agent: policy}`` (``*``: the default of every other agent).

    Keys: ``on_alarm=page|freeze|rollback``, ``approve=KIND,KIND``, ``max_rate=N/UNIT``. The ``ValueError`` is
    one line naming ``var``, the agent and the key.
    """
    out: dict[str, GuardPolicy] = {}
    for n, entry in enumerate(e.strip() for e in text.split(";")):
        if not entry:
            continue
        agent, sep, body = entry.partition(":")
        agent = agent.strip()
        if not sep or not agent or "=" in agent:
            raise ValueError(f"{var}: entry {n + 1} ({entry[:60]!r}): expected 'AGENT: key=value ...' "
                             "(entries separated by ';')")
        if agent in out:
            raise ValueError(f"{var}: agent {agent!r} is given twice")
        values: dict[str, str] = {}
        for item in body.split():
            key, eq, value = item.partition("=")
            if not eq or not value:
                raise ValueError(f"{var}: agent {agent!r}: {item!r}: expected key=value")
            if key not in POLICY_KEYS:
                raise ValueError(f"{var}: agent {agent!r}: unknown key {key!r} (known: {', '.join(POLICY_KEYS)})")
            values[key] = value

        def fmt(key: str, value: Any, agent: str = agent) -> str:
            return f"{var}: agent {agent!r}: {key}={value}"

        out[agent] = policy_from_options(values, fmt) or DEFAULT_POLICY
    return out
