"""The names driftwatch emits: the GenAI ones as the OpenTelemetry semantic-conventions package spells them, its own
as docs/semantic-conventions.md specifies them (the page and the code list the same names), and the spans and
events of every kind a real run produces carry only documented names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
from opentelemetry.semconv.attributes import error_attributes

import driftwatch
from driftwatch import tracing
from driftwatch.testing import Captured, capture

DOC = Path(__file__).resolve().parents[2] / "docs" / "semantic-conventions.md"
NAME = re.compile(r"^(?:gen_ai|driftwatch|error)\.[a-z_.]+$")


def _constants(module: Any, prefix: str) -> set[str]:
    """The attribute names a semantic-conventions module defines (its constants are deprecated for import, so the
    module is read, not imported from)."""
    return {v for k, v in vars(module).items() if k.startswith(prefix) and isinstance(v, str)}


def emitted_names() -> set[str]:
    """Every attribute name driftwatch.tracing defines: its own (ATTR), the GenAI ones, error.type."""
    own = {v for k, v in vars(tracing.ATTR).items() if not k.startswith("_")}
    return own | set(tracing.GEN_AI_ATTRIBUTES) | {tracing.ERROR_TYPE}


def documented_names() -> set[str]:
    """The attribute names in the first column of the page's attribute tables (those headed ``Attribute``)."""
    names = set()
    header = None
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells[0]
            continue
        if header == "Attribute":
            for name in re.findall(r"`([^`]+)`", cells[0]):
                if NAME.match(name):
                    names.add(name)
    return names


def test_genai_names_are_the_semantic_conventions_names() -> None:
    """Each gen_ai.* name driftwatch emits is one the semantic-conventions package defines; error.type too."""
    known = _constants(gen_ai_attributes, "GEN_AI_")
    assert set(tracing.GEN_AI_ATTRIBUTES) <= known, set(tracing.GEN_AI_ATTRIBUTES) - known
    assert tracing.ERROR_TYPE == error_attributes.ERROR_TYPE
    operations = {v.value for v in gen_ai_attributes.GenAiOperationNameValues}
    assert {tracing.SPAN.INVOKE_AGENT, tracing.SPAN.CREATE_AGENT} <= operations


def test_provider_names_map_to_the_well_known_values() -> None:
    """Framework provider names map onto the convention's well-known gen_ai.provider.name values."""
    well_known = {v.value for v in gen_ai_attributes.GenAiProviderNameValues}
    cases = {"openai": "openai", "anthropic": "anthropic", "google_genai": "gcp.gemini",
             "google_vertexai": "gcp.vertex_ai", "bedrock": "aws.bedrock", "azure": "azure.ai.openai",
             "mistralai": "mistral_ai", "xai": "x_ai", "groq": "groq", "deepseek": "deepseek"}
    for raw, expected in cases.items():
        assert tracing.provider_name(raw) == expected
        assert expected in well_known, expected
    assert tracing.provider_name("MyLocalLLM") == "mylocalllm"  # an unknown provider passes through, lower-cased
    assert tracing.provider_name("") is None


def test_the_page_lists_exactly_the_names_driftwatch_emits() -> None:
    """docs/semantic-conventions.md has a table row for every attribute in driftwatch.tracing, and no other."""
    documented = documented_names()
    assert len(documented) >= 25  # the page's tables were read (positive control for the equality below)
    assert documented == emitted_names(), (documented - emitted_names(), emitted_names() - documented)


def test_the_page_names_every_span_and_event() -> None:
    text = DOC.read_text()
    for name in [v for k, v in vars(tracing.SPAN).items() if not k.startswith("_")] + \
            [v for k, v in vars(tracing.EVENT).items() if not k.startswith("_")]:
        assert f"`{name}" in text, name


def _every_kind_of_span(cap: Captured) -> None:
    """A watched function (a change during a call, content capture on), an optimizer run, a failing call."""
    state = {"prompt": "You are brief."}

    @driftwatch.watch(agent="conv")
    def answer(question: str) -> str:
        driftwatch.track("conv", "system_prompt", state["prompt"], kind="system_prompt", source="agent",
                         node="reflect")
        if question == "boom":
            raise ValueError("boom")
        return f"An answer to {question}."

    answer("a")
    state["prompt"] = "You are thorough."
    answer("b")
    with pytest.raises(ValueError):
        answer("boom")
    run = cap.runtime.begin_run("conv", "MyOptimizer")
    assert run is not None
    run.candidate(0.5)
    driftwatch.track("conv", "system_prompt", "You are exact.", kind="system_prompt", source="MyOptimizer")
    run.finish()


def test_spans_and_events_carry_only_documented_names() -> None:
    """Every attribute on the spans, events and links of a run is documented (the positive control: the run made
    each kind of span, and the names seen cover most of the page)."""
    documented = documented_names()
    with capture(capture_content=True) as cap:
        _every_kind_of_span(cap)
        spans = cap.spans()
    kinds = {s.name for s in spans}
    assert {"invoke_agent conv", "driftwatch.change", "driftwatch.optimizer.compile"} <= kinds
    seen: set[str] = set()
    for span in spans:
        seen.update(span.attributes or {})
        for event in span.events:
            if event.name != "exception":  # OpenTelemetry's own exception event (exception.* attributes)
                seen.update(event.attributes or {})
        for link in span.links:
            seen.update(link.attributes or {})
    assert seen <= documented, seen - documented
    assert {"driftwatch.change.diff", "driftwatch.change.node", "driftwatch.optimizer.run_id", "error.type",
            "gen_ai.agent.version"} <= seen
