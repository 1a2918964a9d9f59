"""Programs driftwatch was not written alongside, each run once bare and once watched per session.

Every program here is adapted from a published source (named in its module's docstring) to fake models
only. ``outcome(name)`` runs a program's scenario through :func:`tests.realworld.harness.run_both` on first
use and keeps the :class:`~tests.realworld.harness.Outcome` for the session, so that the many tests that
look at one run (outputs, changes, metrics, spans) do not each pay for it.

A test that documents a defect of today's driftwatch asserts the correct behaviour and is marked
``xfail(strict=True, reason="issue 12 item N: ...")``: when the defect is fixed it passes, strict xfail
fails the suite, and the mark must come off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pytest
from packaging.version import Version

from tests.realworld import dspy_airline, dspy_multihop, lc_create_agent, lg_procedural, lg_reflection, lg_supervisor
from tests.realworld.harness import Outcome, run_both, unpatch


@dataclass(frozen=True)
class Program:
    """One program (its scenario) and the agent name it is watched under."""

    scenario: Callable[..., Any]
    agent: str
    #: (distribution, minimum version) the program's own code needs beyond setup.cfg's minimums: the program
    #: is skipped below them (in the minimum-versions run, .venv-lowest)
    needs: tuple[tuple[str, str], ...] = ()


PROGRAMS: dict[str, Program] = {
    "baleen": Program(dspy_multihop.baleen_scenario, dspy_multihop.BALEEN),
    "hop": Program(dspy_multihop.hop_scenario, dspy_multihop.HOP),
    "airline": Program(dspy_airline.airline_scenario, dspy_airline.AIRLINE),
    "tool_loop": Program(dspy_airline.tool_loop_scenario, dspy_airline.TOOL_LOOP),
    # langgraph-supervisor needs langgraph>=1.0.2: a dev dependency, absent from the minimum-versions run
    "supervisor": Program(lg_supervisor.scenario, lg_supervisor.AGENT, needs=(("langgraph-supervisor", "0.0.31"),)),
    "reflection_message_graph": Program(lg_reflection.message_graph_scenario, lg_reflection.MESSAGE_GRAPH_AGENT),
    "reflection_state_graph": Program(lg_reflection.state_graph_scenario, lg_reflection.STATE_GRAPH_AGENT),
    "create_agent_middleware": Program(lc_create_agent.scenario_for("middleware"), lc_create_agent.AGENT,
                                       needs=lc_create_agent.NEEDS),
    "create_agent_watched": Program(lc_create_agent.scenario_for("both"), lc_create_agent.AGENT,
                                    needs=lc_create_agent.NEEDS),
    "procedural_store": Program(lg_procedural.scenario_for(store_namespaces=True), lg_procedural.AGENT),
    "procedural_plain": Program(lg_procedural.scenario_for(store_namespaces=False), lg_procedural.AGENT),
}

_OUTCOMES: dict[str, Outcome] = {}


def _skip_unless_installed(name: str) -> None:
    for distribution, minimum in PROGRAMS[name].needs:
        try:
            found = version(distribution)
        except PackageNotFoundError:
            pytest.skip(f"the {name} program needs {distribution}>={minimum}, which is not installed")
        if Version(found) < Version(minimum):
            pytest.skip(f"the {name} program needs {distribution}>={minimum} (found {found})")


def outcome_of(name: str) -> Outcome:
    _skip_unless_installed(name)
    if name not in _OUTCOMES:
        _OUTCOMES[name] = run_both(PROGRAMS[name].scenario)
    return _OUTCOMES[name]


@pytest.fixture
def outcome() -> Callable[[str], Outcome]:
    """``outcome(name)``: the session's bare + watched run of program ``name``."""
    return outcome_of


@pytest.fixture(autouse=True)
def _no_patches_left() -> Iterator[None]:
    """Every test starts and ends with driftwatch's integrations unpatched (as the other suites expect)."""
    unpatch()
    yield
    unpatch()
