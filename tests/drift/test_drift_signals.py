"""Signal helpers and calibration: refusal phrases, format checks, the Cramér root, thresholds."""

from __future__ import annotations

import json
import math
import random

import pytest

from driftwatch.drift.calibrate import bernoulli_thresholds, cramer, solve_threshold
from driftwatch.signals import is_refusal, make_format_check


@pytest.mark.parametrize(("text", "expected"), [
    ("I'm sorry, but I can't help with that request.", True),
    ("I’m unable to provide medical advice.", True),  # typographic apostrophe
    ("As an AI language model, I cannot browse.", True),
    ("Sure! Here is the summary you asked for.", False),
    ("The function cannot help but return None when ...", False),
    ("x" * 300 + " I cannot help with that", False),  # only the opening counts
])
def test_refusal_phrases(text, expected):
    """The built-in detector finds refusal phrases in the opening of an answer, and only there."""
    assert is_refusal(text) is expected


def test_format_checks():
    """'json', a JSON schema and a parse callable each accept good output and reject bad output."""
    as_json = make_format_check("json")
    assert as_json('{"a": 1}') and not as_json("{a: 1}")
    schema = make_format_check({"type": "object", "required": ["answer"]})
    assert schema(json.dumps({"answer": "x"})) and not schema(json.dumps({"other": 1})) and not schema("nope")
    parse = make_format_check(lambda text: int(text))
    assert parse("12") and not parse("twelve")
    assert make_format_check(lambda text: text.startswith("A:"))("A: yes")
    assert not make_format_check(lambda text: text.startswith("A:"))("yes")


def test_cramer_root_matches_the_likelihood_ratio_identity():
    """For log-likelihood-ratio increments under the null, the Cramér root is 1."""
    p0, p1 = 0.03, 0.07
    theta, mu, _ = cramer([math.log((1 - p1) / (1 - p0)), math.log(p1 / p0)], [1 - p0, p0])
    assert theta == pytest.approx(1.0, rel=1e-6)
    kl = p0 * math.log(p0 / p1) + (1 - p0) * math.log((1 - p0) / (1 - p1))
    assert mu == pytest.approx(kl, rel=1e-9)
    rng = random.Random(0)
    xs = [0.5 * rng.gauss(0, 1) - 0.125 for _ in range(20000)]
    assert cramer(xs, [1 / len(xs)] * len(xs))[0] == pytest.approx(1.0, abs=0.05)
    assert cramer([-1.0, -0.5], [0.5, 0.5])[0] == math.inf  # never positive: never alarms


def test_threshold_follows_the_renewal_formula():
    """With θ = 1 the threshold solves (e^h − 1 − h)/μ = 1/α."""
    alpha, mu = 1e-4, 0.02
    h = solve_threshold([(1.0, mu, 0.1)], alpha)
    assert (math.expm1(h) - h) / mu == pytest.approx(1 / alpha, rel=1e-3)


def test_rare_events_need_higher_thresholds_than_common_ones():
    """Estimation error weighs more on a rate seen 10 times than on one seen 300 times (same budget)."""
    rng = random.Random(0)
    rare = bernoulli_thresholds(10, 1000, 1e-5, 2.0, 0.005, boot=0, rng=rng)
    common = bernoulli_thresholds(300, 1000, 1e-5, 2.0, 0.005, boot=0, rng=rng)
    assert rare > common > math.log(1e5) * 0.5
