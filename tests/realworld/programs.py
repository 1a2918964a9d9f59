"""The programs of tests/realworld/, by name: each one's scenario and the agent name it is watched under."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.realworld import dspy_airline, dspy_multihop, lc_create_agent, lg_procedural, lg_reflection, lg_supervisor


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
