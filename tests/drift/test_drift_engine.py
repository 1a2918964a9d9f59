"""The drift engine inside a real runtime: anchoring at changes, exports, operator actions, options."""

from __future__ import annotations

import json
import math
import random
import time

import pytest

import driftwatch
import driftwatch.drift as drift
from driftwatch.cli import main as cli_main
from driftwatch.testing import capture


def make_agent(name: str, state: dict, seed: int = 0):
    """A watched plain function whose answer length depends on its prompt (state["prompt"])."""
    rng = random.Random(seed)

    @driftwatch.watch(agent=name)
    def answer(question: str) -> str:
        n = int(math.exp(rng.gauss(5.0, 0.4)))
        if state["prompt"] == "be thorough":
            n *= 2
        return state.get("prefix", "") + "x" * n

    return answer


def test_doubling_answer_length_raises_the_output_chars_alarm(cap):
    """A change that doubles answer length: gauge, ledger alarm anchored at it, linked span event, audit."""
    state = {"prompt": "be brief"}
    answer = make_agent("writer", state)
    driftwatch.track("writer", "system_prompt", state["prompt"], kind="system_prompt")
    for _ in range(1200):
        answer("q")
    state["prompt"] = "be thorough"
    change = driftwatch.track("writer", "system_prompt", state["prompt"], kind="system_prompt")
    assert change is not None
    for _ in range(200):
        answer("q")

    assert cap.value("driftwatch_drift_alarm", agent="writer", signal="output_chars") == 1.0
    assert cap.value("driftwatch_drift_score", agent="writer", signal="output_chars") >= 1.0
    assert cap.value("driftwatch_reference_calls", agent="writer") == 1000.0
    alarms = cap.ledger.alarms(agent="writer")
    assert [a.signal for a in alarms] == ["output_chars"]
    stored = cap.changes(agent="writer")[-1]
    assert alarms[0].anchor_change_id == change.id == stored.id
    assert 0 < alarms[0].calls_since_anchor <= 50
    [span] = cap.spans("driftwatch.drift")
    assert [e.name for e in span.events] == ["driftwatch.drift"]
    assert span.events[0].attributes["driftwatch.drift.signal"] == "output_chars"
    assert format(span.links[0].context.span_id, "016x") == stored.span_id
    assert format(span.links[0].context.trace_id, "032x") == stored.trace_id
    events = [e for e in cap.audit if e["event"] == "driftwatch.drift_alarm"]
    assert [(e["signal"], e["anchor_change_id"]) for e in events] == [("output_chars", change.id)]


def test_alarm_attributes_say_what_moved_and_by_how_much(cap):
    """The stored alarm carries each signal's movement at the crossing: answers twice as long read as about
    +1.7 sd of log length (σ = 0.4), far beyond two standard errors; the other signals did not move."""
    state = {"prompt": "be brief"}
    answer = make_agent("sizer", state, seed=3)
    driftwatch.track("sizer", "system_prompt", state["prompt"], kind="system_prompt")
    for _ in range(1200):
        answer("q")
    state["prompt"] = "be thorough"
    driftwatch.track("sizer", "system_prompt", state["prompt"], kind="system_prompt")
    for _ in range(300):
        answer("q")
    [alarm] = cap.ledger.alarms(agent="sizer")
    effects = alarm.attributes["effects"]
    assert alarm.signal == "output_chars" and effects["output_chars"]["t"] > 2
    assert 1.2 < effects["output_chars"]["shift_sd"] <= 4.0  # clipped at ±4 sd per call
    assert all(abs(e["t"]) < 4 for s, e in effects.items() if s != "output_chars")
    assert drift.status("sizer")["effects"]["output_chars"]["calls"] > 0


def test_twenty_thousand_calls_without_a_change_raise_no_alarm(cap):
    """No change, no armed detector: 20k calls raise nothing, and the reference is ready (1000 calls)."""
    answer = make_agent("steady", {"prompt": "be brief"}, seed=1)
    driftwatch.track("steady", "system_prompt", "be brief", kind="system_prompt")
    for _ in range(20_000):
        answer("q")
    assert cap.ledger.alarms() == []
    assert cap.spans("driftwatch.drift") == []
    assert cap.value("driftwatch_reference_calls", agent="steady") == 1000.0
    st = drift.status("steady")
    assert st["warming"] is True and st["alarms"] == {}


def test_reference_calls_gauge_counts_up_while_warming():
    """driftwatch_reference_calls shows the calls collected toward the reference, up to its size."""
    with capture(drift_reference_calls=200) as cap:
        answer = make_agent("warm", {"prompt": "p"})
        seen = []
        for _ in range(3):
            for _ in range(90):
                answer("q")
            time.sleep(0.55)  # gauges are refreshed at most every 0.5 s
            answer("q")
            seen.append(cap.value("driftwatch_reference_calls", agent="warm"))
        assert seen == [91.0, 182.0, 200.0]


def test_a_burst_of_changes_keeps_the_reference_before_the_first():
    """Changes with no calls between them share one reference; the alarm names the later ones."""
    with capture(drift_reference_calls=300) as cap:
        state = {"prompt": "be brief"}
        answer = make_agent("burst", state, seed=2)
        driftwatch.track("burst", "system_prompt", "be brief", kind="system_prompt")
        driftwatch.track("burst", "demos", [], kind="demos")
        for _ in range(400):
            answer("q")
        state["prompt"] = "be thorough"
        first = driftwatch.track("burst", "system_prompt", "be thorough", kind="system_prompt")
        second = driftwatch.track("burst", "demos", ["an example"], kind="demos")
        for _ in range(100):
            answer("q")
        [alarm] = cap.ledger.alarms()
        assert alarm.anchor_change_id == first.id
        assert alarm.attributes["later_changes"] == [second.id]
        assert alarm.attributes["reference"] == "before_change"
        assert alarm.attributes["reference_calls"] == 300


def test_a_change_before_enough_calls_settles_on_the_calls_after_it():
    """With too few calls before the first change, the reference is the first N calls after it."""
    with capture(drift_reference_calls=200) as cap:
        state = {"prompt": "be brief"}
        answer = make_agent("early", state, seed=3)
        driftwatch.track("early", "system_prompt", "v1", kind="system_prompt")
        for _ in range(10):
            answer("q")
        change = driftwatch.track("early", "system_prompt", "v2", kind="system_prompt")
        assert drift.status("early")["reference"] == "settling"
        for _ in range(200):
            answer("q")
        st = drift.status("early")
        assert st["armed"] and st["reference"] == "after_change" and st["reference_calls"] == 200
        assert st["anchor_change_id"] == change.id
        state["prompt"] = "be thorough"  # behaviour moves later, without a recorded change
        for _ in range(100):
            answer("q")
        assert [a.signal for a in cap.ledger.alarms()] == ["output_chars"]


def _alarmed_runtime(cap, agent: str, state: dict):
    answer = make_agent(agent, state, seed=4)
    driftwatch.track(agent, "system_prompt", "be brief", kind="system_prompt")
    for _ in range(400):
        answer("q")
    state["prompt"] = "be thorough"
    driftwatch.track(agent, "system_prompt", "be thorough", kind="system_prompt")
    for _ in range(400):
        answer("q")
    assert cap.value("driftwatch_drift_alarm", agent=agent, signal="output_chars") == 1.0
    return answer


def test_accept_unlatches_and_makes_the_new_behaviour_the_reference():
    """drift.accept(): alarm gauge back to 0, the changed behaviour is the reference, no new alarm."""
    with capture(drift_reference_calls=300) as cap:
        answer = _alarmed_runtime(cap, "acc", {"prompt": "be brief"})
        assert drift.accept("acc") == ["acc"]
        assert cap.value("driftwatch_drift_alarm", agent="acc", signal="output_chars") == 0.0
        st = drift.status("acc")
        assert st["reference"] == "accepted" and st["reference_calls"] == 300 and st["alarms"] == {}
        for _ in range(2000):
            answer("q")
        assert len(cap.ledger.alarms()) == 1


def test_reset_unlatches_but_keeps_the_reference():
    """drift.reset(): alarm gauge 0, same reference, so the still-changed behaviour alarms again."""
    with capture(drift_reference_calls=300) as cap:
        answer = _alarmed_runtime(cap, "rst", {"prompt": "be brief"})
        assert drift.reset("rst") == ["rst"]
        assert cap.value("driftwatch_drift_alarm", agent="rst", signal="output_chars") == 0.0
        assert drift.status("rst")["reference"] == "before_change"
        for _ in range(100):
            answer("q")
        assert [a.signal for a in cap.ledger.alarms()] == ["output_chars", "output_chars"]
        assert cap.value("driftwatch_drift_alarm", agent="rst", signal="output_chars") == 1.0


def test_cli_accept_reaches_the_running_process(tmp_path, capsys):
    """`driftwatch accept AGENT` queues a command in the ledger; the process applies it at its next poll."""
    path = str(tmp_path / "ledger.db")
    with capture(ledger=path, drift_reference_calls=300, drift_poll_s=0.05) as cap:
        answer = _alarmed_runtime(cap, "cli-bot", {"prompt": "be brief"})
        assert cli_main(["accept", "cli-bot", "--ledger", path]) == 0
        assert "accept queued for agent cli-bot" in capsys.readouterr().out
        deadline = time.monotonic() + 10
        while drift.status("cli-bot")["alarms"] and time.monotonic() < deadline:
            time.sleep(0.06)
            answer("q")
        assert drift.status("cli-bot")["reference"] == "accepted"
        assert cap.value("driftwatch_drift_alarm", agent="cli-bot", signal="output_chars") == 0.0
    assert cli_main(["history", "--ledger", path, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["signal"] for r in rows if r["type"] == "alarm"] == ["output_chars"]


def test_format_schema_and_refusal_phrases_feed_signals_and_counters(cap):
    """configure_agent(format=schema): format failures and refusals are counted and alarm when they rise."""
    drift.configure_agent("json-bot", format={"type": "object", "required": ["answer"]})
    rng = random.Random(5)
    mode = {"broken": 0.0}

    @driftwatch.watch(agent="json-bot")
    def reply(q: str) -> str:
        if rng.random() < 0.02:
            return "I'm sorry, but I can't help with that."
        if rng.random() < mode["broken"]:
            return '{"text": "no answer key"}'
        return json.dumps({"answer": "y" * rng.randint(20, 60)})

    driftwatch.track("json-bot", "system_prompt", "v1", kind="system_prompt")
    for _ in range(1000):
        reply("q")
    mode["broken"] = 0.3
    driftwatch.track("json-bot", "system_prompt", "v2", kind="system_prompt")
    for _ in range(300):
        reply("q")
    assert cap.value("driftwatch_refusals_total", agent="json-bot") > 0
    assert cap.value("driftwatch_format_failures_total", agent="json-bot") > 50
    assert "format_failure" in {a.signal for a in cap.ledger.alarms(agent="json-bot")}


def test_failing_user_callables_are_counted_and_never_reach_the_caller(cap):
    """An evaluator that raises: the call returns normally, the error is counted under stage signals."""
    def evaluator(text: str) -> float:
        raise RuntimeError("judge down")

    drift.configure_agent("judged", evaluator=evaluator)

    @driftwatch.watch(agent="judged")
    def f(q: str) -> str:
        return "fine answer"

    assert f("q") == "fine answer"
    assert cap.runtime.error_counts == {"signals": 1}
    assert cap.value("driftwatch_internal_errors_total", stage="signals") == 1.0


def test_record_score_feeds_the_score_signal(cap):
    """Scores from record_score form part of the reference; a drop after a change raises a score alarm."""
    rng = random.Random(6)

    @driftwatch.watch(agent="scored")
    def f(q: str) -> str:
        return "x" * rng.randint(90, 110)

    driftwatch.track("scored", "system_prompt", "v1", kind="system_prompt")
    for _ in range(1000):
        f("q")
        driftwatch.record_score("scored", min(1.0, max(0.0, rng.gauss(0.8, 0.1))))
    driftwatch.track("scored", "system_prompt", "v2", kind="system_prompt")
    for _ in range(200):
        f("q")
        driftwatch.record_score("scored", min(1.0, max(0.0, rng.gauss(0.5, 0.1))))
    assert [a.signal for a in cap.ledger.alarms()] == ["score"]
    assert cap.value("driftwatch_drift_alarm", agent="scored", signal="score") == 1.0


def test_drift_off_means_no_engine():
    """drift=False: no engine, no drift gauges."""
    with capture(drift=False) as cap:
        assert cap.runtime.drift is None
        make_agent("off", {"prompt": "p"})("q")
        assert "driftwatch_reference_calls{" not in cap.metrics_text()
        assert drift.status("off") is None


def test_configure_agent_rejects_bad_options():
    """configure_agent names the bad option in a one-line error."""
    with pytest.raises(ValueError, match="format=42"):
        drift.configure_agent("a", format=42)
    with pytest.raises(ValueError, match="evaluator"):
        drift.configure_agent("a", evaluator="not callable")
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        drift.configure_agent("a", format={"type": "no-such-type"})
