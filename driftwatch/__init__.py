"""driftwatch: see every self-modification of an LLM agent, and the behavioural drift it causes.

>>> import driftwatch
>>> @driftwatch.watch(agent="support-bot")
... def answer(question: str) -> str: ...
>>> driftwatch.track("support-bot", "system_prompt", prompt, kind="system_prompt", source="agent")
>>> driftwatch.configure_agent("support-bot", format="json")   # how its answers are checked
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
from driftwatch.ledger import Ledger, LedgerError, open_ledger
from driftwatch.observation import Call, OptimizerRun
from driftwatch.options import AgentOptions
from driftwatch.revision import Revision
from driftwatch.runtime import configure, configure_agent, get_runtime, start_http_server

__all__ = [
    "KINDS",
    "AgentOptions",
    "Alarm",
    "Call",
    "Change",
    "ConfigError",
    "Ledger",
    "LedgerError",
    "OptimizerRun",
    "Revision",
    "Settings",
    "__version__",
    "configure",
    "configure_agent",
    "get_runtime",
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
          node: str | None = None) -> Change | None:
    """Report the current state of a prompt-bearing thing; returns the change, or ``None`` if none.

    ``state`` is a ``str`` or a JSON-able value. The first report of a component is its baseline (stored,
    not a change). ``kind`` is one of :data:`KINDS` (inferred from the changed keys of a dict state when
    omitted); ``source`` names who made the change (``runtime``, ``agent``, ``manual``, an optimizer).
    Call it as often as you like: an unchanged state costs a hash comparison.
    """
    _check_name("agent", agent)
    _check_name("component", component)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(KINDS)}")
    if not isinstance(source, str) or not _SOURCE_RE.match(source):
        raise ValueError(f"source={source!r}: expected a short name such as 'runtime', 'agent' or 'MIPROv2'")
    change = get_runtime().observe(agent, component, state, kind=kind, source=source, node=node)
    return None if change is None or change.is_baseline else change


def record_score(agent: str, value: float, *, metric: str = "score") -> None:
    """Attach an evaluation or feedback score (0 to 1) to an agent; it feeds ``driftwatch_score`` and drift."""
    _check_name("agent", agent)
    _check_name("metric", metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise ValueError(f"record_score(value={value!r}): expected a number from 0 to 1")
    get_runtime().record_score(agent, float(value), metric)
