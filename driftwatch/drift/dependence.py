"""Dependence between calls: how much less a reference of dependent calls is worth than independent ones.

Real traffic comes in sessions and bursts: a user asks several questions on one topic, a batch job sends
many similar requests. Consecutive calls then share a topic and a user, so their signals are positively
correlated, and the sum of ``n`` increments varies ``φ`` times more than for independent calls
(``φ = σ²_LR / σ²``, the long-run variance ratio). A CUSUM calibrated for independent calls then raises
far more false alarms than its budget (its Cramér root is ``θ/φ``, not ``θ``), and a reference of ``n``
dependent calls estimates the detector's parameters only as well as ``n/φ`` independent ones.

The model (**sessions**): the lag-``k`` autocorrelation of every signal is ``λ_s · ρ^k`` — the calls
share a latent session state that persists from one call to the next with probability ``ρ`` (sessions of
geometric length, mean ``1/(1−ρ)``), and that state explains a share ``λ_s`` of signal ``s``'s variance.
``ρ`` is common to all signals (one session process drives them all), so it is estimated once from all
of them, and each signal's ``λ_s`` is a one-parameter fit: far less noisy than a separate long-run
variance per signal. Then ``φ_s = 1 + 2 λ_s ρ / (1 − ρ)``.

The fit uses the **variance-time curve**: ``V_s(b)``, the variance of sums of ``b`` consecutive values
divided by ``b`` σ², from overlapping windows (prefix sums: ``O(n)`` per scale, pure Python), at
``b = 2, 4, …, 128``. Under the model ``V(b) = 1 + 2 λ c_b(ρ)`` with
``c_b(ρ) = Σ_{k<b} (1 − k/b) ρ^k``; ρ is found on a grid by pooled weighted least squares.

Estimates from ~50 sessions are noisy, and an underestimate of ``φ`` costs exponentially many false
alarms (a threshold ``h`` set for ``φ̂`` fires at ``exp(h (1 − φ̂/φ))`` times the budget), so the factor
used is an upper estimate: ``λ`` is raised by :data:`SAFETY` of its own value plus two standard errors.
When the pooled evidence of dependence is weak (below what independent calls give 99% of the time),
the calls are taken as independent (``φ = 1``): no delay is spent on traffic that has no sessions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["SAFETY", "SCALAR_SAFETY", "SCALES", "SESSIONS_PER_WINDOW", "Dependence", "estimate", "phi_for",
           "variance_time", "variance_time_columns"]

#: block sizes of the variance-time curve
SCALES: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128)
#: session persistence grid (ρ = 0 is independence)
_RHOS: tuple[float, ...] = tuple(i / 100 for i in range(5, 90, 5)) + tuple(0.9 + i / 200 for i in range(0, 19))
#: λ is raised by this share of itself (an upper estimate: underestimates are costly); the embedding's axes
#: use it, scalar signals :data:`SCALAR_SAFETY` (on the development profiles their false alarms barely
#: moved without any, while the embedding's topic axes doubled theirs)
SAFETY = 0.5
SCALAR_SAFETY = 0.25
_CAP = 200.0
#: windowed statistics use only windows spanning at least this many sessions (see Dependence.min_window)
SESSIONS_PER_WINDOW = 40.0
#: dependence is declared when the pooled statistic exceeds DETECT_BASE + DETECT_PER_SERIES × series
DETECT_BASE = 40.0
DETECT_PER_SERIES = 4.0


def variance_time(xs: Sequence[float], scales: Sequence[int] = SCALES) -> list[float]:
    """``V(b)`` for each scale: the variance of overlapping window sums of ``b`` values ÷ ``b`` σ²
    (``nan`` for scales longer than a quarter of the series; ``1.0`` everywhere for a constant series)."""
    n = len(xs)
    if n < 8:
        return [math.nan] * len(scales)
    mean = sum(xs) / n
    prefix = [0.0] * (n + 1)
    acc = 0.0
    ss = 0.0
    for i, x in enumerate(xs):
        d = x - mean
        acc += d
        ss += d * d
        prefix[i + 1] = acc
    var = ss / n
    if var <= 0.0:
        return [1.0] * len(scales)
    out = []
    for b in scales:
        if 4 * b > n:
            out.append(math.nan)
            continue
        m = n - b + 1
        total = 0.0
        for i in range(m):
            s = prefix[i + b] - prefix[i]
            total += s * s
        out.append(total / m / (b * var))  # biased low by the centring: see estimate()
    return out


def variance_time_columns(np: Any, mat: Any, scales: Sequence[int] = SCALES) -> list[list[float]]:
    """:func:`variance_time` of every column of a numpy matrix at once."""
    n = mat.shape[0]
    if n < 8:
        return [[math.nan] * len(scales) for _ in range(mat.shape[1])]
    d = mat - mat.mean(axis=0)
    var = (d * d).mean(axis=0)
    prefix = np.vstack([np.zeros((1, mat.shape[1])), np.cumsum(d, axis=0)])
    cols = []
    for b in scales:
        if 4 * b > n:
            cols.append(np.full(mat.shape[1], np.nan))
            continue
        s = prefix[b:] - prefix[:-b]
        with np.errstate(invalid="ignore", divide="ignore"):
            cols.append(np.where(var > 0, (s * s).mean(axis=0) / (b * var), 1.0))
    return [[float(c[j]) for c in cols] for j in range(mat.shape[1])]


def _c(b: int, rho: float) -> float:
    """``Σ_{k=1}^{b−1} (1 − k/b) ρ^k`` (closed form)."""
    if rho <= 0.0:
        return 0.0
    r_b = rho ** b
    return rho / (1.0 - rho) - rho * (1.0 - r_b) / (b * (1.0 - rho) ** 2)


class Dependence:
    """The fitted session model: persistence ``rho`` and per-series ``lam``; :meth:`phi` gives the
    (upper) long-run variance ratio of series ``i`` (1.0: independent calls)."""

    __slots__ = ("lam", "lam_se", "rho")

    def __init__(self, rho: float, lam: list[float], lam_se: list[float]) -> None:
        self.rho = rho
        self.lam = lam
        self.lam_se = lam_se

    def phi(self, i: int, *, upper: bool = True, safety: float = SAFETY) -> float:
        """The long-run variance ratio of series ``i``: with ``upper``, λ raised by ``safety`` of itself plus two
        standard errors."""
        rho = self.rho
        if rho <= 0.0:
            return 1.0
        lam = self.lam[i]
        if upper:
            lam = lam * (1.0 + safety) + 2.0 * self.lam_se[i]
        return min(_CAP, 1.0 + 2.0 * max(0.0, lam) * rho / (1.0 - rho))

    def min_window(self) -> float:
        """The shortest window (calls) over which a sum of calls may be taken as Gaussian: one that spans
        :data:`SESSIONS_PER_WINDOW` sessions on average (0 for independent calls). A shorter window of
        session traffic is a sum of a few sessions, each a whole topic and user: its tail is much heavier
        than a Gaussian one, and a χ² threshold on it would page on every long session of a rare topic."""
        return SESSIONS_PER_WINDOW / (1.0 - self.rho) if self.rho > 0.0 else 0.0

    def describe(self) -> dict[str, float]:
        return {"session_persistence": self.rho,
                "mean_run_calls": 1.0 / (1.0 - self.rho) if self.rho < 1.0 else math.inf}


def estimate(curves: Sequence[Sequence[float]], n: int, scales: Sequence[int] = SCALES) -> Dependence:
    """Fit the session model to variance-time curves (one per series, from :func:`variance_time` on
    ``n`` values each). Series whose curve is all ``nan`` get λ = 0.

    Centring at the sample mean biases the observed curve low: ``E[V̂(b)] ≈ (V(b) − bφ/n) / (1 − φ/n)``
    (the sample mean of dependent calls is itself off by ``φσ²/n``). The fit is repeated three times,
    each time undoing that bias with the previous round's ``φ``."""
    dep = Dependence(0.0, [0.0] * len(curves), [0.0] * len(curves))
    phis = [1.0] * len(curves)
    for _ in range(3):
        dep = _fit(curves, n, scales, phis)
        phis = [dep.phi(i, upper=False) for i in range(len(curves))]
    return dep


def _fit(curves: Sequence[Sequence[float]], n: int, scales: Sequence[int], phis: Sequence[float]) -> Dependence:
    usable = [(j, b) for j, b in enumerate(scales) if 4 * b <= n]
    k = len(curves)
    none = Dependence(0.0, [0.0] * k, [0.0] * k)
    if not usable or not k:
        return none
    ws = [1.0 / b for _, b in usable]  # var(V̂(b)) grows ~ b/n
    noise = [4.0 * b / (3.0 * n) for _, b in usable]  # var(V̂(b)) of independent calls (overlapping batches)
    ys = [[(c[j] * (1.0 - phi / n) + b * phi / n - 1.0) if not math.isnan(c[j]) else 0.0 for j, b in usable]
          for c, phi in zip(curves, phis, strict=True)]
    best_t, best_rho = 0.0, 0.0
    for rho in _RHOS:
        g = [2.0 * _c(b, rho) for _, b in usable]
        den2 = sum((w * gi) ** 2 * v for w, gi, v in zip(ws, g, noise, strict=True))
        if den2 <= 0.0:
            continue
        t = 0.0
        for y in ys:
            yg = sum(w * yi * gi for w, yi, gi in zip(ws, y, g, strict=True))
            if yg > 0.0:  # only positively dependent series inform ρ
                t += yg * yg / den2
        if t > best_t:
            best_t, best_rho = t, rho
    # independent calls: the pooled statistic stays below 40 + 4k (99th percentile ≈ 2.2k + 45 when
    # simulated); session traffic with runs of 3 calls or more gives several hundred
    if best_t <= DETECT_BASE + DETECT_PER_SERIES * k:
        return none
    g = [2.0 * _c(b, best_rho) for _, b in usable]
    gg = sum(w * gi * gi for w, gi in zip(ws, g, strict=True))
    lam, se = [], []
    for y in ys:
        lam_i = max(0.0, sum(w * yi * gi for w, yi, gi in zip(ws, y, g, strict=True)) / gg)
        lam.append(lam_i)
        # sampling variance of V̂(b): ~ (4b / 3n) V(b)², doubled for the correlation between scales
        var = sum((w * gi) ** 2 * 2.0 * v * (1.0 + lam_i * gi) ** 2 for w, gi, v in zip(ws, g, noise, strict=True))
        se.append(math.sqrt(var) / gg)
    return Dependence(best_rho, lam, se)


def phi_for(series: Sequence[Sequence[float]]) -> list[float]:
    """Convenience: the upper long-run variance ratio of each series (all of one length)."""
    if not series:
        return []
    n = len(series[0])
    dep = estimate([variance_time(s) for s in series], n)
    return [dep.phi(i) for i in range(len(series))]
