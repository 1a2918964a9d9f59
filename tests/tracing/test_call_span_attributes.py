"""The ``invoke_agent`` span's attributes after its cost was cut (issue 15): the start attributes a sampler sees
(kept per agent while its version holds, a fresh set per call for the call's own), the version that served the
call when it moved during the call, the end attributes (one alone, or several at once), and nothing computed for
a span that does not record."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

import driftwatch
from driftwatch.testing import Captured, capture
from tests.helpers.lg_graphs import reflect_graph

P0 = "You are a helpful support agent."


class Recording(Sampler):
    """Keeps a copy of the attributes each ``invoke_agent`` span starts with; drops the spans named in ``drop``."""

    def __init__(self, *drop: str) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.drop = set(drop)

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None,
                      links: Any = None, trace_state: Any = None) -> SamplingResult:
        if name.startswith("invoke_agent"):
            self.seen.append((name, dict(attributes or {})))
        return SamplingResult(Decision.DROP if name in self.drop else Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "Recording"


@pytest.fixture
def sampled() -> Iterator[tuple[Captured, Recording, InMemorySpanExporter]]:
    sampler = Recording("invoke_agent dropped")
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with capture(tracer_provider=provider) as c:
        yield c, sampler, exporter


def _attrs(exporter: InMemorySpanExporter, name: str) -> list[dict[str, Any]]:
    return [dict(s.attributes) for s in exporter.get_finished_spans() if s.name == name]


def test_the_sampler_sees_the_version_of_each_call_and_a_call_s_own_attributes_stay_its_own(
        sampled: tuple[Captured, Recording, InMemorySpanExporter]) -> None:
    """The start attributes an agent's calls share are renewed when its version moves, and one call's conversation
    id does not reach the next call (the shared set is never written to)."""
    cap, sampler, exporter = sampled
    graph = driftwatch.watch(reflect_graph(), agent="convo")
    graph.invoke({"system_prompt": P0, "question": "hi"})
    v1 = cap.runtime.agent_version("convo")
    graph.invoke({"system_prompt": P0, "question": "hi"}, config={"configurable": {"thread_id": "t-1"}})
    graph.invoke({"system_prompt": P0, "question": "hi"})
    graph.invoke({"system_prompt": P0 + " New.", "question": "hi"})  # a new prompt: a change during the call
    v2 = cap.runtime.agent_version("convo")
    graph.invoke({"system_prompt": P0 + " New.", "question": "hi"})
    starts = [attrs for name, attrs in sampler.seen if name == "invoke_agent convo"]
    assert len(starts) == 5 and v1 is not None and v2 is not None and v1 != v2
    assert starts[1]["gen_ai.conversation.id"] == "t-1"  # positive control: the call's own attribute
    assert "gen_ai.conversation.id" not in starts[2]  # ... left on no later call of the same version
    assert [s.get("gen_ai.agent.version") for s in starts[1:]] == [v1, v1, v1, v2]  # as each call began
    assert starts[0].get("gen_ai.agent.version") != v1  # the first: before its prompt was seen
    assert all(s["gen_ai.operation.name"] == "invoke_agent" and s["gen_ai.agent.name"] == "convo" for s in starts)
    assert starts[1]["gen_ai.provider.name"] == "fakelistchatmodel"  # the previous call's model, at the start
    ended = _attrs(exporter, "invoke_agent convo")
    assert [s["gen_ai.agent.version"] for s in ended] == [v1, v1, v1, v2, v2]  # the first and fourth: moved in the call


def test_a_change_during_a_call_reaches_its_span(cap: Captured) -> None:
    """A run whose node rewrites the prompt ends with the new version on its span (it started with the old one);
    the run before it, unchanged, keeps the old one (negative control)."""
    graph = driftwatch.watch(reflect_graph(), agent="moving")
    graph.invoke({"system_prompt": P0, "question": "hi"})
    before = cap.runtime.agent_version("moving")
    graph.invoke({"system_prompt": P0, "question": "rewrite"})
    after = cap.runtime.agent_version("moving")
    assert before is not None and after is not None and before != after
    spans = cap.spans("invoke_agent moving")
    assert [dict(s.attributes)["gen_ai.agent.version"] for s in spans] == [before, after]


def test_one_attribute_learnt_at_the_end_is_set_as_several_are(cap: Captured) -> None:
    """The answer's size alone at the end (a model without usage, its model already known) still reaches the span,
    as it does beside the model learnt on the first call."""
    graph = driftwatch.watch(reflect_graph(FakeListChatModel(responses=["Four."])), agent="sized")
    for _ in range(2):
        graph.invoke({"system_prompt": P0, "question": "hi"})
    first, second = (dict(s.attributes) for s in cap.spans("invoke_agent sized"))
    assert first["driftwatch.output.chars"] == second["driftwatch.output.chars"] == len("Four.")
    assert first["gen_ai.provider.name"] == second["gen_ai.provider.name"] == "fakelistchatmodel"


def test_a_dropped_call_is_recorded_without_a_trace_id_and_still_learns_its_model(
        sampled: tuple[Captured, Recording, InMemorySpanExporter]) -> None:
    """Nothing is computed for a span that does not record (no exemplar: the call carries no trace id), while a
    recorded call does (positive control); the model a dropped run used still names the next run at its start."""
    cap, sampler, exporter = sampled
    calls: list[Any] = []
    record = cap.runtime.record_call
    cap.runtime.record_call = lambda call: (calls.append(call), record(call))[1]  # type: ignore[method-assign]
    dropped = driftwatch.watch(reflect_graph(), agent="dropped")
    dropped.invoke({"system_prompt": P0, "question": "hi"})
    kept = driftwatch.watch(reflect_graph(), agent="kept")
    kept.invoke({"system_prompt": P0, "question": "hi"})
    dropped.invoke({"system_prompt": P0, "question": "hi"})
    by_agent = {c.agent: c for c in calls}
    assert by_agent["dropped"].trace_id is None
    assert by_agent["kept"].trace_id is not None  # positive control: the first recorded call carries its trace
    assert _attrs(exporter, "invoke_agent dropped") == []
    starts = [attrs for name, attrs in sampler.seen if name == "invoke_agent dropped"]
    assert "gen_ai.provider.name" not in starts[0]
    assert starts[1]["gen_ai.provider.name"] == "fakelistchatmodel"


class Scribbling(Recording):
    """A sampler that writes into the attributes it is given (the API hands it a mapping; some do this)."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None,
                      links: Any = None, trace_state: Any = None) -> SamplingResult:
        result = super().should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if name.startswith("invoke_agent"):
            attributes["sampler.note"] = len(self.seen)
        return result


def test_a_sampler_that_writes_into_the_start_attributes_changes_its_own_call_only() -> None:
    sampler = Scribbling()
    provider = TracerProvider(sampler=sampler)
    with capture(tracer_provider=provider):
        @driftwatch.watch(agent="scribbled")
        def answer(question: str) -> str:
            return "Paris"

        for _ in range(3):
            answer("capital?")
    assert len(sampler.seen) == 3
    assert all("sampler.note" not in attrs for _, attrs in sampler.seen)  # each call's own copy
    assert all(attrs["gen_ai.agent.name"] == "scribbled" for _, attrs in sampler.seen)  # positive control
