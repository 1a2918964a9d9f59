"""The baselines of the drift benchmarks: river ADWIN and a windowed KS/χ² test, on per-call features.

Both see the same features: continuous columns (log length, score, embedding dimensions) and categorical
columns (each an integer code: refusal, format failure, error, tool category). ADWIN runs one detector
per continuous column and per category indicator; KS/χ² compares the last ≤ 500 calls with the reference
every 50 calls (KS per continuous column, χ² per categorical one) and alarms when the smallest p-value is
below τ. Their settings (ADWIN's δ, KS's τ) are tuned on the no-change streams of the same run.
"""

from __future__ import annotations

import math
import time

import numpy as np
from river.drift import ADWIN
from scipy.special import kolmogorov
from scipy.stats import chi2

__all__ = ["ADWIN_DELTAS", "KS_EVERY", "KS_MIN", "KS_TAUS", "KS_WINDOW", "adwin_rows", "ks_alarms", "ks_pvalues",
           "run_adwin", "tune"]

ADWIN_DELTAS = (0.5, 0.2, 0.1, 0.05, 0.02, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 1e-6, 1e-7, 1e-9, 1e-12, 1e-16)
KS_EVERY, KS_WINDOW, KS_MIN = 50, 500, 100
KS_TAUS = tuple(10.0 ** (-e / 4) for e in range(4, 160))


def adwin_rows(cont: np.ndarray, cat: np.ndarray, levels: list[int]) -> list[list[float]]:
    """One row per call: the continuous columns, then an indicator per category (binary columns: one)."""
    cols = [cont]
    for j, k in enumerate(levels):
        cols.append(cat[:, j:j + 1].astype(float) if k == 2 else np.eye(k)[cat[:, j]])
    return np.hstack(cols).tolist()


def run_adwin(ref_rows: list[list[float]], post_rows: list[list[float]], delta: float, *,
              count_all: bool) -> tuple[list[int], float]:
    """Alarm positions (1-based calls after the change) and seconds spent on the monitored calls."""
    dets = [ADWIN(delta=delta) for _ in range(len(ref_rows[0]))]
    for row in ref_rows:
        for d, x in zip(dets, row, strict=True):
            d.update(x)
    alarms: list[int] = []
    t0 = time.perf_counter()
    for i, row in enumerate(post_rows):
        hit = False
        for d, x in zip(dets, row, strict=True):
            d.update(x)
            hit |= d.drift_detected
        if hit:
            alarms.append(i + 1)
            if not count_all:
                break
    return alarms, time.perf_counter() - t0


def ks_pvalues(ref_cont: np.ndarray, ref_cat: np.ndarray, cont: np.ndarray, cat: np.ndarray,
               levels: list[int]) -> tuple[list[int], list[float], float]:
    """Smallest p-value over all features at each test point (calls since the change), and seconds spent."""
    t0 = time.perf_counter()
    ref_sorted = np.sort(ref_cont, axis=0)
    n = ref_sorted.shape[0]
    ref_counts = [np.bincount(ref_cat[:, j], minlength=k) for j, k in enumerate(levels)]
    points, pmins = [], []
    for end in range(KS_MIN, cont.shape[0] + 1, KS_EVERY):
        start = max(0, end - KS_WINDOW)
        w, wc = cont[start:end], cat[start:end]
        m = end - start
        en = math.sqrt(n * m / (n + m))
        pmin = 1.0
        for j in range(cont.shape[1]):
            ws = np.sort(w[:, j])
            grid = np.concatenate([ref_sorted[:, j], ws])
            d = np.max(np.abs(np.searchsorted(ref_sorted[:, j], grid, "right") / n
                              - np.searchsorted(ws, grid, "right") / m))
            pmin = min(pmin, float(kolmogorov((en + 0.12 + 0.11 / en) * d)))
        for j, k in enumerate(levels):
            obs = np.vstack([ref_counts[j], np.bincount(wc[:, j], minlength=k)]).astype(float)
            obs = obs[:, obs.sum(axis=0) > 0]
            if obs.shape[1] < 2:
                continue
            exp = obs.sum(axis=1, keepdims=True) * obs.sum(axis=0, keepdims=True) / obs.sum()
            stat = float(((obs - exp) ** 2 / exp).sum())
            pmin = min(pmin, float(chi2.sf(stat, obs.shape[1] - 1)))
        points.append(end)
        pmins.append(pmin)
    return points, pmins, time.perf_counter() - t0


def ks_alarms(points: list[int], pmins: list[float], tau: float, *, count_all: bool) -> list[int]:
    alarms, quiet_until = [], -1
    for p, v in zip(points, pmins, strict=True):
        if p < quiet_until:
            continue
        if v < tau:
            alarms.append(p)
            if not count_all:
                break
            quiet_until = p + KS_WINDOW  # a new window after an alarm
    return alarms


def tune(settings: tuple[float, ...], count: dict[float, int], calls: int, target: float) -> float:
    """The most sensitive setting (the first in ``settings`` order) whose false alarms per 10k calls are
    ≤ ``target``; the least sensitive one when none is."""
    for s in settings:
        if count[s] / calls * 1e4 <= target:
            return s
    return settings[-1]
