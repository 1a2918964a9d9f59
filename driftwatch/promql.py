"""The PromQL signal set: every behaviour signal read back from Prometheus, written once.

The metric catalogue (:mod:`driftwatch.metrics`) says what driftwatch exports; this module says how
those series are read as signals — the error ratio, the refusal ratio, mean output length, mean score,
latency, the drift scores… The recording rules and the dashboards (``grafana/mixin/``) and
``driftwatch report --prometheus`` all render their PromQL from :data:`SIGNALS`, so a signal means
the same in a rule, a panel and a report. Every metric and label named here is in the catalogue (a
test checks it).

A :class:`Signal`'s expression is a template with placeholders:

- ``{sel}``: the label selector built from the caller's matchers, ``{job="driftwatch", agent="bot"}``;
  ``{sel:status="error"}`` adds matchers of the signal's own after the caller's;
- ``{w}``: the rate window (``10m``, ``$__rate_interval``);
- ``{by}``: the grouping labels (the signal's :attr:`Signal.by` unless the caller passes others);
- any other name (``{q}``, a quantile) is a parameter passed to :meth:`Signal.render` by keyword.

``REFUSAL.render(['agent="bot"'], "5m")`` is::

    sum by (agent) (rate(driftwatch_refusals_total{agent="bot"}[5m]))
    /
    sum by (agent) (rate(driftwatch_calls_total{agent="bot"}[5m]))

Nothing here imports the rest of driftwatch: the module only writes text.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "CALLS",
    "CHANGE_MAGNITUDE_QUANTILE",
    "DRIFT_ALARM",
    "DRIFT_SCORE",
    "ERROR",
    "FORMAT_FAILURE",
    "LATENCY",
    "LATENCY_QUANTILE",
    "OUTPUT_CHARS",
    "OUTPUT_CHARS_QUANTILE",
    "REFUSAL",
    "SCORE",
    "SIGNALS",
    "TOKENS",
    "TOKENS_PER_CALL",
    "TOOL_CALLS",
    "Signal",
    "matcher",
    "selector",
    "signal",
]

_RESERVED = frozenset({"sel", "w", "by"})


def selector(*matchers: str) -> str:
    """A label selector, empty matchers skipped: ``selector('job="x"', 'agent="a"')`` → ``{job="x", agent="a"}``."""
    return "{" + ", ".join(m for m in matchers if m) + "}"


def matcher(label: str, value: str, op: str = "=") -> str:
    """One label matcher, ``value`` escaped as a PromQL string: ``matcher("agent", "bot")`` → ``agent="bot"``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{label}{op}"{escaped}"'


class _Selector:
    """What ``{sel}`` renders to; ``{sel:extra}`` appends the signal's own matchers to the caller's."""

    __slots__ = ("matchers",)

    def __init__(self, matchers: Sequence[str]) -> None:
        self.matchers = tuple(matchers)

    def __format__(self, extra: str) -> str:
        return selector(*self.matchers, extra)


@dataclass(frozen=True)
class Signal:
    """One signal read from Prometheus: its name, how to show it, and its PromQL template."""

    #: short identifier (``refusal``), the drift signal's name where there is one
    name: str
    #: lower-case title for a plot or a table row (``refusal rate``)
    title: str
    #: what one value is (``share``, ``chars/call``, ``s``)
    unit: str
    #: PromQL with ``{sel}``, ``{w}``, ``{by}`` and parameter placeholders (see the module docstring)
    template: str
    #: the grouping labels of the result unless the caller passes ``by=``
    by: tuple[str, ...] = ("agent",)
    #: whether the template takes a rate window ``{w}`` (gauges such as the drift score do not)
    windowed: bool = field(init=False, compare=False)
    #: the template's placeholders other than ``sel``, ``w`` and ``by`` (``{"q"}`` for a quantile)
    parameters: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        names = {f for _, f, _, _ in string.Formatter().parse(self.template) if f}
        object.__setattr__(self, "windowed", "w" in names)
        object.__setattr__(self, "parameters", frozenset(names - _RESERVED))

    def render(self, matchers: Sequence[str] = (), window: str | None = None, *, by: Sequence[str] | None = None,
               **params: object) -> str:
        """The PromQL for ``matchers`` (each ``label="value"``, ``label=~"re"``…) over the rate ``window``.

        ``by`` replaces the grouping labels; ``params`` fill the signal's :attr:`parameters` (``q=0.9``).
        """
        if self.windowed and not window:
            raise ValueError(f"signal {self.name}: window= is required (a PromQL duration such as 5m)")
        if set(params) != self.parameters:
            raise ValueError(f"signal {self.name}: expected the parameters {sorted(self.parameters)}, "
                             f"got {sorted(params)}")
        grouping = self.by if by is None else tuple(by)
        if not grouping:
            raise ValueError(f"signal {self.name}: by= needs at least one label")
        return self.template.format(sel=_Selector(matchers), w=window, by=", ".join(grouping), **params)


# Template shapes. `series` is a metric name; `own` are matchers the signal adds to the caller's.

def _sel(own: str) -> str:
    return "{sel:" + own + "}" if own else "{sel}"


def _rate(series: str, own: str = "") -> str:
    return "sum by ({by}) (rate(" + series + _sel(own) + "[{w}]))"


def _ratio(numerator: str, denominator: str, own: str = "") -> str:
    """Per-second ``numerator`` over per-second ``denominator``: a share of calls, or a histogram's mean."""
    return _rate(numerator, own) + "\n/\n" + _rate(denominator)


def _quantile(histogram: str) -> str:
    return "histogram_quantile({q}, sum by ({by}, le) (rate(" + histogram + "_bucket{sel}[{w}])))"


def _max(gauge: str) -> str:
    return "max by ({by}) (" + gauge + "{sel})"


CALLS = Signal("calls", "calls", "calls/s", _rate("driftwatch_calls_total"), ("agent", "status"))
ERROR = Signal("error", "error rate", "share",
               _ratio("driftwatch_calls_total", "driftwatch_calls_total", own='status="error"'))
REFUSAL = Signal("refusal", "refusal rate", "share", _ratio("driftwatch_refusals_total", "driftwatch_calls_total"))
FORMAT_FAILURE = Signal("format_failure", "format failures", "share",
                        _ratio("driftwatch_format_failures_total", "driftwatch_calls_total"))
OUTPUT_CHARS = Signal("output_chars", "output length", "chars/call",
                      _ratio("driftwatch_output_chars_sum", "driftwatch_output_chars_count"))
OUTPUT_CHARS_QUANTILE = Signal("output_chars_quantile", "output length quantile", "chars",
                               _quantile("driftwatch_output_chars"))
TOKENS = Signal("tokens", "tokens", "tokens/s", _rate("driftwatch_tokens_total"), ("agent", "type"))
TOKENS_PER_CALL = Signal("tokens_per_call", "tokens per call", "tokens",
                         _ratio("driftwatch_tokens_total", "driftwatch_calls_total"))
TOOL_CALLS = Signal("tool_calls", "tool calls", "calls/s", _rate("driftwatch_tool_calls_total"), ("agent", "tool"))
SCORE = Signal("score", "score", "mean", _ratio("driftwatch_score_sum", "driftwatch_score_count"),
               ("agent", "metric"))
LATENCY = Signal("latency", "latency", "s/call",
                 _ratio("driftwatch_call_duration_seconds_sum", "driftwatch_call_duration_seconds_count"))
LATENCY_QUANTILE = Signal("latency_quantile", "latency quantile", "s", _quantile("driftwatch_call_duration_seconds"))
CHANGE_MAGNITUDE_QUANTILE = Signal("change_magnitude_quantile", "change magnitude quantile", "share",
                                   _quantile("driftwatch_change_magnitude"), ("agent", "kind"))
DRIFT_SCORE = Signal("drift_score", "drift score ÷ threshold", "ratio", _max("driftwatch_drift_score"),
                     ("agent", "signal"))
DRIFT_ALARM = Signal("drift_alarm", "drift alarm", "0/1", _max("driftwatch_drift_alarm"), ("agent", "signal"))
GUARD_ACTIONS = Signal("guard_actions", "guard actions", "actions/s", _rate("driftwatch_guard_actions_total"),
                       ("agent", "action"))
HELD_CHANGES = Signal("held_changes", "changes held for approval", "changes", _max("driftwatch_held_changes"))
GUARD_FROZEN = Signal("guard_frozen", "self-tuning frozen", "0/1", _max("driftwatch_guard_frozen"))

#: every signal
SIGNALS: tuple[Signal, ...] = (CALLS, ERROR, REFUSAL, FORMAT_FAILURE, OUTPUT_CHARS, OUTPUT_CHARS_QUANTILE, TOKENS,
                               TOKENS_PER_CALL, TOOL_CALLS, SCORE, LATENCY, LATENCY_QUANTILE, CHANGE_MAGNITUDE_QUANTILE,
                               DRIFT_SCORE, DRIFT_ALARM, GUARD_ACTIONS, HELD_CHANGES, GUARD_FROZEN)
_BY_NAME = {s.name: s for s in SIGNALS}


def signal(name: str) -> Signal:
    """The signal called ``name`` (``ValueError`` naming the known ones when there is none)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"signal {name!r}: expected one of {', '.join(sorted(_BY_NAME))}") from None
