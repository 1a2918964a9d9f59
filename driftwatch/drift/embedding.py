"""The embedding statistic: a windowed χ² on the whitened, projected embedding (numpy).

An answer embedding moves in many ways: the topic mix shifts, or the style moves every answer a
little in some direction nobody can name in advance. Per-dimension CUSUMs see such a shift only
through its share in each dimension (a fourth of it in 16 dimensions). This statistic looks at the
whole vector: the projected embeddings (:data:`~driftwatch.drift.monitor.EMBEDDING_DIMS` numbers per
call) are whitened with the reference's covariance — in its principal axes, each axis scaled by its
spread and by its long-run variance ratio ``φ`` (sessions keep a topic for several calls, so the
topic axes are strongly dependent) — and for each window of the last ``m`` calls (1, 2, 4, …, 128
blocks of 16 calls, tested at every block end)

    Q_m = ‖Σ_window u‖² / (m (1 + m/n))

is compared with the χ²_d quantile at ``α · BLOCK · stride / windows`` (a window of ``w`` blocks is
tested every ``max(1, w/8)`` blocks; union bound: at most ``α`` false alarms per call). ``(1 + m/n)``
accounts for the reference's own error (``n`` calls). A mean shift of ``Δ``
(Mahalanobis, per call) adds about ``m Δ²`` to ``Q_m``, whatever its direction. Every call since the
anchor is tested too (part ``anchored`` of the budget; :func:`~driftwatch.drift.combined.anchor_thresholds`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from driftwatch.drift.combined import BLOCK, anchor_spend, anchor_stride, anchor_thresholds, stride, window_thresholds

__all__ = ["EMBEDDING_WINDOWS", "EmbeddingChi2", "whitening"]

#: window lengths in blocks (16 … 2048 calls)
EMBEDDING_WINDOWS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)


def whitening(np: Any, mat: Any) -> tuple[Any, Any, Any]:
    """(mean, principal axes, spreads) of the reference rows ``mat`` (n × d); axes with no spread get 1e-9."""
    mu = mat.mean(axis=0)
    cov = np.cov(mat.T, ddof=1) if mat.shape[0] > 1 else np.eye(mat.shape[1])
    cov = np.atleast_2d(cov)
    evals, evecs = np.linalg.eigh(cov)
    sd = np.sqrt(np.maximum(evals, 1e-18 + 1e-9 * float(evals.max(initial=0.0))))
    return mu, evecs, sd


class EmbeddingChi2:
    """The windowed χ² of the whitened embedding (see the module docstring).

    ``transform``: d × d matrix taking ``y − mu`` to whitened coordinates (axes ÷ spread ÷ √φ);
    ``alpha``: this statistic's per-call budget; ``n_ref``: reference size.
    """

    __slots__ = ("anchor_h", "anchor_last", "base", "base_n", "blocks", "counts", "cum", "d", "field", "h", "head",
                 "inv_h", "last", "mu", "n", "name", "np", "phi", "strides", "transform", "windows")

    def __init__(self, np: Any, mu: Any, transform: Any, alpha: float, n_ref: int, phi: Sequence[float],
                 windows: Sequence[int] = EMBEDDING_WINDOWS, anchored: float = 0.0) -> None:
        self.name, self.field, self.np = "embedding", "embedding", np
        self.mu, self.transform = mu, transform
        self.d = int(mu.shape[0])
        self.n = n_ref
        self.phi = list(phi)
        self.windows = tuple(windows)
        self.strides = np.asarray([stride(w) for w in self.windows])
        self.h = window_thresholds(alpha * (1.0 - anchored), self.windows, self.d)
        #: the test over every call since the start: its threshold per stride (empty: off)
        self.anchor_h = anchor_thresholds(alpha * anchored, self.d) if anchored > 0.0 else {}
        self.anchor_last = 0.0
        self.inv_h = 1.0 / np.asarray(self.h)
        self.last = np.zeros(len(self.windows))
        ring = max(self.windows) + 1
        self.cum = np.zeros((ring, self.d))
        self.counts = np.zeros(ring)
        self.head = 0
        self.blocks = 0
        self.base = np.zeros(self.d)  # whitened sum from before the last reset (fleet evidence)
        self.base_n = 0.0

    def step(self, record: Any) -> float:  # embeddings go through batch()
        return -1.0

    def batch(self, y: Any) -> tuple[float, float, int]:
        """Feed a block of projected rows ``y`` (k × d): (score, highest score, alarming window in calls or 0)."""
        np = self.np
        u = (y - self.mu) @ self.transform
        ring = self.cum.shape[0]
        head = (self.head + 1) % ring
        self.cum[head] = self.cum[self.head] + u.sum(axis=0)
        self.counts[head] = self.counts[self.head] + u.shape[0]
        self.head = head
        self.blocks += 1
        top_a = fired_a = 0.0
        b = self.blocks
        if self.anchor_h and b >= self.windows[0] and not b % anchor_stride(b):
            m_a = float(self.counts[head])
            tot = self.cum[head]
            h_a = self.anchor_h[anchor_spend(b, self.windows[0])]
            top_a = self.anchor_last = float(tot @ tot) / (m_a * (1.0 + m_a / self.n)) / h_a
            fired_a = m_a if top_a >= 1.0 else 0.0
        due = [k for k, w in enumerate(self.windows) if w <= self.blocks and not self.blocks % self.strides[k]]
        if not due:
            return max(float(self.last.max()), self.anchor_last), top_a, int(fired_a)
        idx = [(head - self.windows[k]) % ring for k in due]
        diff = self.cum[head] - self.cum[idx]
        m = self.counts[head] - self.counts[idx]
        q = (diff * diff).sum(axis=1) / (m * (1.0 + m / self.n))
        ratios = q * self.inv_h[due]
        self.last[due] = ratios
        top = float(ratios.max())
        fired = 0
        if top >= 1.0:
            fired = int(m[int(np.argmax(ratios >= 1.0))])
        elif fired_a:
            fired = int(fired_a)
        return max(float(self.last.max()), self.anchor_last), max(top, top_a), fired

    def reset(self) -> None:
        self.cum = self.np.zeros_like(self.cum)
        self.counts = self.np.zeros_like(self.counts)
        self.head = 0
        self.blocks = 0
        self.last = self.np.zeros(len(self.windows))
        self.anchor_last = 0.0

    def keep_total(self) -> None:
        """Before a reset: remember the sum so far (the fleet evidence is a sum since arming)."""
        self.base = self.base + self.cum[self.head]
        self.base_n += float(self.counts[self.head])

    def snapshot(self) -> dict[str, Any]:
        """The sum of ``y − mu`` (projected, not whitened: every replica whitens in its own axes) since arming,
        with this replica's precision matrix ``T Tᵀ`` — what another process needs to pool this one's calls."""
        np = self.np
        white = self.base + self.cum[self.head]
        raw = np.linalg.solve(self.transform.T, white)  # u = y·T  →  y = u·T⁻¹
        prec = self.transform @ self.transform.T
        return {"d": self.d, "sum": [float(v) for v in raw], "n": self.base_n + float(self.counts[self.head]),
                "n_ref": self.n, "precision": [[float(v) for v in row] for row in prec]}

    def effect(self) -> dict[str, Any]:
        """The window with the highest score: its length and the estimated shift (Mahalanobis per call)."""
        ring = self.cum.shape[0]
        best: tuple[float, int, float] | None = None
        for k, w in enumerate(self.windows):
            if w > self.blocks:
                break
            j = (self.head - w) % ring
            diff = self.cum[self.head] - self.cum[j]
            m = float(self.counts[self.head] - self.counts[j])
            q = float((diff * diff).sum()) / (m * (1.0 + m / self.n))
            r = q * float(self.inv_h[k])
            if best is None or r > best[0]:
                best = (r, int(m), q)
        if best is None:
            return {}
        _, m, q = best
        return {"calls": m, "mahalanobis": math.sqrt(max(0.0, q - self.d) * (1.0 + m / self.n) / m)}

    def describe(self) -> dict[str, Any]:
        return {"kind": "embedding_window_chi2", "reference_values": self.n, "dimensions": self.d,
                "threshold": min(self.h), "thresholds": list(self.h),
                "windows_calls": [w * BLOCK for w in self.windows],
                "long_run_variance_ratio": {"max": max(self.phi, default=1.0),
                                            "mean": sum(self.phi) / max(1, len(self.phi))},
                **({"since_anchor": {"score": self.anchor_last, "thresholds": dict(self.anchor_h)}}
                   if self.anchor_h else {}),
                **({"effect": self.effect()} if self.blocks else {})}
