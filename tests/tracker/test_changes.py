"""A watched agent that rewrites its prompt: ledger, metrics, spans and audit log agree."""

from __future__ import annotations

import pytest

import driftwatch
from driftwatch.revision import combine, fingerprint, magnitude
from driftwatch.testing import Captured, capture

PROMPTS = [
    "You are a helpful assistant.",
    "You are a helpful assistant. Be brief.",
    "You are a helpful assistant. Be brief. Cite your sources.",
    "You are a terse assistant.",
]


def _run_self_editing_agent(calls_per_prompt: int = 3) -> list[str]:
    state = {"prompt": PROMPTS[0]}

    @driftwatch.watch(agent="support-bot")
    def answer(question: str) -> str:
        driftwatch.track("support-bot", "system_prompt", state["prompt"], kind="system_prompt", source="agent")
        return f"answer to {question}"

    results = []
    for prompt in PROMPTS:
        state["prompt"] = prompt
        for i in range(calls_per_prompt):
            results.append(answer(f"q{i}"))
    return results


def test_three_rewrites_give_one_baseline_and_three_changes(cap: Captured) -> None:
    """Three prompt rewrites are stored as one baseline and three changes with kinds, magnitudes and parents."""
    results = _run_self_editing_agent()
    assert results[0] == "answer to q0"
    entries = cap.ledger.changes(baselines=True)
    assert [e.is_baseline for e in entries] == [True, False, False, False]
    ids = [fingerprint(p) for p in PROMPTS]
    assert [e.after_id for e in entries] == ids
    assert [e.before_id for e in entries] == [None, *ids[:-1]]
    changes = cap.changes()
    assert [c.kind for c in changes] == ["system_prompt"] * 3
    assert [c.source for c in changes] == ["agent"] * 3
    for before, after, c in zip(PROMPTS[:-1], PROMPTS[1:], changes, strict=True):
        assert c.magnitude == pytest.approx(magnitude(before, after))
        assert 0.0 < c.magnitude < 1.0
        assert c.paths == ("$",)
    # revisions are stored with the parent they were first derived from
    assert cap.ledger.revision(ids[0]).parent is None
    assert cap.ledger.revision(ids[2]).parent == ids[1]
    assert cap.ledger.revision(ids[3]).state == PROMPTS[3]


def test_changes_reach_the_counter_and_revision_gauge(cap: Captured) -> None:
    """driftwatch_changes_total counts the three changes; revision_info points at the current revision only."""
    _run_self_editing_agent()
    labels = {"agent": "support-bot", "component": "system_prompt", "kind": "system_prompt", "source": "agent"}
    assert cap.value("driftwatch_changes_total", **labels) == 3.0
    assert cap.value("driftwatch_change_magnitude_count", agent="support-bot", kind="system_prompt") == 3.0
    current = fingerprint(PROMPTS[-1])[:12]
    assert cap.value("driftwatch_revision_info", agent="support-bot", component="system_prompt",
                     revision=current) == 1.0
    text = cap.metrics_text()
    assert text.count('driftwatch_revision_info{agent="support-bot"') == 1
    assert cap.value("driftwatch_calls_total", agent="support-bot", status="ok") == 12.0


def test_each_change_is_a_span_inside_the_agent_call(cap: Captured) -> None:
    """Each change gives one driftwatch.change span, a child of the invoke_agent span, with the exact attributes."""
    _run_self_editing_agent()
    spans = cap.spans("driftwatch.change")
    assert len(spans) == 3
    calls = {s.context.span_id: s for s in cap.spans("invoke_agent support-bot")}
    changes = cap.changes()
    for span, change in zip(spans, changes, strict=True):
        assert span.parent is not None and span.parent.span_id in calls
        attrs = dict(span.attributes)
        assert attrs.pop("driftwatch.agent") == "support-bot"
        assert attrs.pop("driftwatch.component") == "system_prompt"
        assert attrs.pop("driftwatch.change.id") == change.id
        assert attrs.pop("driftwatch.change.kind") == "system_prompt"
        assert attrs.pop("driftwatch.change.source") == "agent"
        assert attrs.pop("driftwatch.revision.before") == change.before_id
        assert attrs.pop("driftwatch.revision.after") == change.after_id
        assert attrs.pop("driftwatch.change.magnitude") == pytest.approx(change.magnitude)
        assert attrs.pop("driftwatch.change.paths") == ("$",)
        assert attrs == {}
        assert change.trace_id == format(span.context.trace_id, "032x")
        assert change.span_id == format(span.context.span_id, "016x")


def test_agent_call_span_follows_genai_conventions(cap: Captured) -> None:
    """invoke_agent spans carry gen_ai.operation.name, gen_ai.agent.name and the agent's combined revision."""
    _run_self_editing_agent(calls_per_prompt=1)
    spans = cap.spans("invoke_agent support-bot")
    assert len(spans) == 4
    first = dict(spans[0].attributes)
    assert first["gen_ai.operation.name"] == "invoke_agent"
    assert first["gen_ai.agent.name"] == "support-bot"
    # each call is tagged with the revision that served it: the prompt it tracked (the first call's baseline too)
    versions = [dict(s.attributes)["gen_ai.agent.version"] for s in spans]
    assert versions == [combine({"system_prompt": fingerprint(p)}) for p in PROMPTS]


def test_unchanged_calls_record_nothing(cap: Captured) -> None:
    """A thousand calls with the same prompt give the baseline and no change."""
    prompt = "Stay the same."

    @driftwatch.watch(agent="steady")
    def run() -> str:
        driftwatch.track("steady", "system_prompt", prompt)
        return "ok"

    for _ in range(1000):
        run()
    assert cap.changes() == []
    assert len(cap.ledger.changes(baselines=True)) == 1
    assert cap.spans("driftwatch.change") == []


def test_dict_state_change_names_paths_and_kind(cap: Captured) -> None:
    """A dict state's change lists the changed paths and infers its kind from them."""
    state = {"system_prompt": "Be kind.", "tools": ["search", "calc"], "temperature": 0.2}
    assert driftwatch.track("bot", "config", state) is None  # baseline
    state = {**state, "tools": ["search"]}
    change = driftwatch.track("bot", "config", state)
    assert change is not None
    assert change.paths == ("$.tools[1]",)
    assert change.kind == "tools"
    state["temperature"] = 0.9  # in-place edit of the caller's dict is seen on the next report
    change = driftwatch.track("bot", "config", state, kind="model_params")
    assert change is not None and change.paths == ("$.temperature",) and change.kind == "model_params"
    assert cap.ledger.revision(change.before_id).state["temperature"] == 0.2


def test_restart_continues_lineage_from_the_ledger(tmp_path) -> None:
    """A new process sees the ledger head: same state is no baseline; a different state is a change from it."""
    ledger = str(tmp_path / "dw.db")
    with capture(ledger=ledger) as cap:
        driftwatch.track("bot", "prompt", "v1")
        driftwatch.track("bot", "prompt", "v2")
    with capture(ledger=ledger) as cap:
        assert driftwatch.track("bot", "prompt", "v2") is None
        change = driftwatch.track("bot", "prompt", "v3")
        assert change is not None and change.before_id == fingerprint("v2")
        assert len(cap.ledger.changes(baselines=True)) == 3  # baseline v1, v1->v2, v2->v3
    with capture(ledger=ledger) as cap:
        change = driftwatch.track("bot", "prompt", "v4 deployed while nobody watched")
        assert change is not None and change.before_id == fingerprint("v3")
        assert change.magnitude > 0


def test_audit_log_has_no_prompt_text_unless_capture_is_on(cap: Captured) -> None:
    """Audit events carry ids and magnitudes; no diff (prompt text) while content capture is off."""
    driftwatch.track("bot", "prompt", "secret prompt one")
    driftwatch.track("bot", "prompt", "secret prompt two")
    events = [e["event"] for e in cap.audit]
    assert events == ["driftwatch.baseline", "driftwatch.change"]
    assert "secret" not in repr(cap.audit)
    assert "diff" not in cap.audit[1]


def test_content_capture_sends_redacted_diffs() -> None:
    """With content capture on, the audit log and the change span carry the diff, after redaction."""
    with capture(capture_content=True) as cap:
        driftwatch.track("bot", "prompt", "Mail ops@example.com for help.")
        driftwatch.track("bot", "prompt", "Mail ops@example.com or use key sk-abcdef1234567890XYZ.")
        diff = cap.audit[1]["diff"]
        assert "+Mail [email] or use key [secret]." in diff
        assert "example.com" not in diff and "sk-abc" not in diff
        (span,) = cap.spans("driftwatch.change")
        (event,) = span.events
        assert event.name == "driftwatch.change.diff"
        assert event.attributes["driftwatch.change.diff"] == diff
    with capture(capture_content=True, redact=lambda text: text.upper()) as cap:
        driftwatch.track("bot", "p", "a")
        driftwatch.track("bot", "p", "b")
        assert "+B" in cap.audit[1]["diff"]


def test_track_rejects_bad_input_with_one_line_errors(cap: Captured) -> None:
    """Bad arguments to track/record_score raise one-line errors naming the argument; nothing is recorded (a state's
    content never raises: tests/faults/test_track_states.py)."""
    with pytest.raises(ValueError, match=r"^kind='prompt': expected one of instructions, demos"):
        driftwatch.track("bot", "p", "x", kind="prompt")
    with pytest.raises(ValueError, match=r"^agent='': expected a non-empty string$"):
        driftwatch.track("", "p", "x")
    with pytest.raises(ValueError, match=r"^source='two words'"):
        driftwatch.track("bot", "p", "x", source="two words")
    with pytest.raises(ValueError, match=r"^record_score\(value=1\.5\): expected a number from 0 to 1$"):
        driftwatch.record_score("bot", 1.5)
    assert cap.ledger.changes(baselines=True) == []


def test_record_score_feeds_the_histogram(cap: Captured) -> None:
    """record_score observes driftwatch_score{agent, metric}."""
    driftwatch.record_score("bot", 0.75, metric="judge")
    driftwatch.record_score("bot", 0.25, metric="judge")
    assert cap.value("driftwatch_score_count", agent="bot", metric="judge") == 2.0
    assert cap.value("driftwatch_score_sum", agent="bot", metric="judge") == 1.0


def test_magnitude_counts_the_common_head_and_tail_of_a_long_repetitive_prompt() -> None:
    """An edit of a long prompt that repeats itself: the shared head and tail count as matched, the edit alone
    moves the magnitude (exactly 1 - 2·matched/total), and an unrelated text is far away."""
    prompt = "You are a careful support assistant. Answer briefly. " * 80
    appended = magnitude(prompt, prompt + " Be brief.")
    assert appended == round(1 - 2 * len(prompt) / (2 * len(prompt) + len(" Be brief.")), 6)
    middle = prompt[:2000] + "Never guess. " + prompt[2000:]
    assert magnitude(prompt, middle) == round(1 - 2 * len(prompt) / (2 * len(prompt) + len("Never guess. ")), 6)
    assert magnitude("hello world", "hello there world") == round(1 - 2 * 11 / 28, 6)
    assert magnitude(prompt, "Réponds en français.") > 0.9
