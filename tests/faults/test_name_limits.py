"""Issue 11 item 2: names a model or a caller controls (agents, components, tools, score metrics) cannot grow
series and memory without limit.

Past a limit a name is counted as ``other`` (``driftwatch_dropped_total{what}``, logged once); an idle agent gives
its place to a new one and its state and series go. Each test asserts the host's result, what the ledger
recorded, and what was counted. The RSS figure over 1M calls is in ``benchmarks/bench_memory.py``.
"""

from __future__ import annotations

import logging
import math
import random
import threading

import pytest
from langchain_core.messages import AIMessage
from prometheus_client.parser import text_string_to_metric_families

import driftwatch
from driftwatch.testing import Captured, capture
from tests.helpers.lg_graphs import ToolModel, replies, tools_graph


def _series(cap: Captured, metric: str, **match: str) -> list[dict[str, str]]:
    """The label sets of one metric's samples (histograms: their _count samples)."""
    out = []
    for family in cap.registry.collect():
        for sample in family.samples:
            if sample.name == metric and all(sample.labels.get(k) == v for k, v in match.items()):
                out.append(sample.labels)
    return out


def _agents_in_registry(cap: Captured) -> set[str]:
    return {s.labels["agent"] for f in cap.registry.collect() for s in f.samples if "agent" in s.labels}


def _folds_logged(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "driftwatch" and f'{what}="other"' in r.getMessage()]


def test_2000_tool_names_from_a_model_fold_past_the_tool_limit(cap: Captured, caplog) -> None:
    """A (fake) model emits 2000 distinct tool names through a real LangGraph graph: 50 tool series plus
    tool="other"; every tool call is still counted; the fold is counted and logged once."""
    caplog.set_level(logging.WARNING, logger="driftwatch")
    batches = [AIMessage(content=f"done {b}", tool_calls=[{"name": f"tool_{b}_{i}", "args": {}, "id": f"c{b}_{i}"}
                                                          for i in range(50)]) for b in range(40)]
    graph = driftwatch.watch(tools_graph(ToolModel(messages=replies(*batches))), agent="tbot")
    answers = [graph.invoke({"system_prompt": "Use tools.", "question": "go"})["answer"] for _ in range(40)]
    assert answers == [f"done {b}" for b in range(40)]

    tools = {labels["tool"] for labels in _series(cap, "driftwatch_tool_calls_total", agent="tbot")}
    assert len(tools) == 51 and "other" in tools
    total = sum(cap.value("driftwatch_tool_calls_total", agent="tbot", tool=t) for t in tools)
    assert total == 2000.0
    assert cap.value("driftwatch_tool_calls_total", agent="tbot", tool="other") == 1950.0
    assert cap.value("driftwatch_dropped_total", what="tool") == 1950.0
    assert len(_folds_logged(caplog, "tool")) == 1
    cap.runtime.windows.flush()
    assert max(len(w.tools) for w in cap.ledger.windows(agent="tbot")) <= 51


def test_a_new_agent_name_on_every_call_keeps_series_and_state_bounded(caplog) -> None:
    """5000 calls, each under a new agent name: 200 agents get series and state, the rest are counted as
    agent="other"; drift monitors, call windows, caches and trackers stay bounded; results are unchanged."""
    caplog.set_level(logging.WARNING, logger="driftwatch")
    with capture() as cap:
        rt = cap.runtime
        for i in range(5000):
            agent = driftwatch.watch(lambda q: f"answer {q}", agent=f"user-{i}")
            assert agent(i) == f"answer {i}"
            driftwatch.track(f"user-{i}", "system_prompt", f"prompt of user {i}")
        assert len(_agents_in_registry(cap)) == 201  # 200 agents and "other"
        assert cap.value("driftwatch_calls_total", agent="other", status="ok") == 4800.0
        assert cap.value("driftwatch_dropped_total", what="agent") >= 4800.0
        assert len(_folds_logged(caplog, "agent")) == 1
        assert len(rt.drift.agents()) == 200
        assert len(rt.windows._open) <= 201
        assert len(rt.metrics._agent_children) <= 201 and len(rt.metrics._next_exemplar) <= 201
        assert len(rt._trackers) == 200 and len(rt._revisions) == 200
        # the ledger is not a metric series: every agent's prompt is there under its own name
        assert len(cap.changes(baselines=True)) == 5000
        (baseline,) = cap.changes(agent="user-4999", baselines=True)
        assert cap.ledger.revision(baseline.after_id).state == "prompt of user 4999"
        assert rt.agent_version("user-4999") is None and rt.agent_version("user-0") is not None


def test_an_agent_past_the_limit_still_records_its_changes_under_its_name() -> None:
    """Changes of an agent (or component) past a limit go to the ledger, spans and audit log under their own
    names; the change counter counts them as agent/component="other"."""
    with capture(max_agents=1, max_components=1) as cap:
        driftwatch.track("first", "p", "v1")
        driftwatch.track("first", "extra", "v1")
        driftwatch.track("second", "p", "v1")
        assert driftwatch.track("first", "extra", "v2").component == "extra"
        assert driftwatch.track("second", "p", "v2").agent == "second"
        assert driftwatch.track("second", "p", "v2") is None  # unchanged: compared with the ledger head
        changes = cap.changes()
        assert [(c.agent, c.component) for c in changes] == [("first", "extra"), ("second", "p")]
        assert [s.attributes["driftwatch.agent"] for s in cap.spans("driftwatch.change")] == ["first", "second"]
        assert cap.value("driftwatch_changes_total", agent="first", component="other", kind="custom",
                         source="runtime") == 1.0
        assert cap.value("driftwatch_changes_total", agent="other", component="other", kind="custom",
                         source="runtime") == 1.0
        assert _series(cap, "driftwatch_revision_info", agent="second") == []
        assert cap.value("driftwatch_dropped_total", what="component") >= 1.0


def test_score_metric_names_fold_past_the_metric_limit(cap: Captured) -> None:
    """record_score with 100 metric names: 20 score series for the agent, the rest under metric="other"."""
    for i in range(100):
        driftwatch.record_score("bot", 0.5, metric=f"judge-{i}")
    metrics = {labels["metric"] for labels in _series(cap, "driftwatch_score_count", agent="bot")}
    assert len(metrics) == 21 and "other" in metrics
    assert cap.value("driftwatch_score_count", agent="bot", metric="other") == 80.0
    assert cap.value("driftwatch_dropped_total", what="metric") == 80.0


def test_components_past_the_component_limit_fold(cap: Captured) -> None:
    """track() over 600 components of one agent: 500 keep trackers and revision series, the rest fold."""
    for i in range(600):
        driftwatch.track("bot", f"store:item-{i}", {"v": 1})
        driftwatch.track("bot", f"store:item-{i}", {"v": 2})
    assert len(cap.runtime._trackers["bot"]) == 500
    assert len(_series(cap, "driftwatch_revision_info", agent="bot")) == 500
    assert cap.value("driftwatch_changes_total", agent="bot", component="other", kind="custom",
                     source="runtime") == 100.0
    assert len(cap.changes(agent="bot")) == 600
    assert cap.value("driftwatch_dropped_total", what="component") >= 100.0


def test_change_sources_past_the_label_limit_fold(cap: Captured) -> None:
    """track() with a new source on every change: 50 label driftwatch_changes_total, the rest count as "other";
    the ledger keeps every change with the source it was given."""
    from driftwatch.limits import MAX_LABEL_VALUES

    for i in range(120):
        driftwatch.track("bot", "prompt", f"v{i}", source=f"source-{i}")
    series = _series(cap, "driftwatch_changes_total", agent="bot")
    assert {labels["source"] for labels in series} == {f"source-{i}" for i in range(1, MAX_LABEL_VALUES + 1)} | {
        "other"}  # change 0 is the baseline (not counted)
    assert cap.value("driftwatch_changes_total", agent="bot", component="prompt", kind="custom",
                     source="other") == 119 - MAX_LABEL_VALUES
    recorded = cap.changes(agent="bot")
    assert {c.source for c in recorded} >= {f"source-{i}" for i in range(1, 120)}
    assert cap.value("driftwatch_dropped_total", what="source") == 119 - MAX_LABEL_VALUES


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_idle_agent_gives_its_place_and_its_state_and_series_go() -> None:
    """Table full, a new agent arrives: the agent idle longest (past agent_idle_s) is evicted — drift state,
    trackers, call window, caches and series — and the newcomer gets its own series."""
    with capture(max_agents=2, agent_idle_s=60) as cap:
        rt = cap.runtime
        clock = rt.names.clock = Clock()
        for name in ("old", "busy"):
            driftwatch.track(name, "p", "v1")
            assert driftwatch.watch(lambda: "ok", agent=name)() == "ok"
        assert driftwatch.watch(lambda: "ok", agent="new")() == "ok"  # nobody idle yet: folded
        assert cap.value("driftwatch_calls_total", agent="other", status="ok") == 1.0
        clock.now += 30
        driftwatch.watch(lambda: "ok", agent="busy")()
        clock.now += 40  # "old" idle for 70 s, "busy" for 40 s
        assert driftwatch.watch(lambda: "ok", agent="new")() == "ok"
        assert "old" not in rt.names and {"busy", "new"} == set(rt.names.names())
        assert "old" not in rt.drift.agents() and "old" not in rt._trackers and "old" not in rt._revisions
        assert "old" not in rt.windows._open and "old" not in rt.metrics._agent_children
        assert _series(cap, "driftwatch_calls_total", agent="old") == []
        assert _series(cap, "driftwatch_revision_info", agent="old") == []
        assert cap.value("driftwatch_calls_total", agent="new", status="ok") == 1.0
        assert sum(w.calls for w in cap.ledger.windows(agent="old")) == 1  # its open window was written first
        # back later: its prompt is compared with the ledger head, so an unchanged prompt is no change
        clock.now += 100
        assert driftwatch.track("old", "p", "v1") is None
        assert driftwatch.track("old", "p", "v2") is not None
        assert [c.agent for c in cap.changes()] == ["old"]


def test_an_evicted_agents_langgraph_state_goes_with_it() -> None:
    """A LangGraph graph watched under a new agent name per request (max_agents=2): the integration's per-agent
    state (model call sites, guard views, last model) is dropped with each evicted agent; the admitted agents
    keep theirs (positive control: the state is made on every request)."""
    from driftwatch.integrations.langgraph._requests import _SLOTS
    from driftwatch.integrations.langgraph._runs import _LAST_MODEL
    from tests.helpers.lg_graphs import reflect_graph

    with capture(max_agents=2, agent_idle_s=60) as cap:
        rt = cap.runtime
        clock = rt.names.clock = Clock()
        graph = reflect_graph()
        for i in range(12):
            watched = driftwatch.watch(graph, agent=f"user-{i}")
            out = watched.invoke({"system_prompt": "You are helpful.", "question": "hi"})
            assert out["answer"] == "Hello there, happy to help."
            assert (f"user-{i}", "agent") in _SLOTS.values(rt)  # made for this request's agent
            clock.now += 100  # idle: the next agent takes its place
        assert set(rt.names.names()) == {"user-10", "user-11"}
        assert {agent for agent, _site in _SLOTS.values(rt)} == {"user-10", "user-11"}
        assert set(_LAST_MODEL.values(rt)) <= {"user-10", "user-11"}
        assert cap.value("driftwatch_calls_total", agent="user-11", status="ok") == 1.0


def test_an_agent_with_a_latched_alarm_is_not_evicted() -> None:
    """A latched drift alarm keeps its agent (the alarm gauge must stay up until accepted): the newcomer folds."""
    with capture(max_agents=1, agent_idle_s=60, drift_reference_calls=300) as cap:
        rng = random.Random(4)
        state = {"prompt": "be brief"}

        @driftwatch.watch(agent="writer")
        def answer(q: str) -> str:
            n = int(math.exp(rng.gauss(5.0, 0.4)))
            return "x" * (n * 2 if state["prompt"] == "be thorough" else n)

        driftwatch.track("writer", "system_prompt", "be brief", kind="system_prompt")
        for _ in range(400):
            answer("q")
        state["prompt"] = "be thorough"
        driftwatch.track("writer", "system_prompt", "be thorough", kind="system_prompt")
        for _ in range(400):
            answer("q")
        assert cap.value("driftwatch_drift_alarm", agent="writer", signal="output_chars") == 1.0
        cap.runtime.names.clock = clock = Clock()
        clock.now += 3600
        assert driftwatch.watch(lambda: "ok", agent="newcomer")() == "ok"
        assert cap.runtime.names.names() == ["writer"]
        assert cap.value("driftwatch_drift_alarm", agent="writer", signal="output_chars") == 1.0
        assert cap.value("driftwatch_calls_total", agent="other", status="ok") == 1.0


def test_a_watched_programs_trackers_come_back_with_its_agent(cap: Captured) -> None:
    """Trackers a hook holds (a watched program) survive their agent's eviction; when the agent returns, its
    version (gen_ai.agent.version) is whole again."""
    rt = cap.runtime
    rt.names.max_agents = 1
    rt.names.idle_s = 0.0
    held = rt.tracker("prog", "predict")  # as an integration holds it
    held.observe("instructions v1")
    version = rt.agent_version("prog")
    assert version is not None
    driftwatch.watch(lambda: "ok", agent="other-agent")()  # evicts "prog" (idle for 0 s is enough here)
    assert "prog" not in rt.names and rt.agent_version("prog") is None
    assert driftwatch.watch(lambda: "ok", agent="prog")() == "ok"  # back: evicts "other-agent"
    assert rt.agent_version("prog") == version
    assert rt.tracker("prog", "predict") is held


def test_hostile_agent_names_keep_the_scrape_parseable(cap: Captured) -> None:
    """Agent, component, tool and metric names with quotes, backslashes, newlines, braces, lone surrogates and
    10,000 characters: the host's results are unchanged, the exposition parses back, the ledger records them."""
    names = ['q"uote', "back\\slash", "new\nline", "brace}{", "sur\udcffrogate", "x" * 10_000, "emoji 🤖"]
    for name in names:
        assert driftwatch.watch(lambda: "fine", agent=name)() == "fine"
        driftwatch.track(name, name, f"prompt {name[:20]}")
        driftwatch.record_score(name, 0.5, metric=name)
    text = cap.metrics_text()
    text.encode("utf-8")  # a lone surrogate would make every scrape fail
    parsed = {s.labels["agent"] for f in text_string_to_metric_families(text) for s in f.samples
              if f.name == "driftwatch_calls" and "agent" in s.labels}
    assert {'q"uote', "back\\slash", "new\nline", "brace}{", "emoji 🤖"} <= parsed
    assert "sur\\udcffrogate" in parsed
    (long_name,) = [a for a in parsed if a.startswith("xxx")]
    assert len(long_name) == 200 and long_name != "x" * 200
    agents = {c.agent for c in cap.changes(baselines=True)}
    assert agents == parsed
    assert cap.value("driftwatch_dropped_total", what="name") >= 2.0
    assert cap.runtime.error_counts == {}


def test_agents_arriving_on_many_threads_while_others_are_evicted() -> None:
    """8 threads, each calling under new agent names while the table (5 places, no idle time needed) keeps
    evicting: every call returns its result, nothing fails inside driftwatch, and the table stays bounded."""
    with capture(max_agents=5, agent_idle_s=0) as cap:
        results: list[str] = []
        failures: list[BaseException] = []

        def worker(t: int) -> None:
            try:
                for i in range(300):
                    name = f"t{t}-a{i % 40}"
                    results.append(driftwatch.watch(lambda: "ok", agent=name)())
                    driftwatch.track(name, "p", f"v{i % 3}")
                    driftwatch.record_score(name, 0.5)
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert failures == [] and results == ["ok"] * 2400
        assert cap.runtime.error_counts == {}
        assert len(cap.runtime.names) <= 5 and len(cap.runtime.drift.agents()) <= 5
        assert len(cap.runtime._trackers) <= 5
        total = sum(cap.value("driftwatch_calls_total", agent=a, status="ok") for a in _agents_in_registry(cap))
        assert total <= 2400  # evicted agents' series are gone; the rest are counted


@pytest.mark.parametrize(("var", "raw", "message"), [
    ("DRIFTWATCH_MAX_AGENTS", "0", "expected a number from 1 to 1000000"),
    ("DRIFTWATCH_MAX_TOOLS", "many", "expected a whole number"),
    ("DRIFTWATCH_MAX_COMPONENTS", "-5", "expected a number from 1"),
    ("DRIFTWATCH_MAX_SCORE_METRICS", "1.5", "expected a whole number"),
    ("DRIFTWATCH_AGENT_IDLE_S", "soon", "expected a number of seconds"),
])
def test_limit_settings_reject_bad_values_in_one_line(var: str, raw: str, message: str) -> None:
    """The limits come from DRIFTWATCH_* variables (or configure()); a bad value is a one-line error naming it."""
    from driftwatch.config import ConfigError, Settings

    with pytest.raises(ConfigError, match=f"^{var}={raw!r}: {message}") as info:
        Settings.from_env({var: raw})
    assert "\n" not in str(info.value)
    assert Settings.from_env({var: "7"}).__getattribute__(var.removeprefix("DRIFTWATCH_").lower()) == 7
