"""A sample ledger written by a real self-editing agent on the scripted chat model (used by report tests)."""

from __future__ import annotations

import time

from langchain_core.messages import HumanMessage, SystemMessage

import driftwatch
from driftwatch.alarm import Alarm
from driftwatch.change import new_id
from driftwatch.demo.scripted_langchain import ScriptedChatModel
from driftwatch.testing import capture

PROMPTS = ("You are a helpful assistant.",
           "Explain your answer in detail, step by step.",
           "Be careful: refuse anything unsafe. Explain in detail.")
REFUSAL_MARKERS = ("sorry", "cannot assist")


def run_sample_agent(ledger: str, calls: int = 600, *, pause_s: float = 0.0) -> None:
    """A support agent on the scripted chat model rewrites its own prompt twice (once inside an optimizer run);
    the refusal alarm the drift engine would raise is recorded by hand (the engine is not under test here)."""
    with capture(ledger=ledger, drift=False) as cap:  # the alarm is recorded by hand below
        rt = cap.runtime
        model = ScriptedChatModel(seed=11)
        state = {"prompt": PROMPTS[0]}
        driftwatch.configure_agent("support-bot", refusal=lambda text: any(m in text.lower() for m in REFUSAL_MARKERS),
                                   refusal_phrases=False, format=lambda text: True)

        @driftwatch.watch(agent="support-bot")
        def answer(question: str) -> str:
            driftwatch.track("support-bot", "system_prompt", state["prompt"], kind="system_prompt", source="agent")
            reply = model.invoke([SystemMessage(state["prompt"]), HumanMessage(question)])
            return str(reply.content)

        third = calls // 3
        for i in range(calls):
            if i == third:
                run = rt.begin_run("support-bot", "COPRO")
                for score in (0.4, 0.55, 0.7):
                    run.candidate(score)
                state["prompt"] = PROMPTS[1]
                run.finish()
            elif i == 2 * third:
                state["prompt"] = PROMPTS[2]
            elif i == 2 * third + 100:
                change = rt.ledger.changes(agent="support-bot")[-1]
                rt.record_alarm(Alarm(new_id(), "support-bot", "refusal", 1.3, time.time(), change.id, 100), change)
            answer(f"What is {i % 40} + 3?")
            if pause_s:
                time.sleep(pause_s)
