"""driftwatch_reference_calls follows the reference as it is collected and frozen, without waiting for the
periodic export (issue 12 item 9)."""

from __future__ import annotations

import driftwatch
from driftwatch.testing import capture


def test_the_reference_gauge_counts_every_call_and_the_freeze_at_once() -> None:
    with capture(drift_reference_calls=50) as cap:
        @driftwatch.watch(agent="fresh")
        def answer() -> str:
            return "An answer of some length."

        seen = []
        for _ in range(6):
            answer()
            seen.append(cap.value("driftwatch_reference_calls", agent="fresh"))
        assert seen == [1, 2, 3, 4, 5, 6]  # no 0.5 s throttle while the reference is collected
        driftwatch.track("fresh", "system_prompt", "v1", kind="system_prompt")
        driftwatch.track("fresh", "system_prompt", "v2", kind="system_prompt")  # a change: settle, then freeze
        for _ in range(50):
            answer()
        status = driftwatch.drift.status("fresh")
        assert status["armed"] and status["reference"] == "after_change"
        assert cap.value("driftwatch_reference_calls", agent="fresh") == 50
