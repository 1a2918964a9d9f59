"""Settings: every knob of driftwatch, from ``configure(...)`` arguments or ``DRIFTWATCH_*`` variables.

Precedence: an argument to :func:`driftwatch.configure` wins over the environment, which wins over
the default. A bad value raises :class:`ConfigError` with one line naming the setting or variable.
OpenTelemetry itself is configured the OpenTelemetry way (providers, ``OTEL_*`` variables): driftwatch
only takes an optional ``tracer_provider``. Per-agent options (format checks, refusal classifiers …) are
not settings: :func:`driftwatch.configure_agent` sets them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftwatch.guardrails.policy import GuardPolicy, parse_policies

__all__ = ["ENV_PREFIX", "ConfigError", "Settings"]

ENV_PREFIX = "DRIFTWATCH_"


class ConfigError(ValueError):
    """A setting or ``DRIFTWATCH_*`` variable has a bad value; the message is one line naming it."""


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one :class:`~driftwatch.runtime.Runtime`."""

    #: master switch: when off, watched code runs untouched and nothing is recorded
    enabled: bool = True
    #: ledger path or URL (``driftwatch.db``, ``sqlite:///…``, ``:memory:``, ``postgresql://…`` for a fleet)
    ledger: str = "driftwatch.db"
    #: export Prometheus metrics
    metrics: bool = True
    #: the registry metrics are registered on (``None``: prometheus_client's default ``REGISTRY``)
    registry: Any = None
    #: emit OpenTelemetry spans
    tracing: bool = True
    #: an OpenTelemetry ``TracerProvider`` (``None``: the global one)
    tracer_provider: Any = None
    #: write the structlog audit log
    audit: bool = True
    #: append JSON lines to this file instead of the ``driftwatch.audit`` stdlib logger
    audit_log: str | None = None
    #: a structlog-style logger to emit audit events through (overrides ``audit_log``)
    audit_logger: Any = None
    #: let prompt text and diffs leave the process (spans, audit log); off by default
    capture_content: bool = False
    #: applied to every text that leaves the process when ``capture_content`` is on
    redact: Callable[[str], str] | None = None
    #: serve ``/metrics`` on this port at first use (``None``: only when start_http_server is called)
    metrics_port: int | None = None
    #: address for ``metrics_port``
    metrics_addr: str = "127.0.0.1"
    #: run the behavioural drift engine
    drift: bool = True
    #: calls before a change that form the new reference
    drift_reference_calls: int = 1000
    #: false-alarm budget per call for the whole bank of one agent
    drift_false_alarm_rate: float = 1e-4
    #: replicas serving one agent (the false-alarm budget is split between them)
    drift_replicas: int = 1
    #: replicas pool their drift evidence through the shared ledger (one fleet-wide statistic, half the
    #: budget; each replica's own bank keeps the other half, split between the ``drift_replicas``)
    drift_pool: bool = False
    #: seconds between polls of the ledger for operator commands (``driftwatch accept``/``reset``, and the guard's
    #: ``freeze``/``unfreeze``/``rollback``/``approve``/``reject``; 0: never poll)
    drift_poll_s: float = 2.0
    #: agents with their own series and state per process; past it, a new agent takes the place of an idle one
    #: or is counted as ``other``
    max_agents: int = 200
    #: components per agent with their own series and state; later ones are counted as ``other`` (their
    #: changes are still recorded in the ledger)
    max_components: int = 500
    #: tool names per agent in ``driftwatch_tool_calls_total``; later ones are counted as ``other``
    max_tools: int = 50
    #: score metric names per agent in ``driftwatch_score``; later ones are counted as ``other``
    max_score_metrics: int = 20
    #: seconds without a call, change or score after which an agent may give its place to a new one
    agent_idle_s: float = 600.0
    #: characters of a change's diff sent to spans and the audit log (content capture on); a longer diff is cut
    #: and says so
    max_diff_chars: int = 65_536
    #: seconds one call into driftwatch may wait in total for the ledger; a write not done by then is kept and
    #: written by a background thread (0: never wait; see docs/reliability.md)
    ledger_wait_s: float = 0.05
    #: ledger writes kept in memory while the ledger is slow or unavailable; past it the oldest is dropped
    ledger_queue: int = 10_000
    #: seconds the process waits at exit (and ``close()``) for kept ledger writes; those left are lost, and logged
    ledger_drain_s: float = 5.0
    #: calls kept before their signals, metrics, call windows and drift statistics are worked out together, in one
    #: batch (cheaper than one at a time between the agent's own steps; 1: each call at once). A scrape, a read of
    #: the state, a change, a score and ``close()`` process the kept calls first (see docs/reliability.md)
    call_batch: int = 32
    #: seconds a kept call waits at most for its batch (a background thread processes a lone call after it)
    call_batch_s: float = 1.0
    #: mode of the files driftwatch creates (ledger and its -wal/-shm, report, audit log), octal; they hold prompts
    file_mode: int = 0o600
    #: guard policies by agent, in ``DRIFTWATCH_GUARD`` form (``"bot: on_alarm=rollback approve=tools
    #: max_rate=3/hour; *: on_alarm=freeze"``; see ``docs/guardrails.md``); ``configure_agent`` wins over it
    guard: Mapping[str, GuardPolicy] = field(default_factory=dict, hash=False)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``DRIFTWATCH_*`` variables, then ``overrides`` (validated)."""
        env = os.environ if environ is None else environ
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = [k for k in overrides if k not in known]
        if unknown:
            raise ConfigError(
                f"unknown driftwatch setting {unknown[0]!r}; known settings: {', '.join(sorted(_PUBLIC))}")
        values: dict[str, Any] = {}
        for name, parse in _ENV.items():
            var = ENV_PREFIX + name.upper()
            raw = env.get(var)
            if raw is not None and raw.strip() != "":
                values[name] = parse(var, raw.strip())
        for name, value in overrides.items():
            values[name] = _check_arg(name, value)
        return cls(**values)


def _bool(var: str, raw: str) -> bool:
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{var}={raw!r}: expected true or false")


def _int(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(var: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{var}={raw!r}: expected a whole number") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{var}={raw!r}: expected a number from {lo} to {hi}")
        return value
    return parse


def _rate(var: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r}: expected a number such as 1e-4") from None
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ConfigError(f"{var}={raw!r}: expected a rate between 0 and 1 (exclusive)")
    return value


def _seconds(var: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r}: expected a number of seconds such as 2 or 0.5") from None
    if not (math.isfinite(value) and 0.0 <= value <= 86_400.0):
        raise ConfigError(f"{var}={raw!r}: expected seconds from 0 to 86400")
    return value


def _str(var: str, raw: str) -> str:
    return raw


def _file_mode(var: str, raw: str) -> int:
    """An octal mode such as ``0600`` or ``0640``: owner read and write, nothing executable."""
    text = raw.strip().lower().removeprefix("0o")
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not (0 <= value <= 0o666 and value & 0o600 == 0o600 and value & 0o111 == 0):
        raise ConfigError(f"{var}={raw!r}: expected an octal file mode with owner read and write and no execute "
                          "bits, such as 0600 or 0640")
    return value


def _guard(var: str, raw: str) -> dict[str, GuardPolicy]:
    try:
        return parse_policies(raw, var)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


_ENV: dict[str, Callable[[str, str], Any]] = {
    "enabled": _bool,
    "ledger": _str,
    "metrics": _bool,
    "tracing": _bool,
    "audit": _bool,
    "audit_log": _str,
    "capture_content": _bool,
    "metrics_port": _int(1, 65535),
    "metrics_addr": _str,
    "drift": _bool,
    "drift_reference_calls": _int(50, 10_000_000),
    "drift_false_alarm_rate": _rate,
    "drift_replicas": _int(1, 100_000),
    "drift_pool": _bool,
    "drift_poll_s": _seconds,
    "max_agents": _int(1, 1_000_000),
    "max_components": _int(1, 1_000_000),
    "max_tools": _int(1, 100_000),
    "max_score_metrics": _int(1, 100_000),
    "agent_idle_s": _seconds,
    "max_diff_chars": _int(1_000, 100_000_000),
    "ledger_wait_s": _seconds,
    "ledger_queue": _int(1, 10_000_000),
    "ledger_drain_s": _seconds,
    "file_mode": _file_mode,
    "guard": _guard,
    "call_batch": _int(1, 4096),
    "call_batch_s": _seconds,
}
_PUBLIC = set(_ENV) | {"registry", "tracer_provider", "audit_logger", "redact"}


def _check_arg(name: str, value: Any) -> Any:
    """Validate a ``configure()`` argument with the same rules as its environment variable."""
    if value is None and name in ("registry", "tracer_provider", "audit_log", "audit_logger", "redact",
                                  "metrics_port"):
        return None
    parse = _ENV.get(name)
    if parse is _bool and not isinstance(value, bool):
        raise ConfigError(f"configure({name}={value!r}): expected True or False")
    if parse is _str and not isinstance(value, str):
        raise ConfigError(f"configure({name}={value!r}): expected a string")
    if parse is _guard:
        if isinstance(value, str):
            return _guard(f"configure({name})", value)
        if isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, GuardPolicy)
                                              for k, v in value.items()):
            return dict(value)
        raise ConfigError(f"configure(guard={value!r}): expected a DRIFTWATCH_GUARD string such as "
                          "'bot: on_alarm=rollback'")
    if parse is not None and parse not in (_bool, _str, _file_mode):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"configure({name}={value!r}): expected a number")
        return parse(f"configure({name})", str(value))
    if parse is _file_mode:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"configure(file_mode={value!r}): expected an octal mode such as 0o600 or '0640'")
        return parse("configure(file_mode)", value if isinstance(value, str) else oct(value))
    if name == "redact" and not callable(value):
        raise ConfigError(f"configure(redact={value!r}): expected a function from str to str")
    return value
