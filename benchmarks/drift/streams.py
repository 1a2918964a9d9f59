"""Synthetic agent call streams for the drift benchmark: a reference, then a change (or none).

Every call has an answer length (log-normal), a refusal flag, tools (one category per call), a
format-check result, an error flag, a judge score, a 32-dimension topic embedding and a latency.
A change moves one of them (or three at once, "compound") by a small, medium or large amount.
All magnitudes are in the table :data:`MAGNITUDES`; the baseline rates in :data:`BASE`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from driftwatch.drift import CallRecord

BASE = {
    "log_len_mean": 5.5, "log_len_sd": 0.5,            # ~245 characters, ×/÷ 1.65 spread
    "refusal": 0.03, "format_fail": 0.02, "error": 0.01,
    "tools": (0.40, 0.30, 0.20, 0.10),                  # none, search, calc, lookup
    "score_mean": 0.70, "score_sd": 0.15,
    "topics": (0.40, 0.30, 0.20, 0.10), "emb_dim": 32, "topic_sep": 1.0,
    "latency_median_s": 1.2, "latency_sd": 0.3,
}
TOOLS = ("search", "calc", "lookup")
KINDS = ("verbosity", "refusal", "tool_mix", "format", "judge", "embedding", "compound")
LEVELS = ("small", "medium", "large")
#: what each change does at each magnitude
MAGNITUDES = {
    "verbosity": (0.10, 0.25, 0.50),   # log-length mean shift: answers ×1.11 / ×1.28 / ×1.65 (0.2 / 0.5 / 1 sd)
    "refusal": (0.045, 0.07, 0.12),    # refusal rate 3% -> 4.5% / 7% / 12%
    "tool_mix": (0.04, 0.10, 0.20),    # share of calls moved from "no tool" to "search"
    "format": (0.03, 0.05, 0.09),      # format failures 2% -> 3% / 5% / 9%
    "judge": (0.03, 0.075, 0.15),      # judge score mean drop (0.2 / 0.5 / 1 sd)
    "embedding": (0.05, 0.15, 0.30),   # share of the rarest topic (10%) grows by this much
    "compound": (0, 1, 2),             # half of verbosity + refusal + judge at that level, together
}


@dataclass
class Effect:
    len_shift: float = 0.0
    refusal: float = BASE["refusal"]
    format_fail: float = BASE["format_fail"]
    tool_move: float = 0.0
    score_drop: float = 0.0
    topic_add: float = 0.0


def effect(kind: str | None, level: int) -> Effect:
    e = Effect()
    if kind is None:
        return e
    m = MAGNITUDES[kind][level]
    if kind == "verbosity":
        e.len_shift = m
    elif kind == "refusal":
        e.refusal = m
    elif kind == "tool_mix":
        e.tool_move = m
    elif kind == "format":
        e.format_fail = m
    elif kind == "judge":
        e.score_drop = m
    elif kind == "embedding":
        e.topic_add = m
    elif kind == "compound":
        e.len_shift = MAGNITUDES["verbosity"][m] / 2
        e.refusal = BASE["refusal"] + (MAGNITUDES["refusal"][m] - BASE["refusal"]) / 2
        e.score_drop = MAGNITUDES["judge"][m] / 2
    return e


def _centroids() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.standard_normal((len(BASE["topics"]), BASE["emb_dim"])) * BASE["topic_sep"]


CENTROIDS = _centroids()


def generate(n: int, eff: Effect, rng: np.random.Generator, *, start: int = 0,
             latency_cycle: float = 0.0, period: int = 2000) -> tuple[list[CallRecord], np.ndarray]:
    """``n`` calls under ``eff``; returns the records and the raw embeddings (n × 32)."""
    b = BASE
    log_len = rng.normal(b["log_len_mean"] + eff.len_shift, b["log_len_sd"], n)
    chars = np.maximum(1, np.exp(log_len)).astype(int)
    refused = rng.random(n) < eff.refusal
    fmt_ok = rng.random(n) >= eff.format_fail
    error = rng.random(n) < b["error"]
    p_tools = np.array(b["tools"], dtype=float)
    p_tools[0] -= eff.tool_move
    p_tools[1] += eff.tool_move
    tool_idx = rng.choice(4, size=n, p=p_tools)
    score = np.clip(rng.normal(b["score_mean"] - eff.score_drop, b["score_sd"], n), 0.0, 1.0)
    p_top = np.array(b["topics"], dtype=float)
    p_top[:3] *= (1.0 - p_top[3] - eff.topic_add) / p_top[:3].sum()
    p_top[3] += eff.topic_add
    topics = rng.choice(4, size=n, p=p_top)
    emb = CENTROIDS[topics] + rng.standard_normal((n, b["emb_dim"]))
    t = np.arange(start, start + n)
    load = 1.0 + latency_cycle * np.sin(2 * math.pi * t / period)
    latency = b["latency_median_s"] * load * np.exp(rng.normal(0.0, b["latency_sd"], n))
    out_tokens = (chars / 4).astype(int)
    records = []
    for i in range(n):
        k = int(tool_idx[i])
        records.append(CallRecord(
            output_chars=int(chars[i]), tokens=int(out_tokens[i]), refused=bool(refused[i]),
            tools=() if k == 0 else (TOOLS[k - 1],), format_ok=bool(fmt_ok[i]), error=bool(error[i]),
            score=float(score[i]), embedding=emb[i], latency_s=float(latency[i]), input_tokens=300,
        ))
    return records, emb
