"""Fleets: N replicas of one agent pool their evidence, so the fleet detects from all of its calls at once.

With every replica on its own (``drift_replicas=N``), each detector sees a Nth of the traffic and gets a
Nth of the budget: in fleet calls, a change is found about N times later (plus the cost of the smaller
budget). Pooling keeps the detection delay of one process that would see every call:

* each replica's :class:`~driftwatch.drift.monitor.DriftMonitor` (with ``pool_rate``) sums its evidence
  since the reference was frozen (:meth:`~driftwatch.drift.monitor.DriftMonitor.evidence`): per CUSUM
  statistic, the cumulative log-likelihood ratio divided by the statistic's threshold at the fleet's share
  of the budget; for the windowed statistics, the sums of standardized values and event counts with the
  counts the reference expects. All of it adds up across replicas;
* the replicas publish that snapshot every poll (through the shared ledger), and each one reads all of
  them and runs :class:`FleetPool`: a CUSUM on the fleet's summed evidence, ``S = E − min E`` over the
  polls seen (alarm at 1: the thresholds are already divided out), and the windowed χ² statistics on the
  summed sums over the last ``m`` fleet calls (the same thresholds as in one process, with the union bound
  taken over the polls).

Each replica's increments are log-likelihood ratios standardized by its own reference, so the sum is a
CUSUM over the fleet's calls in the order the polls saw them; evaluated only at polls, it can only miss a
crossing, never add one: the fleet raises at most ``pool_rate`` false alarms per fleet call. The rest of
the budget stays local: each replica's own bank runs at ``(rate − pool_rate) / N`` and still catches large
changes at once, without waiting for a poll. By default ``pool_rate`` is half the budget, so the fleet
as a whole stays within ``drift_false_alarm_rate`` per fleet call.

Replicas are pooled per agent and per **anchor key** (the anchoring change's component and revision):
replicas that froze their reference at the same change. A snapshot is a plain dict (JSON in the ledger);
this module does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from driftwatch.drift.calibrate import chi2_isf, chibar_isf
from driftwatch.drift.combined import BLOCK, WINDOWS, Part, cholesky, degrees, evaluate
from driftwatch.drift.embedding import EMBEDDING_WINDOWS
from driftwatch.drift.record import COMBINED_SIGNAL

if TYPE_CHECKING:
    from driftwatch.drift.monitor import DriftMonitor
    from driftwatch.drift.record import CallRecord

__all__ = ["FleetPool", "anchor_key", "replay"]

_RING = 512  # pooled snapshots kept (polls): windows reach back at most this many polls


def anchor_key(component: str, revision: str) -> str:
    """The key replicas pool under: the anchoring change's component and its revision after the change."""
    return f"{component}@{revision}"


def replay(monitors: Sequence[DriftMonitor], calls: Iterable[tuple[int, CallRecord]], pool: FleetPool | None,
           poll: int, *, count_all: bool = False) -> list[int]:
    """Replay a fleet's calls in one process (tests, benchmarks, trying pooling offline): each ``(replica,
    record)`` goes to ``monitors[replica]``; every ``poll`` calls the ``pool`` (if any) reads every monitor's
    evidence. Returns the fleet's alarm positions (1-based call numbers): the first only, or with
    ``count_all`` every one (each followed by a reset of every monitor and of the pool)."""
    alarms: list[int] = []
    for i, (replica, record) in enumerate(calls):
        hit = bool(monitors[replica].update(record).fired)
        if pool is not None and (i + 1) % poll == 0:
            hit |= bool(pool.update({str(j): m.evidence() for j, m in enumerate(monitors)}))
        if hit:
            alarms.append(i + 1)
            if not count_all:
                break
            for m in monitors:
                m.reset()
            if pool is not None:
                pool.reset()
    return alarms


def _signal(key: str) -> str:
    return key.split("/", 1)[0]


class FleetPool:
    """The fleet's pooled statistics for one agent and one anchor (see the module docstring).

    ``pool_rate``: the fleet statistics' per-call budget (split like a bank: one share per signal group,
    as in each replica). Feed :meth:`update` the latest snapshot of every replica (a mapping replica →
    snapshot) at each poll; it returns the signals whose pooled statistic crossed (each once until
    :meth:`reset`). :attr:`scores`: each signal's pooled statistic ÷ threshold at the latest poll.
    """

    def __init__(self, pool_rate: float) -> None:
        self.pool_rate = pool_rate
        self._min: dict[str, float] = {}
        self._ring: list[tuple[float, list[float] | None, Any]] = []  # (fleet calls, combined, embedding)
        self._fired: set[str] = set()
        self._restart = False
        self.scores: dict[str, float] = {}
        self.calls = 0.0
        self.resets = 0
        self._origin: list[float] | None = None  # pooled sums at the last restart (None: zero, at the anchor)

    def reset(self) -> None:
        """Restart the pooled statistics from the next poll on (an operator reset): evidence collected so far
        no longer counts."""
        self.resets += 1
        self._restart = True
        self._origin = None
        self._ring = []
        self._fired = set()
        self.scores = {}

    def update(self, snapshots: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
        """Pool the replicas' latest snapshots; returns the signals that crossed."""
        snaps = [s for s in snapshots.values() if s]
        if not snaps:
            return []
        calls = sum(float(s.get("calls", 0)) for s in snaps)
        new = max(0.0, calls - self.calls) if self._ring else 0.0
        self.calls = calls
        share = self.pool_rate / max(1, max(int(s.get("groups", 1)) for s in snaps))
        scores: dict[str, float] = {}
        # CUSUM: E = Σ replicas' evidence per statistic; S = E − min over the polls (0 before the first)
        evidence: dict[str, float] = {}
        for s in snaps:
            for key, e in s.get("cusum", {}).items():
                evidence[key] = evidence.get(key, 0.0) + float(e)
        for key, e in evidence.items():
            low = e if self._restart else min(self._min.get(key, 0.0), e)
            self._min[key] = low
            sig = _signal(key)
            scores[sig] = max(scores.get(sig, 0.0), e - low)
        restart, self._restart = self._restart, False
        # windowed statistics on the pooled sums over the last m fleet calls
        comb = _pool_combined(snaps)
        emb = _pool_embedding(snaps)
        if comb is not None:
            if restart:
                self._origin = list(comb[0])
            if new > 0:
                for sig, r in self._anchored_scores(comb, snaps, share, new).items():
                    scores[sig] = max(scores.get(sig, 0.0), r)
        self._ring.append((calls, comb[0] if comb else None, emb[0] if emb else None))
        if len(self._ring) > _RING:
            del self._ring[0]
        if comb is not None and new > 0:
            scores[COMBINED_SIGNAL] = self._combined_score(comb, share, new)
        if emb is not None and new > 0:
            scores["embedding"] = self._embedding_score(emb, share, new)
        self.scores = scores
        fired = [sig for sig, r in scores.items() if r >= 1.0 and sig not in self._fired]
        self._fired.update(fired)
        return fired

    def _anchored_scores(self, comb: tuple[list[float], list[Part], list[list[float]], int],
                         snaps: Sequence[Mapping[str, Any]], share: float, new: float) -> dict[str, float]:
        """Each rate's own test over every fleet call since the anchor (or the last restart), as in each
        replica: at its part of the signal's share, spent over the ``new`` fleet calls since the last poll."""
        vec, parts, _, n_sums = comb
        anchored: dict[str, float] = {}
        for s in snaps:
            anchored.update(s.get("anchored") or {})
        origin = self._origin if self._origin is not None and len(self._origin) == len(vec) else None
        total = vec if origin is None else [a - b for a, b in zip(vec, origin, strict=True)]
        out: dict[str, float] = {}
        at = 0  # position of the part's expected counts
        for part in parts:
            width = 1 if part.kind == "rate" else len(part.p) if part.kind == "cats" else 0
            frac = anchored.get(part.signal, 0.0)
            if part.kind == "rate" and frac > 0.0:
                h = chibar_isf(min(0.5, share * frac * new), *degrees([part]))
                out[part.signal] = evaluate((part,), (), total[:n_sums], total[n_sums + at:n_sums + at + 1]) / h
            at += width
        return out

    def _back(self, calls_back: float) -> tuple[float, Any, Any] | None:
        """The newest pooled snapshot at least ``calls_back`` fleet calls before the latest one."""
        now = self._ring[-1][0]
        for entry in reversed(self._ring[:-1]):
            if now - entry[0] >= calls_back:
                return entry
        return None

    def _combined_score(self, comb: tuple[list[float], list[Part], list[list[float]], int], share: float,
                        new: float) -> float:
        vec, parts, low, n_sums = comb
        windows = [w * BLOCK for w in WINDOWS]
        # union bound over windows and polls: each test stands for the ``new`` fleet calls since the last one
        h = chibar_isf(min(0.5, share * new / len(windows)), *degrees(parts))
        best = 0.0
        for m in windows:
            past = self._back(m)
            if past is None or past[1] is None or len(past[1]) != len(vec):
                continue
            window = [a - b for a, b in zip(vec, past[1], strict=True)]
            best = max(best, evaluate(parts, low, window[:n_sums], window[n_sums:]) / h)
        return best

    def _embedding_score(self, emb: tuple[tuple[Any, float], Any, float], share: float, new: float) -> float:
        (s_now, n_now), prec, n_ref = emb
        windows = [w * BLOCK for w in EMBEDDING_WINDOWS]
        h = chi2_isf(min(0.5, share * new / len(windows)), prec.shape[0])
        best = 0.0
        for m_target in windows:
            past = self._back(m_target)
            if past is None or past[2] is None or len(past[2][0]) != len(s_now):
                continue
            s_then, n_then = past[2]
            m = n_now - n_then
            if m <= 0:
                continue
            diff = s_now - s_then
            best = max(best, float(diff @ prec @ diff) / (m * (1.0 + m / n_ref)) / h)
        return best


def _pool_combined(snaps: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[Part], list[list[float]],
                                                                 int] | None:
    """The replicas' combined-statistic sums added up, over the replicas whose parts match the first one's
    (the same signals and tool categories): (sums followed by expected counts, parts, Cholesky factor of
    the continuous parts' correlation, number of sums)."""
    layouts = [s["combined"] for s in snaps if s.get("combined")]
    if not layouts:
        return None

    def shape(c: Mapping[str, Any]) -> tuple:
        return tuple((p["signal"], p["kind"], tuple(p.get("names", ())), str(p.get("groups"))) for p in c["parts"])

    first = shape(layouts[0])
    same = [c for c in layouts if shape(c) == first]
    parts: list[Part] = []
    sums: list[float] = []
    expected: list[float] = []
    for j, p in enumerate(same[0]["parts"]):
        column = [c["parts"][j] for c in same]
        phi = max(float(q["phi"]) for q in column)
        n_ref = sum(int(q["n_ref"]) for q in column)
        names = list(p.get("names", ()))
        ps = [0.0] * len(names) if p["kind"] == "cats" else [0.0] if p["kind"] == "rate" else []
        parts.append(Part(p["signal"], p["kind"], len(sums), phi, n_ref, ps, names, int(p.get("side", 0)),
                          p.get("groups")))
        sums.extend(sum(float(q["sum"][i]) for q in column) for i in range(len(p["sum"])))
        expected.extend(sum(float(q["expected"][i]) for q in column) for i in range(len(p.get("expected", ()))))
    corr = same[0].get("corr") or []
    return sums + expected, parts, cholesky(corr) if corr else [], len(sums)


def _pool_embedding(snaps: Sequence[Mapping[str, Any]]) -> tuple[tuple[Any, float], Any, float] | None:
    """The replicas' embedding sums added up (those of the first one's dimension), with the pooled precision:
    the inverse of the call-weighted mean of their covariances."""
    embs = [s["embedding"] for s in snaps if s.get("embedding")]
    if not embs:
        return None
    import numpy as np

    d = embs[0]["d"]
    embs = [e for e in embs if e["d"] == d]
    total = np.sum([np.asarray(e["sum"], dtype=float) for e in embs], axis=0)
    n = float(sum(e["n"] for e in embs))
    weights = [max(float(e["n"]), 1.0) for e in embs]
    cov = sum(w * np.linalg.inv(np.asarray(e["precision"], dtype=float)) for w, e in zip(weights, embs, strict=True))
    prec = np.linalg.inv(cov / sum(weights))
    return (total, n), prec, float(sum(e["n_ref"] for e in embs))
