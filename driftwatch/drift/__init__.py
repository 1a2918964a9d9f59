"""Behavioural drift: per-call signals, a reference anchored at each self-modification, calibrated alarms.

>>> import driftwatch.drift as drift
>>> mon = drift.DriftMonitor(false_alarm_rate=1e-4)
>>> mon.fit_reference(records)                 # CallRecords from before the change
>>> status = mon.update(record)                # DriftStatus(alarm, score, signals)

Inside a watched process the runtime runs one :class:`DriftEngine` (``get_runtime().drift``) that
does this per agent, anchored at every recorded change. :func:`driftwatch.configure_agent` declares an
agent's format check, refusal classifier, evaluator and embedding (also importable from here);
:func:`accept` and :func:`reset` act on latched alarms of this process (``driftwatch accept AGENT`` does
it from a shell), :func:`status` shows an agent's state; :class:`FleetPool` pools the evidence of a
fleet's replicas. The design and the benchmark are in
``docs/drift.md``. No framework imports in here.

This ``__init__`` is the package's public face: its process-level functions act on the process's
runtime. The engine and the maths (``engine.py``, ``monitor.py``, ``calibrate.py``, ``record.py``) know
nothing of the runtime.
"""

from __future__ import annotations

from typing import Any

from driftwatch.drift.engine import DriftEngine
from driftwatch.drift.fleet import FleetPool
from driftwatch.drift.monitor import DriftMonitor
from driftwatch.drift.record import BEHAVIOUR_SIGNALS, COMBINED_SIGNAL, OPERATIONAL_SIGNALS, CallRecord, DriftStatus
from driftwatch.options import AgentOptions
from driftwatch.signals import REFUSAL_PHRASES, is_refusal

__all__ = [
    "BEHAVIOUR_SIGNALS",
    "COMBINED_SIGNAL",
    "OPERATIONAL_SIGNALS",
    "REFUSAL_PHRASES",
    "AgentOptions",
    "CallRecord",
    "DriftEngine",
    "DriftMonitor",
    "DriftStatus",
    "FleetPool",
    "accept",
    "configure_agent",
    "is_refusal",
    "reset",
    "status",
]


def _engine() -> DriftEngine | None:
    from driftwatch.runtime import get_runtime  # at call time: the runtime imports this package's engine

    rt = get_runtime()
    rt.flush_calls()  # the calls kept for a batch count first
    return rt.drift


def configure_agent(agent: str, **options: Any) -> AgentOptions:
    """:func:`driftwatch.configure_agent` (the one way to set an agent's options), importable from here too."""
    from driftwatch.runtime import configure_agent as configure

    return configure(agent, **options)


def accept(agent: str | None = None) -> list[str]:
    """Accept an agent's current behaviour (all agents when ``None``) in this process: unlatch its
    alarms and make its recent calls the new reference. Returns the agents acted on."""
    engine = _engine()
    return [] if engine is None else engine.accept(agent)


def reset(agent: str | None = None) -> list[str]:
    """Unlatch an agent's alarms (all when ``None``) in this process and restart its statistics."""
    engine = _engine()
    return [] if engine is None else engine.reset(agent)


def status(agent: str) -> dict[str, Any] | None:
    """An agent's drift state in this process (``None`` when the drift engine is off)."""
    engine = _engine()
    return None if engine is None else engine.status(agent)
