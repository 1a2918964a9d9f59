"""The combined statistic: several signals moving a little at once.

A change that moves four signals by half a step each is, for every one of them alone, a small change:
each per-signal CUSUM needs about four times as many calls as for the full step. Their evidence adds
up, though, and this statistic adds it: over the last ``m`` calls it sums, per signal, the evidence that
the signal moved in either direction, and compares the total with its χ² tail.

For a window of ``m`` monitored calls (the last 4, 8, …, 128 blocks of :data:`BLOCK` calls, tested at
every block end):

* **continuous signals** (log answer length, score): the window's sum of standardized values, ``t =
  Σz / √(m φ (1 + m/n))``, whitened together by their reference correlation (length first): ``t²`` for
  length (either direction), ``min(0, t)²`` for the score (drops only);
* **rates** (refusal, format failure, error): the deviance of the window's count ``k`` given the ``K`` events
  of reference and window together (binomial ``K``, ``q = m/(m+n)`` under no change, whatever the rate:
  :func:`conditional_deviance`), divided by ``φ``, when the count is above what ``K`` expects (increases only;
  the deviance, unlike a standardized count, keeps a χ² tail for rare events; a fleet's pooled counts use the
  deviance against the expected counts it is given, divided by ``φ (1 + m/n)``);
* **tool mix**: the multinomial deviance of the window's category counts, ÷ ``φ (1 + m/n)`` — χ² with
  (categories − 1) degrees of freedom (mass moving anywhere).

``φ`` is each signal's long-run variance ratio (:mod:`driftwatch.drift.dependence`) and ``(1 + m/n)``
accounts for the reference itself being ``n`` calls (its error is as large as the window's when
``m = n``). The statistic is ``Q = Σ`` of the parts; its null distribution is a chi-bar-square (a χ² for
the two-sided parts plus one half-χ²₁ per one-sided part, :func:`~driftwatch.drift.calibrate.chibar_sf`);
the window alarms when ``Q > q_m``, that distribution's quantile at ``α · BLOCK · stride / windows``,
where a window of ``w`` blocks is tested every ``stride = max(1, w/8)`` blocks (a long window barely
moves in one block) — so by the union bound over windows and tests its per-call false-alarm rate is at
most its budget ``α``. Work: a few additions per
call (each signal adds its value and a presence count to an accumulator) and, every ``BLOCK`` calls,
about three window tests. Memory: a ring of 129 cumulative sums.

**Since the anchor.** The same statistic (and each rate's part alone, and each tool category as a rate:
:meth:`Combined.add_solo`) is also taken over every call since the statistics started — the anchor, where a
self-modification's drift starts — tested every block at first and then every eighth of the blocks so far
(:func:`anchor_stride`), each test at its union-bound level (the first test: every call since the anchor,
:func:`anchor_spend`) times :data:`ANCHOR_GAIN` (the tests are nested: :func:`anchor_thresholds`; a rate's
own test: :data:`RATE_ANCHOR_GAIN_EARLY` in its first 64 blocks, :data:`RATE_ANCHOR_GAIN` later).

Attribution: :meth:`Combined.effects` gives, for a window, each signal's standardized shift (mean ``z``
for continuous signals, observed vs reference rate for rates, the most over-represented tool).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from driftwatch.drift.calibrate import chibar_isf

__all__ = ["ANCHOR_GAIN", "BLOCK", "RATE_ANCHOR_GAIN", "RATE_ANCHOR_GAIN_EARLY", "WINDOWS", "Combined", "Part",
           "anchor_spend", "anchor_stride", "anchor_thresholds", "cholesky", "conditional_deviance", "degrees",
           "evaluate", "forward", "solo_anchor_thresholds", "stride", "window_thresholds"]

#: calls per block: the combined and embedding statistics are tested at block ends
BLOCK = 16
#: window lengths, in blocks (64 … 2048 calls)
WINDOWS: tuple[int, ...] = (4, 8, 16, 32, 64, 128)


def stride(w: int) -> int:
    """A window of ``w`` blocks is tested every ``stride(w)`` blocks."""
    return max(1, w // 8)


#: the test over every call since the start: at most this many blocks between two tests
MAX_ANCHOR_STRIDE = 1 << 12
#: the tests since the start are nested (each holds the calls of the one before, at least 8/9 of its own), so a
#: plain union bound over them counts the same evidence again and again: simulated at 1e-5 per call over
#: 4000 calls (200k binomial streams at 1% and 3% with a 1000-call reference; 5000 Gaussian streams of 1 and
#: 16 dimensions), it spends 24–30% of the budget. Each test's level is this multiple of its union-bound
#: share: 55–62% of the budget in the same simulations.
ANCHOR_GAIN = 3.0
#: the same for a rate's own test (:func:`conditional_deviance`, one-sided), for its tests after the first 64 blocks
#: (1024 calls): the conditional test is exact about the reference's uncertainty, so the union bound over its
#: nested tests wastes more than for the other statistics (at ANCHOR_GAIN it spends 30–35% of the budget). The late
#: tests carry the evidence of small shifts: a ×1.5 change from 2–4% is found within 3000 calls in 56.5% of
#: simulated streams, against 49% at 5 throughout (held-out profiles, small refusal changes: 50% → 70%)
RATE_ANCHOR_GAIN = 8.0
#: ... and for its tests in the first 64 blocks (strides up to 4 blocks), which dominate while the anchor (or a
#: reset) is recent: simulated over 500, 1000, 2000 and 4000 calls (40k streams at 1%, 3% and 10%, a 1000-call
#: reference, 1e-5 and 1e-4 per call) the two together spend at most 99% of the budget (as 5 throughout), where 8
#: throughout spent up to 129% over 500 calls and 8 from 256 calls on up to 113% over 1000
RATE_ANCHOR_GAIN_EARLY = 5.0


def anchor_stride(blocks: int) -> int:
    """The test over every call since the start is run every ``anchor_stride(b)`` blocks at ``b`` blocks: every
    block at first, then an eighth of the power of two at or below ``b`` (at most :data:`MAX_ANCHOR_STRIDE`)."""
    return min(MAX_ANCHOR_STRIDE, max(1, (1 << (blocks.bit_length() - 1)) // 8))


def anchor_spend(blocks: int, first: int) -> int:
    """The blocks whose budget the test since the start at ``blocks`` blocks spends, when its first test is at
    ``first`` blocks: every block since the start for the first test (none was spent before it), else the
    blocks since the previous test (:func:`anchor_stride`). Tests run when ``blocks ≥ first`` and ``blocks``
    is a multiple of ``anchor_stride(blocks)``; ``first`` is a power of two, a key of :func:`anchor_thresholds`."""
    return first if blocks == first else anchor_stride(blocks)


def anchor_thresholds(alpha: float, two: int, one: int = 0, gain: float = ANCHOR_GAIN) -> dict[int, float]:
    """Thresholds of the test over every call since the start, per stride: tested every ``st`` blocks, a test
    may spend ``alpha`` per call since the previous one, times :data:`ANCHOR_GAIN` (the tests are nested: see
    there; ``gain``: that multiple), so that the test raises at most ``alpha`` false alarms per call."""
    out: dict[int, float] = {}
    st = 1
    while st <= MAX_ANCHOR_STRIDE:
        out[st] = chibar_isf(min(0.5, alpha * BLOCK * st * gain), two, one)
        st *= 2
    return out


def solo_anchor_thresholds(alpha: float, two: int, one: int, rate: bool, first: int) -> dict[int, float]:
    """Thresholds of a single signal's test since the start, per stride (:func:`anchor_thresholds`), and under key 0
    its first test's (at ``first`` blocks). ``rate``: a rate's own test — its tests at strides up to 4 blocks (the
    first 64 blocks) at :data:`RATE_ANCHOR_GAIN_EARLY`, the later ones at :data:`RATE_ANCHOR_GAIN`; otherwise all at
    :data:`ANCHOR_GAIN`."""
    out = anchor_thresholds(alpha, two, one, gain=RATE_ANCHOR_GAIN if rate else ANCHOR_GAIN)
    early = anchor_thresholds(alpha, two, one, gain=RATE_ANCHOR_GAIN_EARLY) if rate else out
    out.update({st: early[st] for st in (1, 2, 4)})
    out[0] = early[anchor_spend(first, first)]
    return out


def window_thresholds(alpha: float, windows: Sequence[int], two: int, one: int = 0) -> list[float]:
    """Thresholds per window (chi-bar-square with ``two`` two-sided degrees of freedom and ``one`` one-sided
    components) such that all tests together raise at most ``alpha`` false alarms per call (union bound: a
    window is tested every ``stride`` blocks of ``BLOCK`` calls)."""
    return [chibar_isf(min(0.5, alpha * BLOCK * stride(w) / len(windows)), two, one) for w in windows]


def cholesky(a: Sequence[Sequence[float]]) -> list[list[float]]:
    """Lower Cholesky factor of a small symmetric positive-definite matrix (pure Python); a pivot that is
    not positive (a degenerate matrix) is replaced by a tiny one."""
    k = len(a)
    low = [[0.0] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1):
            s = a[i][j] - sum(low[i][t] * low[j][t] for t in range(j))
            if i == j:
                low[i][i] = math.sqrt(s) if s > 1e-12 else 1e-6
            else:
                low[i][j] = s / low[j][j]
    return low


def forward(low: Sequence[Sequence[float]], b: Sequence[float]) -> list[float]:
    """Solve ``L x = b`` for lower-triangular ``L``."""
    x: list[float] = []
    for i, row in enumerate(low):
        x.append((b[i] - sum(row[t] * x[t] for t in range(i))) / row[i])
    return x


def _unfactor(low: Sequence[Sequence[float]]) -> list[list[float]]:
    """``L Lᵀ``: the correlation matrix back from its Cholesky factor."""
    k = len(low)
    return [[sum(low[i][t] * low[j][t] for t in range(k)) for j in range(k)] for i in range(k)]


def _xlogx(k: float, e: float) -> float:
    return k * math.log(k / e) if k > 0.0 else 0.0


def conditional_deviance(k: float, m: float, k_ref: float, n_ref: int, side: int = 1) -> float:
    """Two-sample test of a rate: ``k`` events in ``m`` monitored calls against ``k_ref`` in the ``n_ref`` calls
    of the reference. Given the ``K = k + k_ref`` events of both, ``k`` is binomial (``K``, ``q = m/(m+n_ref)``)
    under no change, whatever the rate: its deviance ``2[k log(k/Kq) + (K−k) log((K−k)/K(1−q))]`` has a χ²₁
    tail without leaning on an estimate of the rate. (A reference of 2–15 events, a 0.5–1.5% error rate, makes
    that estimate so rough that a test taking it as known — even with the reference's variance added —
    alarms several times too often.) ``side``: +1 increases only (0 when ``k`` is below what ``K`` expects)."""
    big = k + k_ref
    if m <= 0 or big <= 0.0:
        return 0.0
    q = m / (m + n_ref)
    e = big * q
    if (side > 0 and k <= e) or (side < 0 and k >= e):
        return 0.0
    return 2.0 * (_xlogx(k, e) + _xlogx(big - k, big - e))


class Part:
    """One signal's place in the accumulator and what the reference says about it.

    ``kind``: ``"z"`` (continuous: slots value-sum, count), ``"rate"`` (slots events, count; the count
    ``count_at`` slots after the events: one category of the tool mix tested alone) or ``"cats"`` (slots: one
    count per category, then the call count). ``p``: reference rate(s);
    ``phi``: long-run variance ratio; ``names``: category names (``"cats"``); ``side``: +1 only increases
    count, −1 only decreases, 0 both (tool mix: always 0); ``groups``: categories counted together in the
    statistic (lists of category indices; default each alone).
    """

    __slots__ = ("count_at", "groups", "kind", "n_ref", "names", "p", "phi", "side", "signal", "slot", "width")

    def __init__(self, signal: str, kind: str, slot: int, phi: float, n_ref: int, p: Sequence[float] = (),
                 names: Sequence[str] = (), side: int = 0, groups: Sequence[Sequence[int]] | None = None,
                 count_at: int = 1) -> None:
        self.signal, self.kind, self.slot, self.phi, self.n_ref = signal, kind, slot, max(1.0, phi), n_ref
        self.count_at = count_at
        self.p = list(p)
        self.names = list(names)
        self.side = 0 if kind == "cats" else side
        self.width = len(self.p) + 1 if kind == "cats" else 2
        self.groups = [list(g) for g in groups] if groups else [[j] for j in range(len(self.p))]

    @property
    def df(self) -> int:
        return len(self.groups) - 1 if self.kind == "cats" else 1


def degrees(parts: Sequence[Part]) -> tuple[int, int]:
    """(two-sided degrees of freedom, one-sided components) of the parts' statistic."""
    return sum(p.df for p in parts if not p.side), sum(1 for p in parts if p.side)


def evaluate(parts: Sequence[Part], low: Sequence[Sequence[float]], s: Sequence[float],
             expected: Sequence[float] | None = None) -> float:
    """The combined statistic for window sums ``s`` (laid out as the parts' slots). ``expected``: the event
    counts the reference expects, one per rate and per category in part order (default: ``m × p``; a
    fleet passes the sum over its replicas' references)."""
    total = 0.0
    ts: list[float] = []
    sides: list[int] = []
    at = 0
    for part in parts:
        i = part.slot
        if part.kind == "z":
            m = s[i + 1]
            ts.append(s[i] / math.sqrt(m * part.phi * (1.0 + m / part.n_ref)) if m > 0 else 0.0)
            sides.append(part.side)
        elif part.kind == "rate":
            k, m = s[i], s[i + part.count_at]
            if expected is None:
                total += conditional_deviance(k, m, part.p[0] * part.n_ref, part.n_ref, part.side) / part.phi
            else:
                e = expected[at]
                if m > 0 and 0.0 < e < m and (part.side <= 0 or k > e):
                    total += 2.0 * (_xlogx(k, e) + _xlogx(m - k, m - e)) / (part.phi * (1.0 + m / part.n_ref))
            at += 1
        else:
            c = len(part.p)
            m = s[i + c]
            es = [m * p for p in part.p] if expected is None else expected[at:at + c]
            at += c
            if m > 0:
                g = 2.0 * sum(_xlogx(sum(s[i + j] for j in grp), sum(es[j] for j in grp)) for grp in part.groups)
                total += g / (part.phi * (1.0 + m / part.n_ref))
    if ts:
        for u, side in zip(forward(low, ts) if low else ts, sides, strict=True):
            if side == 0 or u * side > 0.0:
                total += u * u
    return total


class Combined:
    """The windowed multi-signal statistic (see the module docstring).

    ``parts``: the signals, each with its slots in :attr:`acc`; ``corr``: the reference correlation of
    the continuous parts (in the order they appear); ``alpha``: this statistic's per-call budget;
    ``acc``: the accumulator list the signals add into (shared; emptied in place at each block end).
    """

    __slots__ = ("acc", "anchor_h", "anchor_last", "blocks", "cont", "cum", "df", "h", "head", "hit", "inv_h", "last",
                 "low", "name", "one", "parts", "size", "solo", "strides", "two", "windows")

    def __init__(self, parts: list[Part], corr: Sequence[Sequence[float]], alpha: float,
                 windows: Sequence[int] = WINDOWS, acc: list[float] | None = None, anchored: float = 0.0) -> None:
        self.name = "combined"
        self.parts = parts
        self.cont = [p for p in parts if p.kind == "z"]
        self.low = cholesky(corr) if self.cont else []
        self.two, self.one = degrees(parts)
        self.size = max((p.slot + p.width for p in parts), default=0) if acc is None else len(acc)
        self.acc = [0.0] * self.size if acc is None else acc  # the signals add into it (shared list)
        self.df = sum(p.df for p in parts)
        self.windows = tuple(windows)
        self.strides = [stride(w) for w in self.windows]
        self.h = window_thresholds(alpha * (1.0 - anchored), self.windows, self.two, self.one)
        self.inv_h = [1.0 / h for h in self.h]
        #: the test over every call since the start: its threshold per stride (empty: off)
        self.anchor_h = anchor_thresholds(alpha * anchored, self.two, self.one) if anchored > 0.0 else {}
        self.anchor_last = 0.0
        self.hit: tuple[list[float], float] | None = None  # sums and threshold of the test that crossed last
        ring = max(self.windows) + 1
        self.cum = [[0.0] * self.size for _ in range(ring)]
        self.head = 0  # index of the latest cumulative sum
        self.blocks = 0
        self.last = [0.0] * len(self.windows)  # each window's latest score
        #: single-signal tests: part → (inverse thresholds per window, latest ratio per window and since the
        #: start (last), inverse thresholds of the test since the start per stride, the part tested)
        self.solo: list[tuple[list[float], list[float], dict[int, float], Part]] = []

    def add_solo(self, signal: str, alpha: float, anchored: float = 0.0, part: Part | None = None) -> None:
        """Also test ``signal``'s part alone (a two-sample test of its own): on the sliding windows at ``alpha``,
        and on every call since the statistics started (the anchor) at ``anchored``. A rare-event rate is told
        apart from the reference's own uncertainty over a window more efficiently than by a CUSUM, which must
        allow for that uncertainty for ever; and a change that starts at the anchor (a self-modification) is
        seen best over all the calls since. ``part``: the signal's part as this test sees it (default: the
        combined statistic's; the tool mix tests each category alone, as a rate)."""
        j = next(j for j, p in enumerate(self.parts) if p.signal == signal)
        part = self.parts[j] if part is None else part
        df = degrees([part])
        inv = [0.0] * len(self.windows)
        if alpha > 0.0:
            inv = [1.0 / h for h in window_thresholds(alpha, self.windows, *df)]
        by_stride: dict[int, float] = {}
        if anchored > 0.0:
            by_stride = {st: 1.0 / h for st, h in solo_anchor_thresholds(anchored, *df, part.kind == "rate",
                                                                         self.windows[0]).items()}
        self.solo.append((inv, [0.0] * (len(self.windows) + 1), by_stride, part))

    def reset(self) -> None:
        self.acc[:] = [0.0] * self.size
        self.cum = [[0.0] * self.size for _ in range(len(self.cum))]
        self.head = 0
        self.blocks = 0
        self.last = [0.0] * len(self.windows)
        self.anchor_last = 0.0
        self.hit = None
        for _, latest, _, _ in self.solo:
            latest[:] = [0.0] * len(latest)

    def end_block(self) -> tuple[float, int]:
        """Close the block (the accumulator is emptied in place): returns (score = the highest latest Q/q over
        the windows, the window in calls that alarmed or 0). Single-signal tests: :meth:`solo_scores`."""
        acc = self.acc
        ring = len(self.cum)
        prev = self.cum[self.head]
        head = (self.head + 1) % ring
        self.cum[head] = [a + b for a, b in zip(prev, acc, strict=True)]
        self.head = head
        acc[:] = [0.0] * self.size
        blocks = self.blocks = self.blocks + 1
        last = self.last
        fired = 0
        for k, w in enumerate(self.windows):
            if w > blocks:
                break
            if blocks % self.strides[k]:
                continue
            s = self.window(w)
            r = self.q(s) * self.inv_h[k]
            last[k] = r
            if r >= 1.0 and not fired:
                fired = w * BLOCK
                self.hit = (s, self.h[k])
            for inv, latest, _, part in self.solo:
                if inv[k]:
                    latest[k] = evaluate((part,), (), s) * inv[k]
        if self.solo:
            self._anchored(blocks)
        if self.anchor_h and blocks >= self.windows[0] and not blocks % anchor_stride(blocks):
            s = self.cum[self.head]
            h = self.anchor_h[anchor_spend(blocks, self.windows[0])]
            r = self.anchor_last = self.q(s) / h
            if r >= 1.0 and not fired:
                fired = blocks * BLOCK
                self.hit = (s, h)
        top = max(last)
        return (top if top > self.anchor_last else self.anchor_last), fired

    def _anchored(self, blocks: int) -> None:
        """The single-signal tests over every call since the start (from the shortest window on)."""
        if blocks < self.windows[0]:
            return
        if blocks % anchor_stride(blocks):
            return
        st = 0 if blocks == self.windows[0] else anchor_spend(blocks, self.windows[0])  # 0: the first test
        s = self.cum[self.head]
        for _, latest, by_stride, part in self.solo:
            if by_stride:
                latest[-1] = evaluate((part,), (), s) * by_stride.get(st, 0.0)

    def solo_scores(self) -> dict[str, float]:
        """Each single-signal test's highest latest score over the windows."""
        out: dict[str, float] = {}
        for _, latest, _, part in self.solo:
            r = max(latest)
            if r > out.get(part.signal, -1.0):
                out[part.signal] = r
        return out

    def window(self, w: int) -> list[float]:
        """The accumulator's sums over the last ``w`` blocks."""
        ring = len(self.cum)
        now, then = self.cum[self.head], self.cum[(self.head - w) % ring]
        return [a - b for a, b in zip(now, then, strict=True)]

    def q(self, s: Sequence[float]) -> float:
        """The statistic for window sums ``s``."""
        return evaluate(self.parts, self.low, s)

    def crosses_without(self, signals: set[str]) -> bool:
        """Over the window of the latest crossing, does the evidence of the *other* signals alone still cross
        that test's threshold? (A crossing that only repeats alarms already raised is not news.)"""
        if self.hit is None:
            return False
        sums, h = self.hit
        rest = [p for p in self.parts if p.signal not in signals]
        if not rest:
            return False
        keep = [j for j, p in enumerate(self.cont) if p.signal not in signals]
        full = _unfactor(self.low)
        low = cholesky([[full[a][b] for b in keep] for a in keep]) if keep else []
        return evaluate(rest, low, sums) >= h

    def score_window(self) -> tuple[float, int]:
        """(max Q/q over the available windows, the window of that maximum in calls)."""
        best, at = 0.0, 0
        for k, w in enumerate(self.windows):
            if w > self.blocks:
                break
            r = self.q(self.window(w)) * self.inv_h[k]
            if r > best:
                best, at = r, w * BLOCK
        return best, at

    def effects(self, calls: int | None = None) -> dict[str, dict[str, Any]]:
        """Each signal's movement over the last ``calls`` calls (default: the window with the highest score,
        or every call since the statistics started when no window is complete yet), the current partial
        block included: ``shift_sd`` (continuous), ``rate``/``reference_rate`` (rates), the most
        over-represented tool (tool mix), and ``t`` — the signed evidence in standard errors."""
        if calls is None:
            calls = self.score_window()[1] or self.blocks * BLOCK
        w = min(calls // BLOCK, self.blocks)
        s = [a + b for a, b in zip(self.window(w), self.acc, strict=True)] if w else list(self.acc)
        out: dict[str, dict[str, Any]] = {}
        for part in self.parts:
            i = part.slot
            if part.kind == "z":
                m = s[i + 1]
                if m > 0:
                    out[part.signal] = {"shift_sd": s[i] / m, "calls": int(m),
                                        "t": s[i] / math.sqrt(m * part.phi * (1.0 + m / part.n_ref))}
            elif part.kind == "rate":
                k, m = s[i], s[i + 1]
                if m > 0:
                    p = part.p[0]
                    sd = math.sqrt(m * p * (1.0 - p) * part.phi * (1.0 + m / part.n_ref))
                    out[part.signal] = {"rate": k / m, "reference_rate": p, "calls": int(m), "t": (k - m * p) / sd}
            else:
                m = s[i + len(part.p)]
                if m > 0:
                    best = None
                    for j, p in enumerate(part.p):
                        sd = math.sqrt(m * p * (1.0 - p) * part.phi * (1.0 + m / part.n_ref))
                        t = (s[i + j] - m * p) / sd
                        if best is None or t > best[0]:
                            best = (t, part.names[j], s[i + j] / m, p)
                    if best is not None:
                        out[part.signal] = {"category": best[1], "rate": best[2], "reference_rate": best[3],
                                            "calls": int(m), "t": best[0]}
        return out

    def snapshot(self, total: Sequence[float]) -> dict[str, Any]:
        """The parts and their sums over ``total`` (accumulator totals since arming), with the event counts
        the reference expects — what another process needs to pool this one's calls with its own."""
        parts = []
        for part in self.parts:
            i = part.slot
            entry: dict[str, Any] = {"signal": part.signal, "kind": part.kind, "phi": part.phi, "n_ref": part.n_ref,
                                     "side": part.side}
            if part.kind == "z":
                entry["sum"] = [total[i], total[i + 1]]
            elif part.kind == "rate":
                m = total[i + 1]
                entry["sum"] = [total[i], m]
                entry["expected"] = [m * part.p[0]]
            else:
                c = len(part.p)
                m = total[i + c]
                entry["names"] = list(part.names)
                entry["groups"] = part.groups
                entry["sum"] = [total[i + j] for j in range(c)] + [m]
                entry["expected"] = [m * p for p in part.p]
            parts.append(entry)
        return {"parts": parts, "corr": [[row[j] for j in range(len(row))] for row in _unfactor(self.low)]}

    def describe(self) -> dict[str, Any]:
        score, at = self.score_window()
        return {"kind": "combined_window_chi2", "signals": [p.signal for p in self.parts],
                "degrees_of_freedom": self.df, "one_sided": self.one, "threshold": min(self.h),
                "thresholds": list(self.h),
                "windows_calls": [w * BLOCK for w in self.windows],
                "score": score, "window_calls": at,
                "long_run_variance_ratio": {p.signal: p.phi for p in self.parts},
                **({"since_anchor": {"score": self.anchor_last, "thresholds": dict(self.anchor_h)}}
                   if self.anchor_h else {})}
