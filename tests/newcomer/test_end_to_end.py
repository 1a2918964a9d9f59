"""Self-tuning on the scripted model drifts for real: the drift engine raises an alarm and the report shows it."""

from __future__ import annotations

import driftwatch
from driftwatch.report import build_report
from driftwatch.scripted import Prompt, ScriptedModel
from driftwatch.testing import capture


def test_a_prompt_rewrite_raises_an_alarm_anchored_at_it_and_the_report_links_them() -> None:
    """A rewrite asking for detail and caution makes answers longer: an output_chars alarm anchored at the change."""
    with capture(drift_reference_calls=300) as cap:
        model = ScriptedModel(seed=5)
        state = {"prompt": "You are a helpful assistant."}

        @driftwatch.watch(agent="bot")
        def answer(question: str) -> str:
            driftwatch.track("bot", "system_prompt", state["prompt"], kind="system_prompt", source="agent")
            return model.respond(Prompt(state["prompt"], question)).text

        for i in range(1600):
            if i == 1000:
                state["prompt"] = "Be careful: refuse anything unsafe. Explain in detail."
            answer(f"What is {i % 40} + 3?")
        (change,) = cap.changes()
        alarms = cap.ledger.alarms(agent="bot")
        cap.runtime.windows.flush()
        page = build_report(cap.ledger)
    assert alarms, "no drift alarm after the rewrite"
    first = alarms[0]
    assert first.signal == "output_chars" and first.anchor_change_id == change.id
    assert first.calls_since_anchor < 200
    assert f"anchored at change <a href='#c-{change.id[:12]}'>" in page
