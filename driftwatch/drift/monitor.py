"""The detector: a bank of one-sided CUSUMs over per-call signals, against a frozen reference.

:class:`DriftMonitor` keeps a bounded ring of the latest calls (the next reference), and, once a
reference is frozen (:meth:`~DriftMonitor.fit_reference` or :meth:`~DriftMonitor.freeze`), one
CUSUM statistic per signal direction:

* ``output_chars`` — log answer length (characters; output tokens when characters are unknown),
  standardized on the reference, clipped at ±4 sd: an upward and a downward mean-shift CUSUM;
* ``refusal``, ``format_failure``, ``error`` — an upward Bernoulli-rate CUSUM each;
* ``tool_mix`` — an upward Bernoulli CUSUM per tool category (the reference's top tools, "no tool",
  "any other tool");
* ``score`` — a downward mean-shift CUSUM on the standardized score;
* ``embedding`` — a 16-dimension random projection, an upward and a downward CUSUM per dimension.

The false-alarm budget (per call, for the whole bank) is split equally across the active signals,
then across each signal's statistics (Bonferroni); :mod:`driftwatch.drift.calibrate` turns each
share into a threshold. Alarms latch until :meth:`~DriftMonitor.reset` or
:meth:`~DriftMonitor.accept`. Work per call is constant (a handful of float operations per
statistic); memory is the ring, bounded by ``reference_calls``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

from driftwatch.drift.calibrate import (
    bernoulli_design,
    bernoulli_thresholds,
    continuous_thresholds,
    smoothed_rate,
)
from driftwatch.drift.record import BEHAVIOUR_SIGNALS, OPERATIONAL_SIGNALS, CallRecord, DriftStatus

__all__ = ["DriftMonitor"]

_log1p = math.log1p
_KNOWN = set(BEHAVIOUR_SIGNALS) | set(OPERATIONAL_SIGNALS)
_NONE = "(none)"
#: embeddings are projected and scored this many calls at a time
EMBEDDING_BATCH = 16
_OTHER = "(other)"


class _Continuous:
    """Upward and downward mean-shift CUSUMs on ``(f(x) − μ)/σ`` clipped to ±clip."""

    __slots__ = ("a", "c", "clip", "dn", "field", "h_dn", "h_up", "inv_h_dn", "inv_h_up", "inv_sd", "log", "mu",
                 "n", "name", "up")

    def __init__(self, name: str, field: str, log: bool, mu: float, sd: float, shift: float, clip: float,
                 h_up: float, h_dn: float, n: int) -> None:
        self.name, self.field, self.log = name, field, log
        self.mu, self.inv_sd = mu, 1.0 / sd
        self.a, self.c, self.clip = shift, shift * shift / 2.0, clip
        self.h_up, self.h_dn = h_up, h_dn
        self.inv_h_up = 0.0 if h_up == math.inf else 1.0 / h_up
        self.inv_h_dn = 0.0 if h_dn == math.inf else 1.0 / h_dn
        self.up = self.dn = 0.0
        self.n = n

    def step(self, record: CallRecord) -> float:
        v = getattr(record, self.field)
        if v is None:
            return -1.0
        return self.core(v)

    def core(self, v: float) -> float:
        z = ((_log1p(v) if self.log else v) - self.mu) * self.inv_sd
        clip = self.clip
        if z > clip:
            z = clip
        elif z < -clip:
            z = -clip
        az, c = self.a * z, self.c
        up = self.up + az - c
        if up < 0.0:
            up = 0.0
        dn = self.dn - az - c
        if dn < 0.0:
            dn = 0.0
        self.up, self.dn = up, dn
        r1, r2 = up * self.inv_h_up, dn * self.inv_h_dn
        return r1 if r1 > r2 else r2

    def reset(self) -> None:
        self.up = self.dn = 0.0

    def describe(self) -> dict[str, Any]:
        return {"kind": "mean_shift", "reference_values": self.n, "statistic_up": self.up,
                "statistic_down": self.dn, "threshold_up": self.h_up, "threshold_down": self.h_dn}


class _Cost(_Continuous):
    """Log of all tokens of a call (input + output): the operational cost signal."""

    __slots__ = ()

    def step(self, record: CallRecord) -> float:
        out, inp = record.tokens, record.input_tokens
        if out is None and inp is None:
            return -1.0
        return self.core((out or 0) + (inp or 0))


class _Rate:
    """Two upward Bernoulli-rate CUSUMs, tuned to a moderate and to a large rate increase.

    ``invert``: the event is a false value (a failed format check)."""

    __slots__ = ("field", "h", "h2", "i0", "i1", "inv_h", "inv_h2", "invert", "j0", "j1", "n", "name", "p0", "p1",
                 "p2", "s", "s2")

    def __init__(self, name: str, field: str, invert: bool, p0: float, p1: float, h: float, p2: float, h2: float,
                 n: int) -> None:
        self.name, self.field, self.invert = name, field, invert
        self.p0, self.p1, self.p2 = p0, p1, p2
        self.i1 = math.log(p1 / p0)
        self.i0 = math.log((1.0 - p1) / (1.0 - p0))
        self.j1 = math.log(p2 / p0)
        self.j0 = math.log((1.0 - p2) / (1.0 - p0))
        self.h, self.inv_h = h, 1.0 / h
        self.h2, self.inv_h2 = h2, 1.0 / h2
        self.s = self.s2 = 0.0
        self.n = n

    def step(self, record: CallRecord) -> float:
        v = getattr(record, self.field)
        if v is None:
            return -1.0
        if (not v) ^ self.invert:
            s, s2 = self.s + self.i0, self.s2 + self.j0
        else:
            s, s2 = self.s + self.i1, self.s2 + self.j1
        if s < 0.0:
            s = 0.0
        if s2 < 0.0:
            s2 = 0.0
        self.s, self.s2 = s, s2
        r, r2 = s * self.inv_h, s2 * self.inv_h2
        return r if r > r2 else r2

    def reset(self) -> None:
        self.s = self.s2 = 0.0

    def describe(self) -> dict[str, Any]:
        return {"kind": "rate", "reference_values": self.n, "reference_rate": self.p0,
                "design_rates": [self.p1, self.p2], "statistics": [self.s, self.s2], "threshold": self.h,
                "thresholds": [self.h, self.h2]}


class _Tools:
    """Upward Bernoulli CUSUMs, one per tool category present in the reference."""

    __slots__ = ("cats", "field", "h", "i0", "i1", "index", "inv_h", "n", "name", "other", "p0", "s")

    def __init__(self, cats: list[str], p0: list[float], p1: list[float], h: list[float], n: int) -> None:
        self.name, self.field = "tool_mix", "tools"
        self.cats = cats
        self.index = {c: i for i, c in enumerate(cats)}
        self.other = self.index.get(_OTHER, -1)
        self.p0 = p0
        self.i1 = [math.log(b / a) for a, b in zip(p0, p1, strict=True)]
        self.i0 = [math.log((1.0 - b) / (1.0 - a)) for a, b in zip(p0, p1, strict=True)]
        self.h = h
        self.inv_h = [1.0 / x for x in h]
        self.s = [0.0] * len(cats)
        self.n = n

    def step(self, record: CallRecord) -> float:
        tools = record.tools
        if tools is None:
            return -1.0
        index, other = self.index, self.other
        present = {index.get(t, other) for t in tools} if tools else {index.get(_NONE, -1)}
        s, i0, i1, inv_h = self.s, self.i0, self.i1, self.inv_h
        best = 0.0
        for j in range(len(s)):
            v = s[j] + (i1[j] if j in present else i0[j])
            if v < 0.0:
                v = 0.0
            s[j] = v
            r = v * inv_h[j]
            if r > best:
                best = r
        return best

    def reset(self) -> None:
        self.s = [0.0] * len(self.cats)

    def describe(self) -> dict[str, Any]:
        return {"kind": "tool_mix", "reference_values": self.n,
                "categories": {c: {"reference_rate": p, "statistic": s, "threshold": h}
                               for c, p, s, h in zip(self.cats, self.p0, self.s, self.h, strict=True)}}


class _Embedding:
    """Mean-shift CUSUMs on each dimension of a random projection (numpy): upward and downward, each
    tuned to a small and to a large shift.

    Updated a batch of calls at a time (:data:`EMBEDDING_BATCH`): the CUSUM recursion
    ``S_t = max(0, S_{t-1} + x_t)`` unrolls to ``S_t = C_t − min(−S_0, min_{k≤t} C_k)`` with ``C``
    the cumulative sum of the increments, so a batch is a few array operations and every call's
    statistic is still exact (an alarm is reported at the end of its batch).
    """

    __slots__ = ("clip", "coef", "field", "h", "inv_h", "inv_sd", "mu", "n", "name", "np", "offset", "s")

    def __init__(self, np: Any, mu: Any, sd: Any, shifts: tuple[float, float], clip: float,
                 h: tuple[float, float], n: int) -> None:
        self.name, self.field, self.np = "embedding", "embedding", np
        d = mu.shape[0]
        self.mu, self.inv_sd, self.clip = mu, 1.0 / sd, clip
        a1, a2 = shifts
        # columns: up(a1), down(a1), up(a2), down(a2), d each
        self.coef = np.repeat([a1, -a1, a2, -a2], d).reshape(4, d)
        self.offset = np.repeat([a1 * a1 / 2, a1 * a1 / 2, a2 * a2 / 2, a2 * a2 / 2], d)
        self.h = h
        self.inv_h = np.repeat([1.0 / h[0], 1.0 / h[0], 1.0 / h[1], 1.0 / h[1]], d)
        self.s = np.zeros(4 * d)
        self.n = n

    def step(self, record: CallRecord) -> float:  # embeddings go through batch()
        return -1.0

    def batch(self, y: Any) -> tuple[float, float]:
        """Feed projected rows ``y`` (k × d); returns (latest score, highest score in the batch)."""
        np = self.np
        z = np.clip((y - self.mu) * self.inv_sd, -self.clip, self.clip)
        inc = (z[:, None, :] * self.coef).reshape(z.shape[0], -1)
        inc -= self.offset
        cum = np.cumsum(inc, axis=0)
        stats = cum - np.minimum(np.minimum.accumulate(cum, axis=0), -self.s)
        self.s = stats[-1].copy()
        return float((self.s * self.inv_h).max()), float((stats * self.inv_h).max())

    def reset(self) -> None:
        self.s = self.np.zeros_like(self.s)

    def describe(self) -> dict[str, Any]:
        return {"kind": "embedding_projection", "reference_values": self.n, "dimensions": int(self.mu.shape[0]),
                "statistic": float(self.s.max()), "threshold": self.h[0], "thresholds": list(self.h)}


class DriftMonitor:
    """Sequential drift detection for one stream of calls (one agent in one process).

    >>> mon = DriftMonitor(false_alarm_rate=1e-4)
    >>> mon.fit_reference(records)          # CallRecords from before the change
    >>> status = mon.update(record)         # each call after it: DriftStatus(alarm, score, signals)

    ``false_alarm_rate``: the per-call false-alarm budget of the whole bank, divided by
    ``replicas`` when several processes watch one agent. ``reference_calls``: size of the ring of
    recent calls that :meth:`freeze` turns into the reference. ``shift``: the mean shift (in
    reference standard deviations) the continuous CUSUMs are tuned for (``embedding_shift`` for
    each projected embedding dimension, where shifts are spread thin); ``odds_ratio`` and
    ``min_step``: the rate increase the Bernoulli CUSUMs are tuned for. ``signals``: which signals
    to watch (default: the behavioural ones; ``OPERATIONAL_SIGNALS`` for latency and cost).
    """

    def __init__(self, false_alarm_rate: float = 1e-4, *, reference_calls: int = 1000, replicas: int = 1,
                 signals: Sequence[str] = BEHAVIOUR_SIGNALS, shift: float = 0.5, odds_ratio: float = 2.0,
                 min_step: float = 0.005, clip: float = 4.0, bootstrap: int = 16, min_values: int = 30,
                 embedding_dims: int = 16, embedding_shift: float = 0.3, seed: int = 0) -> None:
        if not (isinstance(false_alarm_rate, float | int) and 0.0 < false_alarm_rate < 1.0):
            raise ValueError(f"false_alarm_rate={false_alarm_rate!r}: expected a rate between 0 and 1 (exclusive)")
        if not (isinstance(reference_calls, int) and reference_calls >= 10):
            raise ValueError(f"reference_calls={reference_calls!r}: expected a whole number of at least 10")
        if not (isinstance(replicas, int) and replicas >= 1):
            raise ValueError(f"replicas={replicas!r}: expected a whole number of at least 1")
        unknown = [s for s in signals if s not in _KNOWN]
        if unknown:
            raise ValueError(f"signals: unknown signal {unknown[0]!r}; known: {', '.join(sorted(_KNOWN))}")
        if not shift > 0.0:
            raise ValueError(f"shift={shift!r}: expected a positive number of standard deviations")
        if not odds_ratio > 1.0:
            raise ValueError(f"odds_ratio={odds_ratio!r}: expected a number above 1")
        self.false_alarm_rate = float(false_alarm_rate)
        self.replicas = replicas
        self.reference_calls = reference_calls
        self.signal_names = tuple(signals)
        self.shift, self.odds_ratio, self.min_step, self.clip = shift, odds_ratio, min_step, clip
        self.bootstrap, self.min_values, self.embedding_dims, self.seed = bootstrap, min_values, embedding_dims, seed
        self.embedding_shift = embedding_shift
        self._bank: list[Any] = []
        self._steps: list[tuple[str, Any]] = []  # (signal, bound step) of the per-call signals
        self._score_sig: _Continuous | None = None
        self._emb_sig: _Embedding | None = None
        self._ratios: dict[str, float] = {}
        self._latched: dict[str, float] = {}
        self._armed = False
        self._ref_size = 0
        self.calls = 0
        self._ring: list[Any] = [None] * reference_calls
        self._ring_i = 0
        self._ring_n = 0
        self._score_ring: list[float] = [0.0] * reference_calls
        self._score_i = 0
        self._score_n = 0
        self._wants_emb = "embedding" in self.signal_names
        self._proj: Any = None  # (d × D) projection, made at the first embedding
        self._proj_dim = -1
        self._np: Any = None
        self._emb_pending: list[Any] = []  # raw embeddings not yet projected (< EMBEDDING_BATCH)
        self._emb_ring: Any = None  # (reference_calls × d) projected embeddings: the next reference
        self._emb_i = 0
        self._emb_n = 0
        self._warming = DriftStatus(False, 0.0, {}, (), True, 0)

    # -- state ------------------------------------------------------------------------------------
    @property
    def armed(self) -> bool:
        """A reference is frozen and the bank is running."""
        return self._armed

    @property
    def reference_size(self) -> int:
        """Calls in the frozen reference (0 while warming)."""
        return self._ref_size

    @property
    def ring_size(self) -> int:
        """Calls collected since the last freeze: the next reference."""
        return self._ring_n

    @property
    def latched(self) -> dict[str, float]:
        """Signals whose alarm is latched, with the score at which each fired."""
        return dict(self._latched)

    @property
    def bank_rate(self) -> float:
        """The per-call false-alarm budget this process's bank is calibrated to (``rate / replicas``)."""
        return self.false_alarm_rate / self.replicas

    def scores(self) -> dict[str, float]:
        """The latest score (statistic ÷ threshold) of each active signal."""
        return dict(self._ratios)

    def describe(self) -> dict[str, Any]:
        """Thresholds, statistics and reference figures of every active signal."""
        return {s.name: s.describe() for s in self._bank}

    # -- reference ----------------------------------------------------------------------------------
    def _ring_records(self) -> list[CallRecord]:
        n, i, cap = self._ring_n, self._ring_i, self.reference_calls
        ring = self._ring
        if n < cap:
            return ring[:n]
        return ring[i:] + ring[:i]

    def _ring_scores(self) -> list[float]:
        n, i, cap = self._score_n, self._score_i, self.reference_calls
        ring = self._score_ring
        return ring[:n] if n < cap else ring[i:] + ring[:i]

    def _ring_embeddings(self) -> list[Any]:
        self._flush_embeddings(score=False)
        n, i, cap = self._emb_n, self._emb_i, self.reference_calls
        if n == 0:
            return []
        ring = self._emb_ring
        rows = ring[:n] if n < cap else self._np.concatenate((ring[i:], ring[:i]))
        return list(rows)

    def clear_ring(self) -> None:
        """Forget the calls collected so far (the next reference starts from here)."""
        self._ring = [None] * self.reference_calls
        self._ring_i = self._ring_n = 0
        self._score_i = self._score_n = 0
        self._emb_pending = []
        self._emb_i = self._emb_n = 0

    def freeze(self) -> int:
        """Make the calls collected since the last freeze the reference (ring emptied); returns its size."""
        records, scores, vecs = self._ring_records(), self._ring_scores(), self._ring_embeddings()
        self.clear_ring()
        return self._fit(records, scores, vecs)

    def fit_reference(self, records: Iterable[CallRecord], scores: Iterable[float] = ()) -> int:
        """Freeze the given calls (and optional extra scores) as the reference; returns how many calls."""
        recs = list(records)
        for r in recs:
            if not isinstance(r, CallRecord):
                raise TypeError(f"fit_reference(records): expected CallRecord items, got {type(r).__name__}")
        self.clear_ring()  # the ring holds the calls since the last freeze
        vecs: list[Any] = []
        if self._wants_emb:
            raw = [r.embedding for r in recs if r.embedding is not None]
            if raw:
                vecs = list(self._project(raw))
        return self._fit(recs, [float(s) for s in scores], vecs)

    def _fit(self, records: list[CallRecord], scores: list[float], vecs: list[Any]) -> int:
        rng = random.Random(self.seed)
        specs: list[tuple[str, Any]] = []  # (signal, builder(alpha) -> signal object)
        names = self.signal_names
        mv = self.min_values

        if "output_chars" in names:
            chars = [r.output_chars for r in records if r.output_chars is not None]
            toks = [r.tokens for r in records if r.tokens is not None]
            field, vals = ("output_chars", chars) if len(chars) >= len(toks) else ("tokens", toks)
            if len(vals) >= mv:
                specs.append(self._continuous_spec("output_chars", field, True, [_log1p(v) for v in vals],
                                                   0.05, (True, True), rng))
        for name, field, invert in (("refusal", "refused", False), ("format_failure", "format_ok", True),
                                    ("error", "error", False)):
            if name in names:
                vals = [getattr(r, field) for r in records if getattr(r, field) is not None]
                if len(vals) >= mv:
                    k = sum(1 for v in vals if bool(v) ^ invert)
                    specs.append(self._rate_spec(name, field, invert, k, len(vals), rng))
        if "tool_mix" in names:
            tool_calls = [r.tools for r in records if r.tools is not None]
            if len(tool_calls) >= mv:
                specs.append(self._tools_spec(tool_calls, rng))
        if "score" in names:
            vals = [float(r.score) for r in records if r.score is not None] + scores
            if len(vals) >= mv:
                specs.append(self._continuous_spec("score", "score", False, vals, 0.02, (False, True), rng))
        if "embedding" in names and len(vecs) >= mv:
            specs.append(self._embedding_spec(vecs, rng))
        if "latency" in names:
            vals = [r.latency_s for r in records if r.latency_s is not None]
            if len(vals) >= mv:
                specs.append(self._continuous_spec("latency", "latency_s", True, [_log1p(v) for v in vals],
                                                   0.01, (True, False), rng))
        if "cost" in names:
            vals = [(r.tokens or 0) + (r.input_tokens or 0) for r in records
                    if r.tokens is not None or r.input_tokens is not None]
            if len(vals) >= mv:
                specs.append(self._continuous_spec("cost", "cost", True, [_log1p(v) for v in vals],
                                                   0.05, (True, False), rng, cls=_Cost))

        self._bank = []
        self._steps = []
        self._score_sig = self._emb_sig = None
        self._ratios = {}
        self._latched = {}
        self.calls = 0
        if not specs:
            self._armed = False
            self._ref_size = 0
            return 0
        share = self.bank_rate / len(specs)
        for _, build in specs:
            sig = build(share)
            self._bank.append(sig)
            self._ratios[sig.name] = 0.0
            if sig.name == "score":
                self._score_sig = sig
            elif sig.name == "embedding":
                self._emb_sig = sig
        self._steps = [(sig.name, sig.step) for sig in self._bank if sig.name != "embedding"]
        self._armed = True
        self._ref_size = len(records)
        return self._ref_size

    def _continuous_spec(self, name: str, field: str, log: bool, vals: list[float], floor: float,
                         directions: tuple[bool, bool], rng: random.Random,
                         cls: type[_Continuous] = _Continuous) -> tuple[str, Any]:
        n = len(vals)
        mu = sum(vals) / n
        sd = max(math.sqrt(sum((v - mu) ** 2 for v in vals) / max(n - 1, 1)), floor)
        z = [(v - mu) / sd for v in vals]
        n_stats = sum(directions)

        def build(alpha: float) -> _Continuous:
            a = alpha / n_stats
            h_up, h_dn = continuous_thresholds(z, (a if directions[0] else 0.0, a if directions[1] else 0.0),
                                               self.shift, self.clip, floor / sd, boot=self.bootstrap, rng=rng)
            return cls(name, field, log, mu, sd, self.shift, self.clip, h_up, h_dn, n)
        return name, build

    def _rate_spec(self, name: str, field: str, invert: bool, k: int, n: int,
                   rng: random.Random) -> tuple[str, Any]:
        def build(alpha: float) -> _Rate:
            p0 = smoothed_rate(k, n)
            odds2 = self.odds_ratio ** 2.5
            p1 = bernoulli_design(p0, self.odds_ratio, self.min_step)
            p2 = bernoulli_design(p0, odds2, 2.5 * self.min_step)
            h = bernoulli_thresholds(k, n, alpha / 2, self.odds_ratio, self.min_step, boot=self.bootstrap, rng=rng)
            h2 = bernoulli_thresholds(k, n, alpha / 2, odds2, 2.5 * self.min_step, boot=self.bootstrap, rng=rng)
            return _Rate(name, field, invert, p0, p1, h, p2, h2, n)
        return name, build

    def _tools_spec(self, tool_calls: list[tuple[str, ...]], rng: random.Random) -> tuple[str, Any]:
        n = len(tool_calls)
        counts: dict[str, int] = {}
        for tools in tool_calls:
            for t in set(tools):
                counts[t] = counts.get(t, 0) + 1
        top = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3] if c >= max(5, 0.01 * n)]
        cats, ks = [], []
        none_k = sum(1 for tools in tool_calls if not tools)
        for cat, k in [(t, counts[t]) for t in top] + [
                (_NONE, none_k), (_OTHER, sum(1 for tools in tool_calls if any(t not in top for t in tools)))]:
            if smoothed_rate(k, n) <= 0.9:
                cats.append(cat)
                ks.append(k)

        def build(alpha: float) -> _Tools:
            a = alpha / len(cats)
            p0 = [smoothed_rate(k, n) for k in ks]
            p1 = [bernoulli_design(p, self.odds_ratio, self.min_step) for p in p0]
            h = [bernoulli_thresholds(k, n, a, self.odds_ratio, self.min_step, boot=self.bootstrap, rng=rng)
                 for k in ks]
            return _Tools(cats, p0, p1, h, n)
        return "tool_mix", build

    def _embedding_spec(self, vecs: list[Any], rng: random.Random) -> tuple[str, Any]:
        np = self._np
        mat = np.vstack(vecs)
        n, d = mat.shape
        mu = mat.mean(axis=0)
        sd = np.maximum(mat.std(axis=0, ddof=1), 1e-9 + 1e-6 * np.abs(mu))
        pooled = ((mat - mu) / sd).ravel()
        if pooled.size > 4000:
            pooled = pooled[:: pooled.size // 4000 + 1]
        z = [float(v) for v in pooled]

        def build(alpha: float) -> _Embedding:
            a = alpha / (4 * d)
            shifts = (self.embedding_shift, 2.5 * self.embedding_shift)
            h = (_embedding_threshold(z, n, a, shifts[0], self.clip, self.bootstrap, rng),
                 _embedding_threshold(z, n, a, shifts[1], self.clip, self.bootstrap, rng))
            return _Embedding(np, mu, sd, shifts, self.clip, h, n)
        return "embedding", build

    # -- embedding projection ------------------------------------------------------------------------
    def _project(self, embeddings: list[Any]) -> Any:
        """Project raw embeddings (rows of one dimension D) to ``embedding_dims`` dimensions."""
        np = self._np
        if np is None:
            try:
                import numpy as np
            except ImportError:  # pragma: no cover - numpy is present wherever embeddings are
                raise RuntimeError("the embedding signal needs numpy (pip install numpy)") from None
            self._np = np
        mat = np.asarray(embeddings, dtype=float)
        if mat.ndim == 1:
            mat = mat[None, :]
        if mat.shape[1] != self._proj_dim:
            rs = np.random.default_rng(0xD1F7 + mat.shape[1])  # the same projection in every replica
            self._proj = (rs.standard_normal((self.embedding_dims, mat.shape[1])) / math.sqrt(mat.shape[1])).T
            self._proj_dim = mat.shape[1]
            self._emb_ring = np.zeros((self.reference_calls, self.embedding_dims))
            self._emb_i = self._emb_n = 0
        return mat @ self._proj

    def _flush_embeddings(self, *, score: bool = True) -> tuple[str, ...]:
        """Project the pending embeddings, add them to the ring and (armed) to the statistics."""
        pending = self._emb_pending
        if not pending:
            return ()
        self._emb_pending = []
        try:
            y = self._project(pending)
        except ValueError:  # embeddings of different lengths in one batch: skipped, never fatal
            return ()
        cap, i, k = self.reference_calls, self._emb_i, len(y)
        if k >= cap:
            self._emb_ring[:] = y[-cap:]
            i = 0
        elif i + k <= cap:
            self._emb_ring[i:i + k] = y
            i = (i + k) % cap
        else:
            first = cap - i
            self._emb_ring[i:] = y[:first]
            self._emb_ring[:k - first] = y[first:]
            i = k - first
        self._emb_i = i
        self._emb_n = min(cap, self._emb_n + k)
        sig = self._emb_sig
        if not score or sig is None or not self._armed:
            return ()
        latest, top = sig.batch(y)
        self._ratios["embedding"] = latest
        if top >= 1.0 and "embedding" not in self._latched:
            self._latched["embedding"] = top
            return ("embedding",)
        return ()

    # -- per call -------------------------------------------------------------------------------------
    def update(self, record: CallRecord) -> DriftStatus:
        """Feed one call: remember it for the next reference and, when armed, run the bank."""
        emb = record.embedding
        if emb is not None and self._wants_emb:  # projected in batches; the ring keeps no raw vector
            self._emb_pending.append(emb)
            record = CallRecord(record.output_chars, record.tokens, record.refused, record.tools, record.format_ok,
                                record.error, record.score, None, record.latency_s, record.input_tokens)
        i = self._ring_i
        self._ring[i] = record
        i += 1
        self._ring_i = 0 if i == self.reference_calls else i
        if self._ring_n < self.reference_calls:
            self._ring_n += 1
        if not self._armed:
            if len(self._emb_pending) >= EMBEDDING_BATCH:
                self._flush_embeddings(score=False)
            return self._warming
        self.calls += 1
        ratios = self._ratios
        fired: tuple[str, ...] = ()
        if len(self._emb_pending) >= EMBEDDING_BATCH:
            fired = self._flush_embeddings()
        for name, step in self._steps:
            r = step(record)
            if r >= 0.0:
                ratios[name] = r
                if r >= 1.0 and name not in self._latched:
                    self._latched[name] = r
                    fired += (name,)
        return DriftStatus(bool(self._latched), max(ratios.values()), ratios.copy(), fired, False, self.calls)

    def update_score(self, value: float) -> DriftStatus:
        """Feed a score that arrived on its own (not with a call): it only moves the ``score`` signal."""
        value = float(value)
        i = self._score_i
        self._score_ring[i] = value
        i += 1
        self._score_i = 0 if i == self.reference_calls else i
        if self._score_n < self.reference_calls:
            self._score_n += 1
        sig = self._score_sig
        if not self._armed:
            return self._warming
        fired: tuple[str, ...] = ()
        if sig is not None:
            r = sig.core(value)
            self._ratios["score"] = r
            if r >= 1.0 and "score" not in self._latched:
                self._latched["score"] = r
                fired = ("score",)
        ratios = self._ratios
        return DriftStatus(bool(self._latched), max(ratios.values()), dict(ratios), fired, False, self.calls)

    # -- operator actions -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Unlatch every alarm and restart the statistics against the same reference."""
        for sig in self._bank:
            sig.reset()
        for k in self._ratios:
            self._ratios[k] = 0.0
        self._latched = {}
        self.calls = 0

    def accept(self, min_calls: int | None = None) -> int:
        """Accept the current behaviour: unlatch, and freeze the calls collected since the last freeze
        as the new reference (if there are fewer than ``min_calls``, disarm and keep warming)."""
        need = self.min_values if min_calls is None else min_calls
        if self._ring_n >= need:
            return self.freeze()
        self.disarm()
        return 0

    def disarm(self) -> None:
        """Drop the reference (warming again); the ring keeps collecting."""
        self._bank = []
        self._steps = []
        self._score_sig = self._emb_sig = None
        self._ratios = {}
        self._latched = {}
        self._armed = False
        self._ref_size = 0
        self.calls = 0


def _embedding_threshold(z: list[float], n: int, alpha: float, shift: float, clip: float, boot: int,
                         rng: random.Random) -> float:
    """Common threshold of the per-dimension CUSUMs: the dimensions' standardized values are pooled
    (each dimension is estimated from ``n`` reference calls)."""
    from driftwatch.drift.calibrate import BIN, cramer, solve_threshold

    counts: dict[int, int] = {}
    for v in z:
        k = round(v / BIN)
        counts[k] = counts.get(k, 0) + 1
    atoms = sorted(counts)
    xs0 = [k * BIN for k in atoms]
    ws = [counts[k] / len(z) for k in atoms]
    half = shift * shift / 2.0
    reps = []
    for _ in range(boot):
        sample = rng.choices(z, k=n)
        m = sum(sample) / n
        s = max(math.sqrt(sum((v - m) ** 2 for v in sample) / max(n - 1, 1)), 1e-9)
        zs = [min(clip, max(-clip, (a - m) / s)) for a in xs0]
        reps.append(cramer([shift * v - half for v in zs], ws))
        reps.append(cramer([-shift * v - half for v in zs], ws))
    return solve_threshold(reps, alpha)
