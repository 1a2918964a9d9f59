"""The fault matrix issue 11 did not list: the user's own hooks misbehaving (redaction, evaluator, embed).

Each test asserts the host's result is unchanged, what was recorded, and what was counted.
"""

from __future__ import annotations

import math

import pytest

import driftwatch
from driftwatch.testing import capture


@pytest.mark.parametrize("redact", [
    pytest.param(lambda text: 1 / 0, id="raises"),
    pytest.param(lambda text: None, id="returns-None"),
    pytest.param(lambda text: text.encode(), id="returns-bytes"),
])
def test_a_broken_redaction_hook_never_lets_text_out_unredacted(redact) -> None:
    """Content capture on, a redaction hook that raises or returns a non-string: the change is recorded, the
    diff and exception messages that would leave the process are replaced by a placeholder, and it is counted."""
    with capture(capture_content=True, redact=redact) as cap:
        driftwatch.track("bot", "p", "secret v1")
        change = driftwatch.track("bot", "p", "secret v2")
        assert change is not None and cap.ledger.revision(change.after_id).state == "secret v2"

        @driftwatch.watch(agent="bot")
        def failing() -> None:
            raise KeyError("secret in a message")

        with pytest.raises(KeyError, match="secret in a message"):
            failing()
        diff = cap.audit[-1]["diff"]
        assert diff.startswith("[not shown: the redaction hook") and "secret" not in diff
        (call,) = cap.spans("invoke_agent bot")
        (event,) = [e for e in call.events if e.name == "exception"]
        assert "secret" not in event.attributes["exception.message"]
        assert "secret" not in event.attributes["exception.stacktrace"]
        assert cap.value("driftwatch_internal_errors_total", stage="redaction") >= 3.0


GARBAGE_SCORES = [float("nan"), float("inf"), "not a number", [0.5], 10 ** 400]
GARBAGE_EMBEDDINGS = ["a string", [float("nan")] * 8, [1.0, "x"], (i for i in range(3)), [0.1] * 100_000, {"v": 1}]


def test_an_evaluator_or_embed_returning_garbage_is_counted_and_ignored() -> None:
    """Evaluators returning NaN, inf, text, lists or huge ints, and embed functions returning strings, NaN vectors,
    mixed lists, generators, 100,000-dimension vectors or dicts: each call returns its result, the value is
    treated as unknown and counted, and the drift statistics stay finite."""
    pytest.importorskip("numpy")
    with capture(drift_reference_calls=50) as cap:
        calls = {"n": 0}

        def evaluator(text: str):
            calls["n"] += 1
            return GARBAGE_SCORES[calls["n"] % len(GARBAGE_SCORES)]

        def embed(text: str):
            return GARBAGE_EMBEDDINGS[calls["n"] % len(GARBAGE_EMBEDDINGS)]

        driftwatch.configure_agent("bot", evaluator=evaluator, embed=embed)
        agent = driftwatch.watch(lambda i: f"answer {i}", agent="bot")
        driftwatch.track("bot", "p", "v1")
        assert [agent(i) for i in range(300)] == [f"answer {i}" for i in range(300)]
        driftwatch.track("bot", "p", "v2")
        assert [agent(i) for i in range(300)] == [f"answer {i}" for i in range(300)]
        assert cap.value("driftwatch_internal_errors_total", stage="signals") == 1200.0  # every score and vector
        assert cap.runtime.error_counts.keys() == {"signals"}
        status = driftwatch.drift.status("bot")
        assert all(math.isfinite(v) for v in status["scores"].values())
        assert cap.value("driftwatch_calls_total", agent="bot", status="ok") == 600.0


def test_a_good_evaluator_and_embed_still_feed_drift() -> None:
    """Control: finite scores and well-formed vectors (lists and numpy arrays) are used, nothing is counted."""
    np = pytest.importorskip("numpy")
    with capture(drift_reference_calls=50) as cap:
        driftwatch.configure_agent("bot", evaluator=lambda text: 0.8,
                                   embed=lambda text: np.ones(8) if len(text) % 2 else [1.0] * 8)
        agent = driftwatch.watch(lambda i: f"answer {i}", agent="bot")
        driftwatch.track("bot", "p", "v1")
        assert [agent(i) for i in range(100)] == [f"answer {i}" for i in range(100)]
        driftwatch.track("bot", "p", "v2")  # the calls before it become the reference
        agent(0)
        assert cap.runtime.error_counts == {}
        status = driftwatch.drift.status("bot")
        assert status["armed"] and "score" in status["signals"] and "embedding" in status["signals"]
