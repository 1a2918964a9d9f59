"""A LangGraph agent whose `reflect` node rewrites its own system prompt, watched by driftwatch.

Run it:  python examples/langgraph_reflect_agent.py [--turns 30] [--ledger driftwatch.db]
Needs:   pip install 'driftwatch-agents[langgraph]'

The graph is ``reflect -> agent`` with a checkpointer: every ten turns `reflect` writes a new
system prompt into the graph state, and `agent` answers with driftwatch's scripted chat model (offline,
no API key; its answers get shorter when the prompt asks for brevity). The factory that builds the
graph carries ``@driftwatch.watch``, so each rewrite is recorded as a ``system_prompt`` change
attributed to the `reflect` node, each turn as a call (status, duration, output size, tokens), and the
graph's topology as a baseline. The agent's history is printed at the end.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TypedDict

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

import driftwatch
from driftwatch.cli import main as cli_main
from driftwatch.demo.scripted_langchain import ScriptedChatModel

AGENT = "support-bot"
REWRITES = [
    "You are a support agent. Explain your reasoning step by step, in detail.",
    "You are a support agent. Be brief.",
]


class State(TypedDict, total=False):
    system_prompt: str
    turn: int
    question: str
    answer: str


@driftwatch.watch(agent=AGENT)
def build_agent() -> Any:
    """Build and compile the graph; driftwatch instruments the graph this returns."""
    model = ScriptedChatModel(seed=7)

    def reflect(state: State) -> dict[str, Any]:
        turn = state.get("turn", 0) + 1
        if turn % 10 == 0:  # the agent's own prompt optimizer (here: the next prompt of a fixed list)
            return {"turn": turn, "system_prompt": REWRITES[(turn // 10 - 1) % len(REWRITES)]}
        return {"turn": turn}

    def agent(state: State) -> dict[str, Any]:
        reply = model.invoke([SystemMessage(state["system_prompt"]), HumanMessage(state["question"])])
        return {"answer": reply.content}

    builder = StateGraph(State)
    builder.add_node("reflect", reflect)
    builder.add_node("agent", agent)
    builder.add_edge(START, "reflect")
    builder.add_edge("reflect", "agent")
    builder.add_edge("agent", END)
    return builder.compile(checkpointer=InMemorySaver())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--ledger", default="driftwatch.db")
    args = parser.parse_args(argv)

    driftwatch.configure(ledger=args.ledger)
    graph = build_agent()
    config = {"configurable": {"thread_id": "customer-1"}}
    graph.invoke({"system_prompt": "You are a support agent.", "question": "How do I reset my password?"}, config)
    for i in range(1, args.turns):
        out = graph.invoke({"question": f"What is {i} + {i}?"}, config)
    print(f"last answer ({len(out['answer'])} chars): {out['answer']}")
    print(f"\nhistory of {AGENT} from {args.ledger}:")
    return cli_main(["history", "--ledger", args.ledger, "--baselines", "--agent", AGENT])


if __name__ == "__main__":
    sys.exit(main())
