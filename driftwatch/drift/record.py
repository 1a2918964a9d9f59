"""What the drift detector reads and says: :class:`CallRecord` in, :class:`DriftStatus` out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BEHAVIOUR_SIGNALS", "COMBINED_SIGNAL", "OPERATIONAL_SIGNALS", "CallRecord", "DriftStatus"]

#: the behavioural signals (values of the ``signal`` label), in the order they are reported
BEHAVIOUR_SIGNALS: tuple[str, ...] = (
    "output_chars", "refusal", "tool_mix", "format_failure", "score", "error", "embedding",
)
#: the multi-signal statistic's label: several behavioural signals moving a little at once
COMBINED_SIGNAL = "combined"
#: signals of the separate operational detector (load-dependent: never mixed into the behavioural bank)
OPERATIONAL_SIGNALS: tuple[str, ...] = ("latency", "cost")


@dataclass(slots=True)
class CallRecord:
    """The per-call facts drift is measured on; any unknown value is ``None``.

    ``output_chars`` (or ``tokens``, output tokens, when characters are unknown) measures answer
    length; ``tools`` names the tools the call used (``()``: none); ``format_ok`` is the result of a
    declared format check; ``score`` an evaluation in any fixed scale; ``embedding`` any vector
    (projected to 16 dimensions inside); ``latency_s`` and ``input_tokens`` feed only the
    operational detector.
    """

    output_chars: int | None = None
    tokens: int | None = None
    refused: bool | None = None
    tools: tuple[str, ...] | None = None
    format_ok: bool | None = None
    error: bool | None = None
    score: float | None = None
    embedding: Sequence[float] | Any | None = None
    latency_s: float | None = None
    input_tokens: int | None = None


class DriftStatus:
    """The detector's verdict after one update.

    ``alarm``: some signal's alarm is latched (until reset/accept); ``score``: the largest signal
    score; ``signals``: each active signal's statistic divided by its threshold (1.0 = alarm);
    ``fired``: signals whose alarm was raised by this very update; ``warming``: no reference yet.
    """

    __slots__ = ("_names", "_score", "_signals", "_values", "alarm", "calls", "fired", "warming")

    def __init__(self, alarm: bool, score: float, signals: dict[str, float], fired: tuple[str, ...] = (),
                 warming: bool = False, calls: int = 0) -> None:
        self.alarm = alarm
        self._score: float | None = score
        self._signals: dict[str, float] | None = signals
        self._names: tuple[str, ...] = ()
        self._values: tuple[float, ...] = ()
        self.fired = fired
        self.warming = warming
        self.calls = calls

    @classmethod
    def of(cls, alarm: bool, names: tuple[str, ...], values: tuple[float, ...], fired: tuple[str, ...],
           calls: int) -> DriftStatus:
        """A status whose ``signals`` and ``score`` are built from (names, values) when first read (the
        monitor's per-call path does not pay for a dict nobody reads)."""
        st = cls.__new__(cls)
        st.alarm, st.fired, st.warming, st.calls = alarm, fired, False, calls
        st._names, st._values = names, values
        st._score = st._signals = None
        return st

    @property
    def score(self) -> float:
        if self._score is None:
            self._score = max(self._values, default=0.0)
        return self._score

    @property
    def signals(self) -> dict[str, float]:
        if self._signals is None:
            self._signals = dict(zip(self._names, self._values, strict=True))
        return self._signals

    def __repr__(self) -> str:
        if self.warming:
            return "DriftStatus(warming)"
        return (f"DriftStatus(alarm={self.alarm}, score={self.score:.3f}, "
                f"signals={ {k: round(v, 3) for k, v in self.signals.items()} }, fired={self.fired})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DriftStatus):
            return NotImplemented
        return (self.alarm, self.score, self.signals, self.fired, self.warming) == (
            other.alarm, other.score, other.signals, other.fired, other.warming)

    __hash__ = None  # type: ignore[assignment]  # mutable value object
