"""The per-signal CUSUM banks of :class:`~driftwatch.drift.monitor.DriftMonitor`: continuous signals
(answer length, score; cost), rates (refusal, format failure, error) and the tool mix. Each holds its
reference parameters, its thresholds and its running sums; the monitor builds them at a freeze and feeds
them one call at a time (constant work per call), and each adds its evidence to the combined statistic's
accumulator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from driftwatch.drift.combined import BLOCK
from driftwatch.drift.record import CallRecord

__all__ = ["NONE", "OTHER", "TOOL_MOVES", "ContinuousCusum", "CostCusum", "RateCusum", "ToolsCusum"]

_log1p = math.log1p
#: the tool-mix category of a call that used no tool
NONE = "(none)"
#: the tool-mix category of the tools outside the reference's top ones
OTHER = "(other)"
#: tool-mix designs: the share of all calls that moves to one category
TOOL_MOVES = (0.1, 0.3)


class ContinuousCusum:
    """Mean-shift CUSUMs on ``(f(x) − μ)/σ`` clipped to ±clip: up and/or down, each at a small and a large
    design shift. Adds the clipped ``z`` and a count to the combined accumulator."""

    __slots__ = ("a1", "a2", "acc", "c1", "c2", "clip", "d1", "d2", "down", "field", "h", "ih_d1", "ih_d2", "ih_u1",
                 "ih_u2", "inv_sd", "log", "mu", "n", "name", "phi", "skip_refused", "slot", "u1", "u2", "up")

    def __init__(self, name: str, field: str, log: bool, mu: float, sd: float, designs: tuple[float, float],
                 clip: float, h: dict[str, float], n: int, phi: float, acc: list[float], slot: int,
                 skip_refused: bool) -> None:
        self.name, self.field, self.log = name, field, log
        self.mu, self.inv_sd = mu, 1.0 / sd
        self.a1, self.a2 = designs
        self.c1, self.c2 = self.a1 * self.a1 / 2.0, self.a2 * self.a2 / 2.0
        self.clip = clip
        self.h = h  # keys up1 up2 down1 down2 (inf: statistic off)
        inv = {k: (0.0 if v == math.inf else 1.0 / v) for k, v in h.items()}
        self.ih_u1, self.ih_u2, self.ih_d1, self.ih_d2 = inv["up1"], inv["up2"], inv["down1"], inv["down2"]
        self.up = h["up1"] != math.inf or h["up2"] != math.inf  # directions watched (score: down only)
        self.down = h["down1"] != math.inf or h["down2"] != math.inf
        self.u1 = self.u2 = self.d1 = self.d2 = 0.0
        self.n, self.phi = n, phi
        self.acc, self.slot = acc, slot
        self.skip_refused = skip_refused

    def step(self, record: CallRecord) -> float:
        v = getattr(record, self.field)
        if v is None or (self.skip_refused and record.refused):
            return -1.0
        return self.core(v)

    def core(self, v: float) -> float:
        """Feed one value (the per-call path and scores arriving alone)."""
        z = ((_log1p(v) if self.log else v) - self.mu) * self.inv_sd
        clip = self.clip
        if z > clip:
            z = clip
        elif z < -clip:
            z = -clip
        acc, slot = self.acc, self.slot
        acc[slot] += z
        acc[slot + 1] += 1.0
        x1, x2 = self.a1 * z, self.a2 * z
        c1, c2 = self.c1, self.c2
        r = 0.0
        if self.up:
            u1 = self.u1 + x1 - c1
            if u1 < 0.0:
                u1 = 0.0
            u2 = self.u2 + x2 - c2
            if u2 < 0.0:
                u2 = 0.0
            self.u1, self.u2 = u1, u2
            r = u1 * self.ih_u1
            t = u2 * self.ih_u2
            if t > r:
                r = t
        if self.down:
            d1 = self.d1 - x1 - c1
            if d1 < 0.0:
                d1 = 0.0
            d2 = self.d2 - x2 - c2
            if d2 < 0.0:
                d2 = 0.0
            self.d1, self.d2 = d1, d2
            t = d1 * self.ih_d1
            if t > r:
                r = t
            t = d2 * self.ih_d2
            if t > r:
                r = t
        return r

    def reset(self) -> None:
        self.u1 = self.u2 = self.d1 = self.d2 = 0.0

    def terms(self, total: Sequence[float], h: dict[str, float]) -> list[tuple[str, float]]:
        """Each statistic's cumulative log-likelihood ratio over ``total`` (the accumulator summed since
        arming) divided by its threshold in ``h`` (fleet pooling)."""
        sz, m = total[self.slot], total[self.slot + 1]
        out = []
        for k, a in ((1, self.a1), (2, self.a2)):
            for d, sign in (("up", 1.0), ("down", -1.0)):
                hk = h[f"{d}{k}"]
                if hk != math.inf:
                    out.append((f"{self.name}/{d}{k}", (sign * a * sz - m * a * a / 2.0) / hk))
        return out

    def describe(self) -> dict[str, Any]:
        h = self.h
        return {"kind": "mean_shift", "reference_values": self.n, "designs_sd": [self.a1, self.a2],
                "statistic_up": max(self.u1, self.u2), "statistic_down": max(self.d1, self.d2),
                "threshold_up": min(h["up1"], h["up2"]), "threshold_down": min(h["down1"], h["down2"]),
                "thresholds": dict(h), "long_run_variance_ratio": self.phi}


class CostCusum(ContinuousCusum):
    """Log of all tokens of a call (input + output): the operational cost signal."""

    __slots__ = ()

    def step(self, record: CallRecord) -> float:
        out, inp = record.tokens, record.input_tokens
        if out is None and inp is None:
            return -1.0
        return self.core((out or 0) + (inp or 0))


class RateCusum:
    """Two upward Bernoulli-rate CUSUMs, tuned to a moderate and to a large rate increase.

    ``invert``: the event is a false value (a failed format check)."""

    __slots__ = ("acc", "field", "h", "h2", "i0", "i1", "inv_h", "inv_h2", "invert", "j0", "j1", "n", "name", "p0",
                 "p1", "p2", "phi", "s", "s2", "skip_refused", "slot", "wr")

    def __init__(self, name: str, field: str, invert: bool, p0: float, p1: float, h: float, p2: float, h2: float,
                 n: int, phi: float, acc: list[float], slot: int, skip_refused: bool = False) -> None:
        self.name, self.field, self.invert = name, field, invert
        self.skip_refused = skip_refused
        self.p0, self.p1, self.p2 = p0, p1, p2
        self.i1 = math.log(p1 / p0)
        self.i0 = math.log((1.0 - p1) / (1.0 - p0))
        self.j1 = math.log(p2 / p0)
        self.j0 = math.log((1.0 - p2) / (1.0 - p0))
        self.h, self.inv_h = h, 1.0 / h
        self.h2, self.inv_h2 = h2, 1.0 / h2
        self.s = self.s2 = 0.0
        self.wr = 0.0  # the latest score of the signal's window test (set by the monitor at block ends)
        self.n, self.phi = n, phi
        self.acc, self.slot = acc, slot

    def step(self, record: CallRecord) -> float:
        v = getattr(record, self.field)
        if v is None or (self.skip_refused and record.refused):
            return -1.0
        acc, slot = self.acc, self.slot
        acc[slot + 1] += 1.0
        if (not v) ^ self.invert:
            s, s2 = self.s, self.s2
            if s == 0.0 and s2 == 0.0:  # the usual case: no event, both statistics at rest
                return self.wr
            s += self.i0
            s2 += self.j0
            if s < 0.0:
                s = 0.0
            if s2 < 0.0:
                s2 = 0.0
        else:
            acc[slot] += 1.0
            s, s2 = self.s + self.i1, self.s2 + self.j1
        self.s, self.s2 = s, s2
        r, r2 = s * self.inv_h, s2 * self.inv_h2
        if r2 > r:
            r = r2
        return r if r > self.wr else self.wr

    def reset(self) -> None:
        self.s = self.s2 = 0.0
        self.wr = 0.0

    def terms(self, total: Sequence[float], h: tuple[float, float]) -> list[tuple[str, float]]:
        """See :meth:`ContinuousCusum.terms`."""
        k, m = total[self.slot], total[self.slot + 1]
        return [(f"{self.name}/1", (k * self.i1 + (m - k) * self.i0) / h[0]),
                (f"{self.name}/2", (k * self.j1 + (m - k) * self.j0) / h[1])]

    def describe(self) -> dict[str, Any]:
        return {"kind": "rate", "reference_values": self.n, "reference_rate": self.p0,
                "design_rates": [self.p1, self.p2], "statistics": [self.s, self.s2], "threshold": self.h,
                "thresholds": [self.h, self.h2], "long_run_variance_ratio": self.phi}


class ToolsCusum:
    """Upward Bernoulli CUSUMs per tool category present in the reference, at two designs (a share of all
    calls moving to the category). Refusals are left out (they call no tool: the refusal signal owns them).
    For the combined statistic each call counts once, in the category of its first tool.

    Lazy: a call only moves the statistics of the categories it used upward; every other statistic
    falls by its fixed step ``log((1−p₁)/(1−p₀))`` and stops at 0, so it is brought up to date from the
    number of calls since it was last touched (exact), when its category is next used or when the
    signal's score is recomputed (every :data:`BLOCK` calls). Work per call: two statistics per tool used.
    """

    __slots__ = ("acc", "cats", "field", "h", "i0", "i1", "index", "inv_h", "last", "n", "n_cat", "name", "none",
                 "other", "p0", "phi", "quiet", "slot", "t", "v", "wr")

    def __init__(self, cats: list[str], p0: list[float], p1: list[list[float]], h: list[list[float]], n: int,
                 phi: list[float], acc: list[float], slot: int) -> None:
        self.name, self.field = "tool_mix", "tools"
        self.cats = cats
        self.index = {c: i for i, c in enumerate(cats)}
        self.other = self.index.get(OTHER, -1)
        self.none = self.index.get(NONE, -1)
        self.p0 = p0
        self.n_cat = len(cats)
        # flattened statistics: design 0 for every category, then design 1
        self.i1 = [math.log(b / a) for d in p1 for a, b in zip(p0, d, strict=True)]
        self.i0 = [math.log((1.0 - b) / (1.0 - a)) for d in p1 for a, b in zip(p0, d, strict=True)]
        self.h = h
        self.inv_h = [1.0 / x for d in h for x in d]
        self.n, self.phi = n, phi
        self.acc, self.slot = acc, slot
        self.reset()

    def reset(self) -> None:
        self.v = [0.0] * len(self.i1)  # statistic at the call it was last brought up to date
        self.last = [0] * len(self.i1)  # ... that call
        self.t = 0
        self.quiet = 0.0
        self.wr = 0.0  # the latest score of the signal's own χ² test (set by the monitor at block ends)

    def terms(self, total: Sequence[float], h: list[list[float]]) -> list[tuple[str, float]]:
        """See :meth:`ContinuousCusum.terms` (each call counted in the category of its first tool)."""
        k, m = self.n_cat, total[self.slot + self.n_cat]
        out = []
        for d in range(len(h)):
            for j, cat in enumerate(self.cats):
                c = total[self.slot + j]
                llr = c * self.i1[d * k + j] + (m - c) * self.i0[d * k + j]
                out.append((f"tool_mix/{cat}/{d + 1}", llr / h[d][j]))
        return out

    def current(self) -> list[float]:
        t, i0 = self.t, self.i0
        return [max(0.0, v + (t - at) * d) for v, at, d in zip(self.v, self.last, i0, strict=True)]

    def step(self, record: CallRecord) -> float:
        tools = record.tools
        if tools is None or record.refused:
            return -1.0
        t = self.t + 1
        self.t = t
        index, k = self.index, self.n_cat
        if tools:
            first = index.get(tools[0], self.other)
            present = (first,) if len(tools) == 1 else tuple({index.get(x, self.other) for x in tools})
        else:
            first = self.none
            present = (first,)
        acc = self.acc
        if first >= 0:
            acc[self.slot + first] += 1.0
        acc[self.slot + k] += 1.0
        v, last, i0, i1, inv_h = self.v, self.last, self.i0, self.i1, self.inv_h
        best = self.quiet if self.quiet > self.wr else self.wr
        for c in present:
            if c < 0:
                continue
            for j in (c, c + k):
                x = v[j] + (t - 1 - last[j]) * i0[j]
                if x < 0.0:
                    x = 0.0
                x += i1[j]
                v[j] = x
                last[j] = t
                r = x * inv_h[j]
                if r > best:
                    best = r
        if not t % BLOCK:
            self.quiet = max(x * ih for x, ih in zip(self.current(), inv_h, strict=True))
        return best

    def describe(self) -> dict[str, Any]:
        k = self.n_cat
        s = self.current()
        return {"kind": "tool_mix", "reference_values": self.n, "design_moves": list(TOOL_MOVES),
                "categories": {c: {"reference_rate": p, "statistic": max(s[j], s[j + k]),
                                   "threshold": min(self.h[0][j], self.h[1][j]), "long_run_variance_ratio": f}
                               for j, (c, p, f) in enumerate(zip(self.cats, self.p0, self.phi, strict=True))}}
