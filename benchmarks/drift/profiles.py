"""Randomized agent profiles for the drift benchmark: every stream comes from a new, random agent.

``streams.py`` (one fixed agent, independent signals) stays as the regression check; this module
builds the harder streams of issue 13. A :class:`Profile` is drawn from a seed:

* a latent mixture of 4–6 **topics** drives every signal, so signals are correlated as in real traces:
  answer length, tool preferences, judge score, refusal and format-failure propensities and the
  embedding cluster all depend on the topic; **refusals** are short, call no tool, are judged low and
  sometimes break the format;
* **judge scores are discrete** (an integer 1–10, from a latent quality rounded and clipped);
* refusal and format-failure base rates 2–4%, errors 0.5–1.5%, 5–8 tools with random per-topic preferences
  (some tools rare), a 16-dimension embedding that clusters by topic;
* **sessions**: calls come in runs that share a topic and a latent "user" effect (on length, judged
  quality, refusal odds and phrasing), of geometric length with mean ``run_mean`` (1 = independent calls;
  the session streams draw 3–20). The marginal distribution of a call is the same whatever ``run_mean``:
  only the dependence between calls changes;
* a ±20% **diurnal latency cycle** (``latency_cycle``), which must not move the behavioural detector.

Change families and magnitudes, in units of each signal's own noise (:data:`LEVEL_RANGES`):

| family | small | medium | large |
|---|---|---|---|
| verbosity: log-length mean ± (marginal sd, random sign) | 0.15–0.2 | 0.3–0.35 | 0.6–1.0 |
| refusal: rate × | 1.5 | 2 | 3–4 |
| tool_mix: share of tool mass moved to one random tool (also a rare one) | 5% | 10% | 20–30% |
| format: failure rate × | 1.5 | 2 | 3–4 |
| embedding style: mean shift in a random direction (marginal sd along it) | 0.15–0.2 | 0.3–0.35 | 0.6–1.0 |
| judge: latent quality − (marginal sd of the score) | 0.15–0.2 | 0.3–0.35 | 0.6–1.0 |
| compound: 4 of the 6 families above at once, each at half its effect | | | |

Seeds: a stream's profile, change and calls all come from its seed; :data:`DEV_SEEDS` are the seeds the
engine was developed on, :data:`HELD_OUT_SEEDS` the ones it is evaluated on (never used for tuning).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from driftwatch.drift import CallRecord

FAMILIES = ("verbosity", "refusal", "tool_mix", "format", "embedding", "judge")
KINDS = (*FAMILIES, "compound")
LEVELS = ("small", "medium", "large")
EMB_DIM = 16
#: magnitude ranges per level: continuous shifts (sd), rate factors, tool mass moved
LEVEL_RANGES = {
    "shift": ((0.15, 0.20), (0.30, 0.35), (0.60, 1.00)),
    "rate": ((1.5, 1.5), (2.0, 2.0), (3.0, 4.0)),
    "tool": ((0.05, 0.05), (0.10, 0.10), (0.20, 0.30)),
}
#: seed bases: development (tuning) and held-out (evaluation only) profiles
DEV_SEEDS = 1_000_000
HELD_OUT_SEEDS = 9_000_000


@dataclass
class Profile:
    """One random agent (see the module docstring)."""

    seed: int
    n_topics: int
    weights: np.ndarray
    centroids: np.ndarray          # topics × EMB_DIM
    style_sd: float                # per-session phrasing offset of the embedding
    len_mu: np.ndarray             # per-topic mean log length
    len_sd: float                  # within-topic sd of log length
    user_len_sd: float             # per-session (user) effect on log length
    refusal_p: np.ndarray          # per-topic refusal probability
    user_ref_sd: float             # per-session effect on refusal log-odds
    fmt_p: np.ndarray              # per-topic format-failure probability
    error_p: float
    tools: tuple[str, ...]
    p_none: np.ndarray             # per-topic probability of calling no tool
    tool_pref: np.ndarray          # topics × tools
    judge_mu: np.ndarray           # per-topic mean latent quality (1–10 scale)
    judge_sd: float
    user_judge_sd: float
    run_mean: float = 1.0          # mean run (session) length; 1 = independent calls
    latency_cycle: float = 0.0
    latency_period: int = 5000
    latency_phase: float = 0.0
    stats: dict = field(default_factory=dict)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p))


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_profile(seed: int, *, run_mean: float | None = None, latency_cycle: float = 0.0) -> Profile:
    """A random agent; ``run_mean=None`` draws independent calls (1.0)."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(4, 7))
    weights = rng.dirichlet(np.full(k, 2.0))
    centroids = rng.standard_normal((k, EMB_DIM)) * rng.uniform(0.8, 1.5)
    n_tools = int(rng.integers(5, 9))
    tools = tuple(f"tool{j}" for j in range(n_tools))
    tool_pref = rng.dirichlet(np.full(n_tools, 0.5), size=k)
    base_ref = rng.uniform(0.02, 0.04)
    ref_p = _expit(_logit(np.full(k, base_ref)) + rng.normal(0.0, 0.6, k))
    ref_p *= base_ref / float(weights @ ref_p)
    base_fmt = rng.uniform(0.02, 0.04)
    fmt_p = _expit(_logit(np.full(k, base_fmt)) + rng.normal(0.0, 0.6, k))
    fmt_p *= base_fmt / float(weights @ fmt_p)
    prof = Profile(
        seed=seed, n_topics=k, weights=weights, centroids=centroids, style_sd=rng.uniform(0.2, 0.5),
        len_mu=rng.normal(rng.uniform(5.0, 6.5), rng.uniform(0.2, 0.6), k), len_sd=rng.uniform(0.35, 0.6),
        user_len_sd=rng.uniform(0.1, 0.3), refusal_p=ref_p, user_ref_sd=rng.uniform(0.2, 0.6), fmt_p=fmt_p,
        error_p=rng.uniform(0.005, 0.015), tools=tools, p_none=rng.uniform(0.15, 0.6, k), tool_pref=tool_pref,
        judge_mu=rng.normal(rng.uniform(6.0, 7.8), rng.uniform(0.3, 0.9), k), judge_sd=rng.uniform(0.9, 1.6),
        user_judge_sd=rng.uniform(0.3, 0.7), run_mean=1.0 if run_mean is None else float(run_mean),
        latency_cycle=latency_cycle, latency_phase=rng.uniform(0.0, 2 * math.pi),
    )
    prof.stats = _marginals(prof)
    return prof


def _marginals(p: Profile) -> dict:
    """Marginal spreads the change magnitudes are expressed in (Monte Carlo, 20k calls, fixed seed)."""
    recs, emb = _draw(p, Change(), 20_000, np.random.default_rng(p.seed + 17), start=0, iid=True)
    ok = ~recs["refused"]
    cov = np.cov(emb.T)
    return {"log_len_sd": float(np.std(np.log1p(recs["chars"][ok]))),
            "score_sd": float(np.std(recs["score"][ok])), "emb_cov": cov}


@dataclass
class Change:
    """What moves after the change point (defaults: nothing)."""

    kind: str | None = None
    level: str | None = None
    len_shift: float = 0.0         # in log-length units
    refusal_factor: float = 1.0
    tool_move: float = 0.0
    tool_dest: int = 0
    fmt_factor: float = 1.0
    emb_shift: np.ndarray | None = None
    judge_shift: float = 0.0       # in latent-quality units (negative: worse)
    families: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.kind}/{self.level}({', '.join(self.families)})" if self.kind else "none"


def make_change(p: Profile, kind: str | None, level: str | None, rng: np.random.Generator) -> Change:
    """A random change of ``kind`` at ``level`` for profile ``p`` (``kind=None``: no change)."""
    ch = Change(kind=kind, level=level)
    if kind is None:
        return ch
    li = LEVELS.index(level)
    fams = tuple(rng.choice(FAMILIES, size=4, replace=False)) if kind == "compound" else (kind,)
    half = 0.5 if kind == "compound" else 1.0
    ch.families = fams
    for fam in fams:
        shift = rng.uniform(*LEVEL_RANGES["shift"][li]) * half
        rate = 1.0 + (rng.uniform(*LEVEL_RANGES["rate"][li]) - 1.0) * half
        tool = rng.uniform(*LEVEL_RANGES["tool"][li]) * half
        if fam == "verbosity":
            ch.len_shift = shift * p.stats["log_len_sd"] * (1.0 if rng.random() < 0.5 else -1.0)
        elif fam == "refusal":
            ch.refusal_factor = rate
        elif fam == "tool_mix":
            ch.tool_move = tool
            ch.tool_dest = int(rng.integers(len(p.tools)))
        elif fam == "format":
            ch.fmt_factor = rate
        elif fam == "embedding":
            u = rng.standard_normal(EMB_DIM)
            u /= np.linalg.norm(u)
            sd_u = math.sqrt(float(u @ p.stats["emb_cov"] @ u))
            ch.emb_shift = u * shift * sd_u
        elif fam == "judge":
            ch.judge_shift = -shift * p.stats["score_sd"]
    return ch


def _sessions(n: int, run_mean: float, rng: np.random.Generator) -> np.ndarray:
    """Session index of each of ``n`` calls: runs of geometric length with mean ``run_mean``."""
    if run_mean <= 1.0:
        return np.arange(n)
    starts = rng.random(n) < 1.0 / run_mean
    starts[0] = True
    return np.cumsum(starts) - 1


def _draw(p: Profile, ch: Change, n: int, rng: np.random.Generator, *, start: int,
          iid: bool = False) -> tuple[dict, np.ndarray]:
    sess = _sessions(n, 1.0 if iid else p.run_mean, rng)
    n_sess = int(sess[-1]) + 1
    topic_s = rng.choice(p.n_topics, size=n_sess, p=p.weights)
    u_len = rng.normal(0.0, p.user_len_sd, n_sess)[sess]
    u_judge = rng.normal(0.0, p.user_judge_sd, n_sess)[sess]
    u_ref = rng.normal(0.0, p.user_ref_sd, n_sess)[sess]
    style = rng.normal(0.0, p.style_sd, (n_sess, EMB_DIM))[sess]
    topic = topic_s[sess]
    # refusal: per-topic probability × change factor, with a per-session odds effect (mean-corrected)
    p_ref = np.clip(p.refusal_p[topic] * ch.refusal_factor, 1e-6, 0.9)
    p_ref = _expit(_logit(p_ref) + u_ref - 0.5 * p.user_ref_sd ** 2 * (1 - 2 * p_ref))
    refused = rng.random(n) < p_ref
    log_len = p.len_mu[topic] + u_len + rng.normal(0.0, p.len_sd, n) + ch.len_shift
    log_len = np.where(refused, rng.normal(4.2, 0.25, n), log_len)
    chars = np.maximum(1, np.exp(log_len)).astype(np.int64)
    # tools: per topic none / one tool; the change moves a share of the mass to one tool
    probs = np.hstack([p.p_none[:, None], (1.0 - p.p_none)[:, None] * p.tool_pref])  # topics × (1 + T)
    if ch.tool_move:
        dest = np.zeros(probs.shape[1])
        dest[1 + ch.tool_dest] = 1.0
        probs = (1.0 - ch.tool_move) * probs + ch.tool_move * dest
    cum = np.cumsum(probs, axis=1)[topic]
    cat = (rng.random(n)[:, None] > cum).sum(axis=1)
    cat = np.minimum(cat, probs.shape[1] - 1)
    cat = np.where(refused, 0, cat)
    fmt_fail = rng.random(n) < np.clip(p.fmt_p[topic] * ch.fmt_factor, 0.0, 0.9)
    fmt_fail |= refused & (rng.random(n) < 0.3)
    error = rng.random(n) < p.error_p
    q = p.judge_mu[topic] + u_judge + rng.normal(0.0, p.judge_sd, n) + ch.judge_shift
    q = np.where(refused, rng.normal(2.5, 1.0, n), q)
    score = np.clip(np.rint(q), 1, 10)
    emb = p.centroids[topic] + style + rng.standard_normal((n, EMB_DIM))
    if ch.emb_shift is not None:
        emb = emb + ch.emb_shift
    t = np.arange(start, start + n)
    load = 1.0 + p.latency_cycle * np.sin(2 * math.pi * t / p.latency_period + p.latency_phase)
    latency = 0.4 * load * np.exp(0.6 * (log_len - 5.5) + rng.normal(0.0, 0.25, n))
    return {"chars": chars, "refused": refused, "cat": cat, "fmt_fail": fmt_fail, "error": error,
            "score": score, "latency": latency, "topic": topic}, emb


def records(p: Profile, ch: Change, n: int, rng: np.random.Generator, *, start: int = 0,
            embeddings: bool = True) -> tuple[list[CallRecord], dict, np.ndarray]:
    """``n`` calls of profile ``p`` under change ``ch``: CallRecords, the raw columns and the embeddings."""
    cols, emb = _draw(p, ch, n, rng, start=start)
    tools = ((), *((t,) for t in p.tools))
    chars, refused, cat, fmt_fail = cols["chars"].tolist(), cols["refused"].tolist(), cols["cat"].tolist(), \
        cols["fmt_fail"].tolist()
    error, score, latency = cols["error"].tolist(), cols["score"].tolist(), cols["latency"].tolist()
    out = []
    for i in range(n):
        c = chars[i]
        out.append(CallRecord(output_chars=c, tokens=c // 4, refused=refused[i], tools=tools[cat[i]],
                              format_ok=not fmt_fail[i], error=error[i], score=score[i],
                              embedding=emb[i] if embeddings else None, latency_s=latency[i], input_tokens=300))
    return out, cols, emb


@dataclass
class Stream:
    """A benchmark stream: reference calls, then monitored calls (the change, if any, at call 0)."""

    seed: int
    profile: Profile
    change: Change
    ref: list[CallRecord]
    post: list[CallRecord]
    ref_cols: dict
    post_cols: dict
    ref_emb: np.ndarray
    post_emb: np.ndarray


def stream(seed: int, kind: str | None, level: str | None, *, n_ref: int = 1000, n_post: int = 3000,
           run_mean: float | None = None, sessions: bool = False, latency_cycle: float = 0.0) -> Stream:
    """One stream from ``seed``: a random profile (with ``sessions``, a random run mean of 3–20), a random
    change of ``kind``/``level`` and its calls. The same seed gives the same profile and change whatever
    ``sessions`` is (only the call order dependence differs)."""
    rng = np.random.default_rng(seed)
    mean = run_mean
    draw = rng.uniform(3.0, 20.0)
    if mean is None and sessions:
        mean = draw
    prof = make_profile(seed, run_mean=mean, latency_cycle=latency_cycle)
    ch = make_change(prof, kind, level, rng)
    ref, rc, re = records(prof, Change(), n_ref, rng, start=0)
    post, pc, pe = records(prof, ch, n_post, rng, start=n_ref)
    return Stream(seed, prof, ch, ref, post, rc, pc, re, pe)
