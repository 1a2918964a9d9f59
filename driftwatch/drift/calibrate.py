"""Threshold calibration: one CUSUM threshold per statistic, from the reference alone.

A one-sided CUSUM ``S = max(0, S + X)`` raises a false alarm, on average, once per ARL₀ calls. For
increments with negative mean ``-μ`` and a positive root ``θ`` of ``E[exp(θX)] = 1`` (the Cramér
root), the renewal (Wald/Siegmund) approximation is

    ARL₀(h) ≈ (exp(θh) − 1 − θh) / (θ μ)

It ignores the overshoot over the threshold, so it errs on the safe side (fewer false alarms).
Two sources of error are accounted for by a double bootstrap:

* outer: the detector's parameters (mean, spread, base rate) are estimated from a finite reference;
  each bootstrap replicate re-estimates them from a resample of the reference;
* inner: the calls after the anchor are drawn from the reference's empirical distribution (binned)
  and fed through the replicate's detector; the ARL of that is computed from the renewal formula
  instead of by simulation (cheap and deterministic).

For rates the outer level is exact (a sum over the binomial distribution of the refitted count);
for continuous signals it is 16 resamples.

**Dependent calls** (sessions, bursts; :mod:`driftwatch.drift.dependence`): with a long-run variance
ratio ``φ`` the CUSUM's increments wander ``φ`` times more than independent ones, so the Cramér root
is taken as ``θ/φ`` (the Brownian approximation ``θ = 2μ/σ²_LR``), and the reference is worth ``n/φ``
independent calls: the outer level refits on ``n/φ`` resampled values (for rates, the binomial of
``n/φ`` calls).

The per-call false-alarm rate of a statistic is the mean over replicates of ``1/ARL₀(h)``; the
threshold is the smallest ``h`` that brings it to the statistic's share of the budget. Everything
here is pure Python: it runs once per reference (at a change), never per call.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

__all__ = ["BIN", "Increments", "bernoulli_design", "bernoulli_thresholds", "chi2_isf", "chi2_sf", "chibar_isf",
           "chibar_sf",
           "continuous_thresholds", "cramer", "mass_design", "rate_threshold", "smoothed_rate", "solve_threshold"]

#: bin width (in standard deviations) of the empirical distribution used as the "truth"
BIN = 0.05
H_MIN = 3.0
H_MAX = 400.0

#: a replicate's increments: atoms and their probabilities
Increments = tuple[Sequence[float], Sequence[float]]


def cramer(xs: Sequence[float], ws: Sequence[float]) -> tuple[float, float, float]:
    """``(θ, μ, var)`` of increments: the positive root θ of ``Σ w·exp(θx) = 1`` (``inf`` when no
    increment is positive), ``μ = −E[X]`` and the variance."""
    mean = sum(w * x for x, w in zip(xs, ws, strict=True))
    var = sum(w * (x - mean) ** 2 for x, w in zip(xs, ws, strict=True))
    top = max(xs)
    if top <= 0.0:
        return math.inf, -mean, var
    if mean >= 0.0:
        return 0.0, -mean, var
    pairs = [(x, w) for x, w in zip(xs, ws, strict=True) if w > 0.0]

    def f(theta: float) -> tuple[float, float]:
        # (Σ w exp(θx) − 1, its derivative); θx is capped: beyond the cap f is surely > 0
        total = slope = 0.0
        for x, w in pairs:
            t = theta * x
            if t > 700.0:
                return math.inf, math.inf
            e = w * math.exp(t)
            total += e
            slope += e * x
        return total - 1.0, slope

    # f is convex with f(0) = 0 and f'(0) = E[X] < 0: start right of the root, then Newton steps
    # decrease monotonically onto it
    theta = max(2.0 * -mean / var, 1e-9) if var > 0.0 else 1.0
    lo = 0.0
    value, slope = f(theta)
    while value <= 0.0:
        lo, theta = theta, theta * 2.0
        if theta > 1e6:
            return math.inf, -mean, var
        value, slope = f(theta)
    while value == math.inf:  # overflow: bisect back until f is finite (and still positive)
        mid = 0.5 * (lo + theta)
        v, sl = f(mid)
        if v <= 0.0:
            lo = mid
        else:
            theta, value, slope = mid, v, sl
        if theta - lo < 1e-12 * theta:
            return theta, -mean, var
    for _ in range(100):
        step = value / slope
        theta -= step
        if step < 1e-9 * theta:
            break
        value, slope = f(theta)
        if value < 0.0:  # rounding crossed the root: it is here
            break
    return theta, -mean, var


def _rate(h: float, theta: float, mu: float, var: float) -> float:
    """Per-call false-alarm rate (1/ARL₀) of a CUSUM with threshold h."""
    if theta == math.inf:
        return 0.0
    if theta <= 0.0 or mu <= 0.0:  # no negative drift under this replicate: ARL ~ h/|μ| or h²/σ²
        return max(-mu / h if mu < 0.0 else 0.0, var / (h * h))
    t = theta * h
    if t > 700.0:
        return 0.0
    return theta * mu / (math.expm1(t) - t)


def solve_threshold(replicates: Sequence[tuple[float, float, float]], alpha: float,
                    weights: Sequence[float] | None = None, phi: float = 1.0) -> float:
    """The smallest h whose mean false-alarm rate over the replicates (weighted) is at most ``alpha``;
    ``phi``: the increments' long-run variance ratio (1.0: independent calls)."""
    if phi != 1.0:
        replicates = [(th / phi, mu, var * phi) for th, mu, var in replicates]
    n = len(replicates)
    ws = [1.0 / n] * n if weights is None else list(weights)

    def rate(h: float) -> float:
        return sum(w * _rate(h, th, mu, var) for w, (th, mu, var) in zip(ws, replicates, strict=True))

    if rate(H_MIN) <= alpha:
        return H_MIN
    lo, hi = H_MIN, H_MIN * 2.0
    while rate(hi) > alpha:
        lo, hi = hi, hi * 2.0
        if hi >= H_MAX:
            return H_MAX
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if rate(mid) > alpha:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-3:
            break
    return hi


def _bins(z: Sequence[float]) -> tuple[list[float], list[float]]:
    """The empirical distribution of ``z`` as (bin centre, probability) atoms."""
    counts: dict[int, int] = {}
    for v in z:
        k = round(v / BIN)
        counts[k] = counts.get(k, 0) + 1
    n = len(z)
    atoms = sorted(counts)
    return [k * BIN for k in atoms], [counts[k] / n for k in atoms]


def continuous_thresholds(z: Sequence[float], alphas: tuple[float, float], shift: float, clip: float,
                          floor: float, *, boot: int, rng: random.Random, phi: float = 1.0) -> tuple[float, float]:
    """Thresholds of the upward and downward mean-shift CUSUMs of a standardized signal.

    ``z``: the reference values standardized with the reference's own mean and spread; ``floor``:
    the spread's lower bound, in the same units; ``alphas``: (up, down) budget shares; ``phi``: the
    long-run variance ratio of the calls (1.0: independent).
    """
    n = len(z)
    n_eff = max(10, min(n, round(n / phi)))
    atoms, probs = _bins(z)
    half = shift * shift / 2.0
    up: list[tuple[float, float, float]] = []
    down: list[tuple[float, float, float]] = []
    for _ in range(boot):
        sample = rng.choices(z, k=n_eff)
        m = sum(sample) / n_eff
        s = math.sqrt(max(sum((v - m) ** 2 for v in sample) / max(n_eff - 1, 1), 0.0))
        s = max(s, floor)
        zs = [min(clip, max(-clip, (a - m) / s)) for a in atoms]
        if alphas[0] > 0.0:
            up.append(cramer([shift * v - half for v in zs], probs))
        if alphas[1] > 0.0:
            down.append(cramer([-shift * v - half for v in zs], probs))
    h_up = solve_threshold(up, alphas[0], phi=phi) if up else math.inf
    h_down = solve_threshold(down, alphas[1], phi=phi) if down else math.inf
    return h_up, h_down


def bernoulli_design(p0: float, odds_ratio: float, min_step: float) -> float:
    """The alternative rate a Bernoulli CUSUM is tuned to detect: odds × ``odds_ratio``, at least +``min_step``."""
    odds = p0 / (1.0 - p0) * odds_ratio
    p1 = max(odds / (1.0 + odds), p0 + min_step)
    return min(p1, 1.0 - 0.5 * (1.0 - p0))


def smoothed_rate(k: int, n: int) -> float:
    return (k + 0.5) / (n + 1.0)


def mass_design(p0: float, move: float) -> float:
    """The alternative rate of a category when a share ``move`` of all mass moves to it (tool mix)."""
    return min(p0 + move * (1.0 - p0), 1.0 - 0.5 * (1.0 - p0))


def bernoulli_thresholds(k: int, n: int, alpha: float, odds_ratio: float, min_step: float, *, boot: int,
                         rng: random.Random, phi: float = 1.0) -> float:
    """Threshold of an upward Bernoulli-rate CUSUM fitted on ``k`` events in ``n`` reference calls, tuned to
    odds × ``odds_ratio`` (at least +``min_step``); see :func:`rate_threshold` (``boot``/``rng`` unused)."""
    return rate_threshold(k, n, alpha, lambda p0: bernoulli_design(p0, odds_ratio, min_step), phi=phi)


def rate_threshold(k: int, n: int, alpha: float, design: Callable[[float], float], *, phi: float = 1.0) -> float:
    """Threshold of an upward Bernoulli-rate CUSUM fitted on ``k`` events in ``n`` reference calls, tuned to
    the rate ``design(p0)``.

    The outer bootstrap is exact here: the refitted count ranges over the binomial distribution of
    ``n/φ`` calls at the smoothed rate (±7 sd), weighted by its probabilities.
    """
    p = smoothed_rate(k, n)
    n_eff = max(10, min(n, round(n / phi)))
    sd = math.sqrt(n_eff * p * (1.0 - p))
    lo = max(0, math.floor(n_eff * p - 7.0 * sd - 1.0))
    hi = min(n_eff, math.ceil(n_eff * p + 7.0 * sd + 2.0))
    reps: list[tuple[float, float, float]] = []
    weights: list[float] = []
    log_p, log_q = math.log(p), math.log1p(-p)
    base = math.lgamma(n_eff + 1)
    for kb in range(lo, hi + 1):
        weights.append(math.exp(base - math.lgamma(kb + 1) - math.lgamma(n_eff - kb + 1) + kb * log_p
                                + (n_eff - kb) * log_q))
        p0 = smoothed_rate(kb, n_eff)
        p1 = design(p0)
        reps.append(cramer([math.log((1.0 - p1) / (1.0 - p0)), math.log(p1 / p0)], [1.0 - p, p]))
    total = sum(weights)
    return solve_threshold(reps, alpha, [w / total for w in weights], phi=phi)


# -- χ² tails (windowed statistics) ------------------------------------------------------------------------

def chi2_sf(x: float, df: int) -> float:
    """``P(χ²_df > x)`` for a whole number of degrees of freedom (exact series, pure Python)."""
    if x <= 0.0:
        return 1.0
    half = x / 2.0
    if df % 2 == 0:
        term = total = math.exp(-half)
        for i in range(1, df // 2):
            term *= half / i
            total += term
        return min(1.0, total)
    # odd: P(χ²_1 > x) plus the series in (x/2)^(i+1/2) / Γ(i + 3/2)
    total = math.erfc(math.sqrt(half))
    term = math.exp(-half) * math.sqrt(half) / math.gamma(1.5)
    for i in range(1, (df + 1) // 2):
        total += term
        term *= half / (i + 0.5)
    return min(1.0, total)


def chi2_isf(p: float, df: int) -> float:
    """The ``x`` with ``P(χ²_df > x) = p`` (bisection on :func:`chi2_sf`)."""
    return chibar_isf(p, df, 0)


def chibar_sf(x: float, two: int, one: int) -> float:
    """``P(Q > x)`` for ``Q = χ²_two + Σ_{one} max(0, Z)²``: a χ² with ``two`` degrees of freedom plus ``one``
    independent one-sided components (each 0 half the time, χ²₁ otherwise) — the chi-bar-square."""
    if x <= 0.0:
        return 1.0
    total = 0.0
    for j in range(one + 1):
        df = two + j
        if df:
            total += math.comb(one, j) * chi2_sf(x, df)
    return total / 2.0 ** one


def chibar_isf(p: float, two: int, one: int) -> float:
    """The ``x`` with ``chibar_sf(x, two, one) = p`` (bisection)."""
    lo, hi = 0.0, max(2.0 * (two + one), 10.0)
    while chibar_sf(hi, two, one) > p:
        lo, hi = hi, hi * 2.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if chibar_sf(mid, two, one) > p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9 * hi:
            break
    return hi
