"""Synthetic call records for the drift tests (seeded, so every test is deterministic)."""

from __future__ import annotations

import math
import random

from driftwatch.drift import CallRecord

TOOLS = ("search", "calc")


def records(n: int, rng: random.Random, *, length: float = 1.0, refusal: float = 0.03, fmt_fail: float = 0.02,
            error: float = 0.01, search: float = 0.3, score: float = 0.7, latency: float = 1.0,
            embedding_shift: float = 0.0, dims: int = 0, scores: bool = True) -> list[CallRecord]:
    """``n`` calls: log-normal lengths (×``length``), Bernoulli refusals/format failures/errors,
    a tool mix, judge scores around ``score`` and, with ``dims``, embeddings shifted by ``embedding_shift``."""
    out = []
    for _ in range(n):
        u = rng.random()
        tools = ("search",) if u < search else ("calc",) if u < search + 0.2 else ()
        emb = None
        if dims:
            emb = [rng.gauss(embedding_shift if j < dims // 2 else 0.0, 1.0) for j in range(dims)]
        out.append(CallRecord(
            output_chars=max(1, int(math.exp(rng.gauss(5.5, 0.5)) * length)), tokens=None,
            refused=rng.random() < refusal, tools=tools, format_ok=rng.random() >= fmt_fail,
            error=rng.random() < error, score=min(1.0, max(0.0, rng.gauss(score, 0.15))) if scores else None,
            embedding=emb, latency_s=latency * math.exp(rng.gauss(0.0, 0.3)), input_tokens=None))
    return out


def first_alarm(mon, recs: list[CallRecord]) -> tuple[int | None, tuple[str, ...]]:
    """(1-based index of the first update that raised an alarm, the signals it raised)."""
    for i, r in enumerate(recs):
        st = mon.update(r)
        if st.fired:
            return i + 1, st.fired
    return None, ()


def session_records(n: int, rng: random.Random, *, run_mean: float, length: float = 1.0,
                    score: float = 0.7) -> list[CallRecord]:
    """``n`` calls in sessions of geometric length (mean ``run_mean``): a session shares a topic that sets
    its answer length (×0.5 … ×2), its judged score (±0.1) and its tool — dependent calls."""
    out: list[CallRecord] = []
    topic = (0.0, 0.0, ())
    for i in range(n):
        if i == 0 or rng.random() < 1.0 / run_mean:
            topic = (rng.gauss(0.0, 0.45), rng.gauss(0.0, 0.1), rng.choice(((), ("search",), ("calc",))))
        out.append(CallRecord(
            output_chars=max(1, int(math.exp(5.5 + topic[0] + rng.gauss(0.0, 0.35)) * length)), tokens=None,
            refused=False, tools=topic[2], format_ok=True, error=False,
            score=min(1.0, max(0.0, rng.gauss(score + topic[1], 0.1))), embedding=None, latency_s=1.0))
    return out
