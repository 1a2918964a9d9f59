"""Run a program bare and watched, and keep what driftwatch recorded about the watched run.

A *scenario* is a function ``scenario(watched: bool, notes: dict) -> list[output]`` (or an ``async def``): it
builds the program afresh, serves its requests, and makes whatever self-modifications the program makes.
With ``watched=False`` it must not touch driftwatch at all; with ``watched=True`` it watches the program
the way driftwatch's docs tell a user to, and may leave facts for the tests in ``notes``
(``Outcome.extra``). :func:`run_both` runs it twice, each time inside its own
``driftwatch.testing.capture()`` (an isolated runtime: fresh registry, in-memory ledger and spans), with
the global ``random`` seeded alike and every driftwatch patch removed before each run, and returns an
:class:`Outcome`: both runs' outputs (normalized: message ids and run ids left out) and a snapshot of
what the watched run recorded (taken inside the block, since the ledger closes with it).

Only driftwatch's public API is used, so the harness survives the package's restructuring.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import driftwatch
from driftwatch.testing import capture

#: the span name of one watched agent call (GenAI conventions: ``invoke_agent {gen_ai.agent.name}``)
INVOKE_AGENT = "invoke_agent {}"
MIN_REQUESTS = 20


def unpatch() -> None:
    """Remove every patch driftwatch's integrations hold (``watch()`` installs some at class level)."""
    from driftwatch.integrations import dspy as dw_dspy
    from driftwatch.integrations import langgraph as dw_langgraph

    dw_dspy.uninstrument()
    dw_langgraph.uninstrument()


def normalize(value: Any) -> Any:
    """A comparable form of a program's output: messages by type, text and tool calls (not by their random
    ids), predictions and pydantic models by their fields, containers element by element."""
    from langchain_core.messages import BaseMessage
    from pydantic import BaseModel

    if isinstance(value, BaseMessage):
        calls = [(c["name"], normalize(c["args"])) for c in getattr(value, "tool_calls", None) or ()]
        return (value.type, normalize(value.content), calls, getattr(value, "name", None))
    if isinstance(value, BaseModel):
        return (type(value).__name__, normalize(value.model_dump()))
    if hasattr(value, "toDict") and callable(value.toDict):  # dspy.Prediction / dspy.Example
        return ("prediction", normalize(value.toDict()))
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return normalize(dataclasses.asdict(value))
    return value


@dataclasses.dataclass
class Outcome:
    """What one bare run and one watched run of a scenario gave."""

    bare: list[Any]
    watched: list[Any]
    bare_samples: int  # driftwatch samples (calls, changes) the bare run produced: must be 0
    changes: list[driftwatch.Change]  # every change of the watched run, baselines included
    runs: list[driftwatch.OptimizerRun]
    spans: list[Any]
    registry: Any
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        v = self.registry.get_sample_value(name, labels)
        return 0.0 if v is None else v

    def samples(self, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of ``name`` whose labels include ``labels``."""
        out = {}
        for family in self.registry.collect():
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    out[tuple(sorted(s.labels.items()))] = s.value
        return out

    def tool_calls(self, agent: str) -> dict[str, float]:
        return {dict(k)["tool"]: v for k, v in self.samples("driftwatch_tool_calls_total", agent=agent).items()}

    def recorded(self, agent: str | None = None) -> list[driftwatch.Change]:
        """The changes (not the baselines) recorded for ``agent``."""
        return [c for c in self.changes if not c.is_baseline and (agent is None or c.agent == agent)]

    def baselines(self, agent: str | None = None) -> list[driftwatch.Change]:
        return [c for c in self.changes if c.is_baseline and (agent is None or c.agent == agent)]

    def summary(self, agent: str | None = None) -> Counter[tuple[str, str, str, str | None]]:
        """``(component, kind, source, node) -> count`` of the recorded changes."""
        return Counter((c.component, c.kind, c.source, c.node) for c in self.recorded(agent))

    def agent_spans(self, agent: str) -> list[Any]:
        name = INVOKE_AGENT.format(agent)
        return [s for s in self.spans if s.name == name]

    def describe(self, agent: str | None = None) -> str:
        """A readable account (for assertion messages)."""
        lines = [f"{n} x {comp} kind={kind} source={src} node={node}"
                 for (comp, kind, src, node), n in sorted(self.summary(agent).items(), key=str)]
        return "\n".join(lines) or "(no changes)"


Scenario = Callable[[bool, dict[str, Any]], Any]


def _run(scenario: Scenario, watched: bool, notes: dict[str, Any]) -> list[Any]:
    result = scenario(watched, notes)
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    return list(result)


def _samples(registry: Any) -> int:
    n = 0
    for family in registry.collect():
        if family.name in ("driftwatch_calls", "driftwatch_changes"):
            n += sum(1 for s in family.samples if s.name.endswith("_total") and s.value)
    return n


def run_both(scenario: Scenario, *, seed: int = 1234, **settings: Any) -> Outcome:
    """Run ``scenario`` bare, then watched (each in its own isolated runtime); ``settings`` go to
    ``capture()`` for the watched run."""
    unpatch()
    random.seed(seed)
    with capture() as bare_cap:
        bare = [normalize(o) for o in _run(scenario, False, {})]
        bare_samples = _samples(bare_cap.registry) + len(bare_cap.changes(baselines=True))
    unpatch()
    random.seed(seed)
    try:
        with capture(**settings) as cap:
            notes: dict[str, Any] = {}
            watched = [normalize(o) for o in _run(scenario, True, notes)]
            changes = cap.changes(baselines=True)
            runs = cap.ledger.runs()
            spans = cap.spans()
            registry = cap.registry
    finally:
        unpatch()
    return Outcome(bare, watched, bare_samples, changes, runs, spans, registry, notes)


def attributes(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})
