"""The detector: a bank of one-sided CUSUMs over per-call signals, against a frozen reference, plus
two windowed χ² statistics (several signals at once; the embedding vector).

:class:`DriftMonitor` keeps a bounded ring of the latest calls (the next reference), and, once a
reference is frozen (:meth:`~DriftMonitor.fit_reference` or :meth:`~DriftMonitor.freeze`):

* ``output_chars`` — log answer length (characters; output tokens when characters are unknown) of the
  calls that are not refusals, standardized on the reference, clipped at ±4 sd: upward and downward
  mean-shift CUSUMs, each tuned to a small shift (``shift``, 0.25 sd) and to a large one (3 × ``shift``);
* ``score`` — the same on the score (downward only; ties and discrete scales handled by the calibration);
* ``refusal``, ``format_failure``, ``error`` — upward Bernoulli-rate CUSUMs tuned to odds × 2.4 and × 5.8 (a
  smaller design would be swamped by the reference's own uncertainty about a 2–4% rate), and two-sample
  tests of their own (conditional on the events of reference and window) in the combined statistic's
  windows and over every call since the anchor, which get most of the signal's budget
  (:data:`RATE_WINDOW_SHARE`, :data:`RATE_ANCHORED`); ``format_failure`` leaves refusals out (a refusal
  breaks the format by nature: the refusal signal owns it);
* ``tool_mix`` — per tool category (the reference's top tools, "no tool", "any other tool"), upward
  Bernoulli CUSUMs tuned to 10% and to 30% of all calls moving to that category (refusals excluded), and
  each category's own two-sample test over every call since the anchor (:data:`TOOL_ANCHORED` of the budget);
* ``embedding`` — a windowed χ² of the whitened 16-dimension projection (:mod:`driftwatch.drift.embedding`);
* ``combined`` — a windowed χ² that adds the evidence of all the scalar signals
  (:mod:`driftwatch.drift.combined`): a change that moves several signals a little is caught sooner than
  by any one of them.

The windowed statistics also test every call since the anchor (the change that froze the reference):
drift caused by a self-modification starts there, and no sliding window holds as much of it.

Calls that come in sessions are not independent: the reference's dependence is estimated
(:mod:`driftwatch.drift.dependence`) and every threshold calibrated for it. The false-alarm budget
(per call, for the whole bank) is split equally across the active signals and the combined statistic,
then across each signal's statistics (Bonferroni); :mod:`driftwatch.drift.calibrate` turns each share
into a threshold. Alarms latch until :meth:`~DriftMonitor.reset` or :meth:`~DriftMonitor.accept`. Work
per call is constant; memory is the ring, bounded by ``reference_calls``, plus fixed-size window rings. The
per-signal CUSUM banks are in :mod:`driftwatch.drift.cusum`.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

from driftwatch.drift import dependence
from driftwatch.drift.calibrate import (
    bernoulli_design,
    continuous_thresholds,
    mass_design,
    rate_threshold,
    smoothed_rate,
)
from driftwatch.drift.combined import BLOCK, WINDOWS, Combined, Part
from driftwatch.drift.cusum import NONE, OTHER, TOOL_MOVES, ContinuousCusum, CostCusum, RateCusum, ToolsCusum
from driftwatch.drift.dependence import Dependence, estimate, variance_time, variance_time_columns
from driftwatch.drift.embedding import EMBEDDING_WINDOWS, EmbeddingChi2, whitening
from driftwatch.drift.record import (
    BEHAVIOUR_SIGNALS,
    COMBINED_SIGNAL,
    OPERATIONAL_SIGNALS,
    CallRecord,
    DriftStatus,
)

__all__ = ["EMBEDDING_BATCH", "DriftMonitor"]

_log1p = math.log1p
_KNOWN = set(BEHAVIOUR_SIGNALS) | set(OPERATIONAL_SIGNALS)
#: embeddings are projected and scored this many calls at a time (one block of the embedding statistic)
EMBEDDING_BATCH = BLOCK
#: the large design of continuous signals, in multiples of ``shift``
_LARGE = 3.0
#: rates: the large design (odds ratio ** this), its share of the CUSUMs' budget, the window test's share
RATE_LARGE_POWER = 2.0
RATE_LARGE_SHARE = 0.5
RATE_WINDOW_SHARE = 0.95
#: rates: the share of the window test's budget for the test over every call since the anchor
RATE_ANCHORED = 0.95
#: the tool mix: the share of its budget for its own χ² test over every call since the anchor (the rest: CUSUMs)
TOOL_ANCHORED = 0.5
#: the combined and the embedding statistics: the share of their budget for the test since the anchor
COMBINED_ANCHORED = 0.5
EMBEDDING_ANCHORED = 0.5
#: rates whose statistics leave refusals out (a refusal breaks the format by nature: the refusal signal owns it)
RATES_WITHOUT_REFUSALS: tuple[str, ...] = ("format_failure",)
#: tools with their own statistics (the most used ones the reference saw at least twice)
TOOL_CATEGORIES = 8


class DriftMonitor:
    """Sequential drift detection for one stream of calls (one agent in one process).

    >>> mon = DriftMonitor(false_alarm_rate=1e-4)
    >>> mon.fit_reference(records)          # CallRecords from before the change
    >>> status = mon.update(record)         # each call after it: DriftStatus(alarm, score, signals)

    ``false_alarm_rate``: the per-call false-alarm budget of the whole bank, divided by
    ``replicas`` when several processes watch one agent (each alone; see :mod:`driftwatch.drift.fleet`
    to pool them instead). ``reference_calls``: size of the ring of recent calls that :meth:`freeze`
    turns into the reference. ``shift``: the small mean shift (in reference standard deviations) the
    continuous CUSUMs are tuned for (a second design at 3 × ``shift`` catches large shifts fast);
    ``odds_ratio`` and ``min_step``: the rate increase the Bernoulli CUSUMs are tuned for (a second design
    at ``odds_ratio ** 2``). ``signals``: which signals to watch (default: the behavioural ones;
    ``OPERATIONAL_SIGNALS`` for latency and cost). ``combined``: also run the multi-signal statistic
    (behavioural signals only, when at least two scalar signals are in the reference). ``dependence``:
    estimate session dependence from the reference and calibrate for it (``False``: assume independent
    calls).
    """

    def __init__(self, false_alarm_rate: float = 1e-4, *, reference_calls: int = 1000, replicas: int = 1,
                 signals: Sequence[str] = BEHAVIOUR_SIGNALS, shift: float = 0.25, odds_ratio: float = 2.4,
                 min_step: float = 0.005, clip: float = 4.0, bootstrap: int = 16, min_values: int = 30,
                 embedding_dims: int = 16, combined: bool = True, dependence: bool = True,
                 pool_rate: float | None = None, seed: int = 0) -> None:
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
        if pool_rate is not None and not 0.0 < pool_rate < false_alarm_rate:
            raise ValueError(f"pool_rate={pool_rate!r}: expected a part of false_alarm_rate (0 < pool_rate < "
                             f"{false_alarm_rate!r})")
        self.false_alarm_rate = float(false_alarm_rate)
        self.replicas = replicas
        self.reference_calls = reference_calls
        self.signal_names = tuple(signals)
        self.shift, self.odds_ratio, self.min_step, self.clip = shift, odds_ratio, min_step, clip
        self.bootstrap, self.min_values, self.embedding_dims, self.seed = bootstrap, min_values, embedding_dims, seed
        self.combined = combined and any(s in BEHAVIOUR_SIGNALS for s in self.signal_names)
        self.dependence = dependence
        self.pool_rate = pool_rate
        self._pool_h: dict[str, Any] = {}  # per signal: thresholds of its statistics at the fleet's share
        self._base: list[float] = []  # accumulator totals from before the last reset
        self._groups = 0
        self._dep: Dependence | None = None
        self._bank: list[Any] = []
        self._steps: list[tuple[str, Any]] = []  # (signal, bound step) of the per-call signals
        self._score_sig: ContinuousCusum | None = None
        self._emb_sig: EmbeddingChi2 | None = None
        self._comb: Combined | None = None
        self._solo: list[RateCusum] = []  # rates with tests of their own (combined windows)
        self._acc: list[float] = [0.0] * 2
        self._block = 0
        self._names: tuple[str, ...] = ()  # active signals, in bank order
        self._index: dict[str, int] = {}
        self._vals: list[float] = []  # latest score of each active signal
        self._comb_i = -1
        self._latched: dict[str, float] = {}
        self._effects: dict[str, dict[str, Any]] = {}
        self._armed = False
        self._ref_size = 0
        self.calls = 0
        self._calls_base = 0
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
        """The per-call false-alarm budget this process's bank is calibrated to: ``rate / replicas``, or with
        fleet pooling ``(rate − pool_rate) / replicas`` (the rest goes to the fleet's pooled statistics)."""
        return (self.false_alarm_rate - (self.pool_rate or 0.0)) / self.replicas

    def scores(self) -> dict[str, float]:
        """The latest score (statistic ÷ threshold) of each active signal."""
        return dict(zip(self._names, self._vals, strict=True))

    def effects(self, signal: str | None = None) -> dict[str, Any]:
        """How much each signal has moved: per signal, its standardized shift over the recent window with
        the strongest evidence (``shift_sd`` and ``t`` for continuous signals, ``rate`` vs
        ``reference_rate`` for rates, the most over-represented ``category`` of the tool mix; the
        embedding's ``mahalanobis`` shift). Recorded at each alarm (``effects(signal)`` then returns the
        figures at that alarm); empty while warming."""
        if signal is not None and signal in self._effects:
            return dict(self._effects[signal])
        return self._current_effects()

    def _current_effects(self) -> dict[str, Any]:
        out: dict[str, Any] = self._comb.effects() if self._comb is not None else {}
        if self._emb_sig is not None and self._emb_sig.blocks:
            out["embedding"] = self._emb_sig.effect()
        return out

    def describe(self) -> dict[str, Any]:
        """Thresholds, statistics and reference figures of every active signal (and ``dependence``)."""
        out: dict[str, Any] = {s.name: s.describe() for s in self._bank}
        if self._dep is not None:
            out["dependence"] = self._dep.describe()
        return out

    # -- fleet evidence -------------------------------------------------------------------------------
    def _totals(self) -> list[float]:
        """The accumulator summed over every monitored call since arming (resets included)."""
        acc, base = self._acc, self._base
        if self._comb is not None:
            cum = self._comb.cum[self._comb.head]
            return [b + c + a for b, c, a in zip(base, cum, acc, strict=True)]
        return [b + a for b, a in zip(base, acc, strict=True)]

    def evidence(self) -> dict[str, Any] | None:
        """This process's evidence since the reference was frozen, for pooling across replicas
        (:mod:`driftwatch.drift.fleet`; needs ``pool_rate``): JSON-able, additive across replicas.

        ``cusum``: per statistic its cumulative log-likelihood ratio divided by its threshold at the
        fleet's share of the budget; ``combined``: the combined statistic's parts and their summed values
        (with the expected event counts under the reference); ``embedding``: the whitened embedding sum.
        ``None`` while warming or without ``pool_rate``."""
        if not self._armed or not self.pool_rate:
            return None
        total = self._totals()
        cusum: dict[str, float] = {}
        for sig in self._bank:
            h = self._pool_h.get(sig.name)
            if h is not None:
                cusum.update(sig.terms(total, h))
        out: dict[str, Any] = {"calls": self.calls_total, "groups": self._groups, "cusum": cusum}
        if self._comb is not None:
            out["combined"] = self._comb.snapshot(total)
            # rates: the part of a group's share the fleet spends on its test since the anchor
            out["anchored"] = {sig.name: RATE_WINDOW_SHARE for sig in self._solo if isinstance(sig, RateCusum)}
        if self._emb_sig is not None:
            out["embedding"] = self._emb_sig.snapshot()
        return out

    @property
    def calls_total(self) -> int:
        """Monitored calls since the reference was frozen (resets included)."""
        return self._calls_base + self.calls

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
        """Freeze the given calls (in call order; and optional extra scores) as the reference; returns how
        many calls."""
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
        names = self.signal_names
        mv = self.min_values
        behaviour = not any(s in OPERATIONAL_SIGNALS for s in names)
        # 1. each signal's reference values (in call order) and what its statistics need
        plans: list[dict[str, Any]] = []
        series: list[list[float]] = []  # for the dependence fit; plan["series"] indexes into it

        def add_series(values: list[float]) -> int:
            series.append(values)
            return len(series) - 1

        if "output_chars" in names:
            ok = [r for r in records if not (behaviour and r.refused)]
            chars = [r.output_chars for r in ok if r.output_chars is not None]
            toks = [r.tokens for r in ok if r.tokens is not None]
            field, vals = ("output_chars", chars) if len(chars) >= len(toks) else ("tokens", toks)
            if len(vals) >= mv:
                logs = [_log1p(v) for v in vals]
                plans.append({"kind": "z", "name": "output_chars", "field": field, "log": True, "vals": logs,
                              "floor": 0.05, "dirs": (True, True), "series": add_series(logs)})
        for name, field, invert in (("refusal", "refused", False), ("format_failure", "format_ok", True),
                                    ("error", "error", False)):
            if name in names:
                skip = behaviour and name in RATES_WITHOUT_REFUSALS
                vals = [getattr(r, field) for r in records
                        if getattr(r, field) is not None and not (skip and r.refused)]
                if len(vals) >= mv:
                    ind = [1.0 if bool(v) ^ invert else 0.0 for v in vals]
                    plans.append({"kind": "rate", "name": name, "field": field, "invert": invert, "skip_refused": skip,
                                  "k": int(sum(ind)), "n": len(ind), "series": add_series(ind)})
        if "tool_mix" in names:
            tool_calls = [r.tools for r in records if r.tools is not None and not r.refused]
            if len(tool_calls) >= mv:
                plan = self._tools_plan(tool_calls, add_series)
                if plan is not None:  # no category below 90% (every call uses the same tools): nothing to watch
                    plans.append(plan)
        if "score" in names:
            vals = [float(r.score) for r in records if r.score is not None and not r.refused] + scores
            if len(vals) >= mv:
                plans.append({"kind": "z", "name": "score", "field": "score", "log": False, "vals": vals,
                              "floor": _resolution_floor(vals, 0.02), "dirs": (False, True),
                              "series": add_series(vals)})
        emb_plan = None
        if "embedding" in names and len(vecs) >= mv:
            emb_plan = self._embedding_plan(vecs)
        if "latency" in names:
            vals = [_log1p(r.latency_s) for r in records if r.latency_s is not None]
            if len(vals) >= mv:
                plans.append({"kind": "z", "name": "latency", "field": "latency_s", "log": True, "vals": vals,
                              "floor": 0.01, "dirs": (True, False), "series": add_series(vals)})
        if "cost" in names:
            vals = [_log1p((r.tokens or 0) + (r.input_tokens or 0)) for r in records
                    if r.tokens is not None or r.input_tokens is not None]
            if len(vals) >= mv:
                plans.append({"kind": "z", "name": "cost", "field": "cost", "log": True, "vals": vals,
                              "floor": 0.05, "dirs": (True, False), "series": add_series(vals), "cls": CostCusum})

        # 2. dependence between calls (one session process for every series)
        curves = [variance_time(v) for v in series]
        if emb_plan is not None:
            emb_plan["series0"] = len(curves)
            curves.extend(emb_plan["curves"])
        dep = estimate(curves, len(records)) if self.dependence and curves else None
        self._dep = dep if dep is not None and dep.rho > 0.0 else None

        def phi(i: int, safety: float | None = None) -> float:
            if dep is None:
                return 1.0
            return dep.phi(i, safety=dependence.SCALAR_SAFETY if safety is None else safety)

        # 3. build the statistics, each with its share of the budget
        self._bank = []
        self._steps = []
        self._score_sig = self._emb_sig = None
        self._comb = None
        self._solo = []
        self._set_names(())
        self._latched = {}
        self._effects = {}
        self.calls = 0
        self._calls_base = 0
        self._block = 0
        groups = len(plans) + (emb_plan is not None)
        scalar = [p for p in plans if p["name"] in BEHAVIOUR_SIGNALS]
        use_comb = self.combined and len(scalar) >= 2
        groups += use_comb
        self._pool_h = {}
        if not groups:
            self._groups = 0
            self._armed = False
            self._ref_size = 0
            return 0
        self._groups = groups
        share = self.bank_rate / groups
        pool_share = self.pool_rate / groups if self.pool_rate else 0.0
        # accumulator layout for the combined statistic
        slot = 0
        parts: list[Part] = []
        for p in plans:
            p["slot"] = slot
            width = len(p["cats"]) + 1 if p["kind"] == "cats" else 2
            slot += width
        acc = [0.0] * max(slot, 2)
        self._acc = acc
        for p in plans:
            if p["kind"] == "z":
                sig = self._build_continuous(p, phi(p["series"]), share, acc, rng, behaviour)
                if pool_share and p["name"] in BEHAVIOUR_SIGNALS:
                    self._pool_h[sig.name] = self._build_continuous(p, sig.phi, pool_share, acc, rng, behaviour).h
            elif p["kind"] == "rate":  # with the combined statistic: part of its share to a window test of its own
                sig = self._build_rate(p, phi(p["series"]), share * (1.0 - RATE_WINDOW_SHARE) if use_comb else share,
                                       acc)
                if pool_share:  # the fleet's own test since the anchor takes the same part as here
                    pool = self._build_rate(p, sig.phi, pool_share * (1.0 - RATE_WINDOW_SHARE) if use_comb
                                            else pool_share, acc)
                    self._pool_h[sig.name] = (pool.h, pool.h2)
            else:
                sig = self._build_tools(p, [phi(i) for i in p["series"]],
                                        share * (1.0 - TOOL_ANCHORED) if use_comb else share, acc)
                if pool_share:
                    self._pool_h[sig.name] = self._build_tools(p, sig.phi, pool_share, acc).h
            self._bank.append(sig)
            if sig.name == "score":
                self._score_sig = sig
            if use_comb and p["name"] in BEHAVIOUR_SIGNALS:
                parts.append(self._part(p, sig))
        if emb_plan is not None:
            s0 = emb_plan["series0"]
            phis = [max(1.0, phi(s0 + j, dependence.SAFETY)) for j in range(emb_plan["d"])]
            np = self._np
            transform = emb_plan["axes"] / (emb_plan["sd"] * np.sqrt(np.asarray(phis)))
            sig = EmbeddingChi2(np, emb_plan["mu"], transform, share, emb_plan["n"], phis,
                                _windows(EMBEDDING_WINDOWS, self._dep), EMBEDDING_ANCHORED)
            self._bank.append(sig)
            self._emb_sig = sig
        if use_comb:
            corr = _correlation([p for p in plans if p["kind"] == "z" and p["name"] in BEHAVIOUR_SIGNALS], records,
                                behaviour)
            self._comb = Combined(parts, corr, share, _windows(WINDOWS, self._dep), acc, COMBINED_ANCHORED)
            self._solo = []
            for sig in self._bank:
                if isinstance(sig, RateCusum):
                    a = share * RATE_WINDOW_SHARE
                    self._comb.add_solo(sig.name, a * (1.0 - RATE_ANCHORED), a * RATE_ANCHORED)
                    self._solo.append(sig)
                elif isinstance(sig, ToolsCusum):  # each category alone, as a rate (mass moving to it)
                    q = next(q for q in parts if q.signal == sig.name)
                    k = len(q.p)
                    for j in range(k):
                        self._comb.add_solo(sig.name, 0.0, share * TOOL_ANCHORED / k,
                                            Part(q.signal, "rate", q.slot + j, sig.phi[j], q.n_ref, [q.p[j]], side=1,
                                                 count_at=k - j))
                    self._solo.append(sig)
            self._bank.append(self._comb)
        self._set_names(tuple(sig.name for sig in self._bank))
        self._steps = [(self._index[sig.name], sig.name, sig.step) for sig in self._bank
                       if sig.name not in ("embedding", COMBINED_SIGNAL)]
        self._base = [0.0] * len(acc)
        self._armed = True
        self._ref_size = len(records)
        return self._ref_size

    def _part(self, plan: dict[str, Any], sig: Any) -> Part:
        if plan["kind"] == "z":  # score: drops only (as its CUSUM); length: either way
            return Part(plan["name"], "z", plan["slot"], sig.phi, sig.n, side=-1 if plan["name"] == "score" else 0)
        if plan["kind"] == "rate":
            return Part(plan["name"], "rate", plan["slot"], sig.phi, sig.n, [sig.p0], side=1)
        return Part("tool_mix", "cats", plan["slot"], max(sig.phi), sig.n, plan["p_first"], sig.cats,
                    groups=plan["groups"])

    def _build_continuous(self, p: dict[str, Any], phi: float, alpha: float, acc: list[float],
                          rng: random.Random, behaviour: bool) -> ContinuousCusum:
        vals, floor = p["vals"], p["floor"]
        n = len(vals)
        mu = sum(vals) / n
        sd = max(math.sqrt(sum((v - mu) ** 2 for v in vals) / max(n - 1, 1)), floor)
        z = [(v - mu) / sd for v in vals]
        up, down = p["dirs"]
        a = alpha / (2 * (up + down))
        designs = (self.shift, _LARGE * self.shift)
        h: dict[str, float] = {}
        for k, shift in enumerate(designs, start=1):
            h_up, h_dn = continuous_thresholds(z, (a if up else 0.0, a if down else 0.0), shift, self.clip,
                                               floor / sd, boot=self.bootstrap, rng=rng, phi=phi)
            h[f"up{k}"], h[f"down{k}"] = h_up, h_dn
        cls = p.get("cls", ContinuousCusum)
        return cls(p["name"], p["field"], p["log"], mu, sd, designs, self.clip, h, n, phi, acc, p["slot"],
                   behaviour and p["name"] in ("output_chars", "score"))

    def _build_rate(self, p: dict[str, Any], phi: float, alpha: float, acc: list[float]) -> RateCusum:
        k, n = p["k"], p["n"]
        p0 = smoothed_rate(k, n)
        odds2 = self.odds_ratio ** RATE_LARGE_POWER

        def d1(q: float) -> float:
            return bernoulli_design(q, self.odds_ratio, self.min_step)

        def d2(q: float) -> float:
            return bernoulli_design(q, odds2, 2.0 * self.min_step)

        h = rate_threshold(k, n, alpha * (1.0 - RATE_LARGE_SHARE), d1, phi=phi)
        h2 = rate_threshold(k, n, alpha * RATE_LARGE_SHARE, d2, phi=phi)
        return RateCusum(p["name"], p["field"], p["invert"], p0, d1(p0), h, d2(p0), h2, n, phi, acc, p["slot"],
                     p["skip_refused"])

    def _tools_plan(self, tool_calls: list[tuple[str, ...]], add_series: Any) -> dict[str, Any] | None:
        n = len(tool_calls)
        counts: dict[str, int] = {}
        for tools in tool_calls:
            for t in set(tools):
                counts[t] = counts.get(t, 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        # every tool the reference saw at least twice has its own statistics (up to TOOL_CATEGORIES): mass
        # moving to a rare tool is the fastest change to see, if that tool is not lumped with others
        top = [t for t, c in ranked[:TOOL_CATEGORIES] if c >= 2]
        top_set = set(top)
        cats, ks, first = [], [], []
        cols: dict[str, list[float]] = {}
        none_ind = [0.0 if tools else 1.0 for tools in tool_calls]
        other_ind = [1.0 if any(t not in top_set for t in tools) else 0.0 for tools in tool_calls]
        first_cat = [("(none)" if not tools else tools[0] if tools[0] in top_set else OTHER) for tools in tool_calls]
        for cat in [*top, NONE, OTHER]:
            if cat == NONE:
                ind = none_ind
            elif cat == OTHER:
                ind = other_ind
            else:
                ind = [1.0 if cat in tools else 0.0 for tools in tool_calls]
            k = int(sum(ind))
            if smoothed_rate(k, n) <= 0.9:  # "(other)" even when unseen: a new tool taking calls is a change
                cats.append(cat)
                ks.append(k)
                cols[cat] = ind
                first.append(sum(1 for c in first_cat if c == cat))
        if not cats:
            return None
        # the combined statistic counts each call once, in the category of its first tool, and groups the
        # categories coarser (the 3 most used, the rest together): fewer degrees of freedom to dilute it
        p_first = [(c + 0.5) / (n + 0.5 * len(cats)) for c in first]
        order = sorted(range(len(cats)), key=lambda j: -first[j])
        groups = [[j] for j in order[:3]] + ([order[3:]] if len(order) > 3 else [])
        return {"kind": "cats", "name": "tool_mix", "cats": cats, "ks": ks, "n": n, "p_first": p_first,
                "groups": groups, "series": [add_series(cols[c]) for c in cats]}

    def _build_tools(self, p: dict[str, Any], phis: list[float], alpha: float, acc: list[float]) -> ToolsCusum:
        cats, ks, n = p["cats"], p["ks"], p["n"]
        a = alpha / (len(cats) * len(TOOL_MOVES))
        p0 = [smoothed_rate(k, n) for k in ks]
        p1: list[list[float]] = []
        h: list[list[float]] = []
        for move in TOOL_MOVES:
            def design(q: float, move: float = move) -> float:
                return mass_design(q, move)
            p1.append([design(q) for q in p0])
            h.append([rate_threshold(k, n, a, design, phi=f) for k, f in zip(ks, phis, strict=True)])
        return ToolsCusum(cats, p0, p1, h, n, phis, acc, p["slot"])

    def _embedding_plan(self, vecs: list[Any]) -> dict[str, Any]:
        np = self._np
        mat = np.vstack(vecs)
        n, d = mat.shape
        mu, axes, sd = whitening(np, mat)
        pcs = (mat - mu) @ axes / sd
        return {"mu": mu, "axes": axes, "sd": sd, "n": n, "d": d, "curves": variance_time_columns(np, pcs)}

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
        if not score or sig is None or not self._armed or y.shape[1] != sig.d:
            return ()
        latest, top, _ = sig.batch(y)
        self._vals[self._index["embedding"]] = latest
        if top >= 1.0 and "embedding" not in self._latched:
            self._latched["embedding"] = top
            self._effects["embedding"] = self._current_effects()
            return ("embedding",)
        return ()

    # -- per call -------------------------------------------------------------------------------------
    def update(self, record: CallRecord) -> DriftStatus:
        """Feed one call: remember it for the next reference and, when armed, run the bank."""
        if record.embedding is not None and self._wants_emb:  # projected in batches; the ring keeps no vector
            self._emb_pending.append(record.embedding)
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
        vals = self._vals
        latched = self._latched
        fired: tuple[str, ...] = ()
        if len(self._emb_pending) >= EMBEDDING_BATCH:
            fired = self._flush_embeddings()
        for j, name, step in self._steps:
            r = step(record)
            if r >= 0.0:
                vals[j] = r
                if r >= 1.0 and name not in latched:
                    latched[name] = r
                    fired += (name,)
        comb = self._comb
        if comb is not None:
            self._block += 1
            if self._block == BLOCK:
                self._block = 0
                r, at = comb.end_block()
                vals[self._comb_i] = r
                if self._solo:
                    solo = comb.solo_scores()
                    for sig in self._solo:
                        w = sig.wr = solo[sig.name]
                        j = self._index[sig.name]
                        if w > vals[j]:
                            vals[j] = w
                        if w >= 1.0 and sig.name not in latched:
                            latched[sig.name] = w
                            fired += (sig.name,)
                if at and COMBINED_SIGNAL not in latched and self._news(comb, at, fired):
                    latched[COMBINED_SIGNAL] = r
                    fired += (COMBINED_SIGNAL,)
        if fired:
            now = self._current_effects()
            for name in fired:
                self._effects[name] = now
        return DriftStatus.of(bool(latched), self._names, tuple(vals), fired, self.calls)

    def _news(self, comb: Combined, at: int, fired: tuple[str, ...]) -> bool:
        """The combined statistic crossed: does it tell more than the alarms already raised? Only if the
        signals without an alarm of their own still cross the threshold together."""
        alarmed = set(self._latched) | set(fired)
        return not alarmed or comb.crosses_without(alarmed)

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
            self._vals[self._index["score"]] = r
            if r >= 1.0 and "score" not in self._latched:
                self._latched["score"] = r
                fired = ("score",)
        return DriftStatus.of(bool(self._latched), self._names, tuple(self._vals), fired, self.calls)

    def _set_names(self, names: tuple[str, ...]) -> None:
        self._names = names
        self._index = {n: i for i, n in enumerate(names)}
        self._vals = [0.0] * len(names)
        self._comb_i = self._index.get(COMBINED_SIGNAL, -1)

    # -- operator actions -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Unlatch every alarm and restart the statistics against the same reference."""
        if self._armed:  # keep the totals since arming (fleet evidence) across the reset
            self._base = self._totals()
            if self._emb_sig is not None:
                self._emb_sig.keep_total()
        for sig in self._bank:
            sig.reset()
        self._vals[:] = [0.0] * len(self._vals)
        self._acc[:] = [0.0] * len(self._acc)
        self._block = 0
        self._latched = {}
        self._effects = {}
        self._calls_base += self.calls
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
        self._comb = None
        self._dep = None
        self._set_names(())
        self._latched = {}
        self._effects = {}
        self._armed = False
        self._ref_size = 0
        self.calls = 0


def _windows(windows: Sequence[int], dep: Dependence | None) -> tuple[int, ...]:
    """The windows (in blocks) a windowed statistic may use: under session traffic only those spanning
    enough sessions (:meth:`Dependence.min_window`); the longest one always."""
    low = dep.min_window() if dep is not None else 0.0
    kept = tuple(w for w in windows if w * BLOCK >= low)
    return kept or (max(windows),)


def _resolution_floor(vals: list[float], floor: float) -> float:
    """A spread floor for a score: at least ``floor``, and a quarter of the scale's step when the values
    sit on a grid (a 1–10 judge: 0.25), so a reference of identical scores does not make every other
    score an alarm."""
    distinct = sorted(set(vals))
    if len(distinct) > 50:  # not a grid
        return floor
    if all(v == int(v) for v in distinct):  # whole numbers: a scale of whole steps (1–10, 1–5, 0/1)
        return max(floor, 0.25)
    if len(distinct) < 2:
        return floor
    return max(floor, 0.25 * min(b - a for a, b in itertools.pairwise(distinct)))


def _correlation(plans: list[dict[str, Any]], records: list[CallRecord], behaviour: bool) -> list[list[float]]:
    """Reference correlation of the continuous signals of the combined statistic, over calls where both
    are known (identity where there are too few)."""
    k = len(plans)
    corr = [[1.0 if i == j else 0.0 for j in range(k)] for i in range(k)]
    if k < 2:
        return corr
    cols: list[list[float | None]] = []
    for p in plans:
        col: list[float | None] = []
        for r in records:
            v = getattr(r, p["field"]) if p["field"] != "cost" else None
            if v is None or (behaviour and r.refused):
                col.append(None)
            else:
                col.append(_log1p(v) if p["log"] else float(v))
        cols.append(col)
    for i in range(k):
        for j in range(i):
            pairs = [(a, b) for a, b in zip(cols[i], cols[j], strict=True) if a is not None and b is not None]
            if len(pairs) < 30:
                continue
            ma = sum(a for a, _ in pairs) / len(pairs)
            mb = sum(b for _, b in pairs) / len(pairs)
            sab = sum((a - ma) * (b - mb) for a, b in pairs)
            saa = sum((a - ma) ** 2 for a, _ in pairs)
            sbb = sum((b - mb) ** 2 for _, b in pairs)
            if saa > 0 and sbb > 0:
                c = max(-0.95, min(0.95, sab / math.sqrt(saa * sbb)))
                corr[i][j] = corr[j][i] = c
    return corr
