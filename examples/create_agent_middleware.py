"""LangChain's ``create_agent`` with ``DriftwatchMiddleware``: prompts and tools set by other middleware, recorded.

Run it:  python examples/create_agent_middleware.py [--turns 60] [--ledger agent.db] [--report agent.html]
Needs:   pip install 'driftwatch-agents[langgraph]'

A helpdesk agent built with ``create_agent`` on driftwatch's scripted chat model (offline, no API key;
it picks tools by how well their names and descriptions match the request, and favours a tool its
system prompt names). Its system prompt is not fixed at build time: a ``@dynamic_prompt`` middleware
reads it from a prompt store on every model call, and a ``@wrap_model_call`` middleware prunes the tool
set by a policy flag. Halfway through, the program tunes itself: it rewrites the stored prompt to send
every request to ``check_status`` first, and switches off ticket creation.

``DriftwatchMiddleware``, placed last, sees each final model request — after the other middleware
edited it — and records the prompt rewrite as a ``system_prompt`` change and the pruned tool set as a
``tools`` change, without adding a graph node. ``driftwatch.watch`` on the agent records each turn
(status, duration, tokens and the tools called). The example prints the changes and the tool mix
before and after the rewrite, then writes the HTML report.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import ModelRequest, dynamic_prompt, wrap_model_call
from langchain_core.tools import tool

import driftwatch
from driftwatch.demo.scripted_langchain import ScriptedChatModel
from driftwatch.integrations.langgraph import DriftwatchMiddleware
from driftwatch.report import write_report

AGENT = "helpdesk-agent"
PROMPTS = {
    "start": "You are the helpdesk of Acme Cloud. Use the tools to answer, then reply to the customer.",
    "tuned": "You are the helpdesk of Acme Cloud. Always call check_status first, then reply to the customer.",
}
QUESTIONS = (
    "How do I rotate the access keys of my storage bucket?",
    "Where is the guide to set up a custom domain?",
    "My database is down since this morning, is there an outage?",
    "How do I invite a colleague to my organisation?",
    "Please open a ticket: my invoice shows a double charge.",
)


@tool
def search_docs(query: str) -> str:
    """Search the Acme Cloud documentation for guides: how to set up, rotate keys, invite a colleague."""
    return f"Guide found for: {query[:40]}"


@tool
def check_status(service: str) -> str:
    """Check the live status of an Acme Cloud service: outages, incidents, a database or bucket that is down."""
    return "All systems operational."


@tool
def open_ticket(summary: str) -> str:
    """Open a ticket for a human engineer (billing problems, a double charge, anything the docs cannot fix)."""
    return "Ticket #4711 opened."


#: what the program tunes at run time (in a real deployment: a prompt registry, a store, a config service)
STORE: dict[str, Any] = {"prompt": PROMPTS["start"], "tickets": True}


@dynamic_prompt
def prompt_from_store(request: ModelRequest) -> str:
    """The system prompt of every model call, read from the store."""
    return str(STORE["prompt"])


@wrap_model_call
def ticket_policy(request: ModelRequest, handler: Any) -> Any:
    """Offer open_ticket only while the policy allows tickets."""
    if not STORE["tickets"]:
        request = request.override(tools=[t for t in request.tools if getattr(t, "name", "") != "open_ticket"])
    return handler(request)


def build() -> Any:
    agent = create_agent(ScriptedChatModel(seed=5), tools=[search_docs, check_status, open_ticket],
                         middleware=[prompt_from_store, ticket_policy, DriftwatchMiddleware(agent=AGENT)])
    return driftwatch.watch(agent, agent=AGENT)  # per-turn calls; the middleware does not count them twice


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60, help="customer questions (default: 60)")
    parser.add_argument("--ledger", default="agent.db", help="ledger file (default: agent.db)")
    parser.add_argument("--report", default="agent.html", help="HTML report to write (default: agent.html)")
    args = parser.parse_args(argv)
    if args.turns < 2:
        parser.error(f"--turns {args.turns}: expected at least 2")

    driftwatch.configure(ledger=args.ledger)
    agent = build()
    used: dict[str, Counter[str]] = {"before": Counter(), "after": Counter()}
    for i in range(args.turns):
        phase = "before" if i < args.turns // 2 else "after"
        if i == args.turns // 2:  # the program tunes itself
            STORE["prompt"], STORE["tickets"] = PROMPTS["tuned"], False
        out = agent.invoke({"messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]})
        for message in out["messages"]:
            for call in getattr(message, "tool_calls", None) or ():
                used[phase][call["name"]] += 1

    ledger = driftwatch.get_runtime().ledger
    for c in ledger.changes(agent=AGENT):
        print(f"change {c.id[:12]}  {c.component}  {c.kind} by {c.source}  paths {', '.join(c.paths) or '-'}")
    for phase in ("before", "after"):
        mix = ", ".join(f"{name} {n}" for name, n in sorted(used[phase].items())) or "none"
        print(f"tool calls {phase} the rewrite: {mix}")
    driftwatch.get_runtime().windows.flush()  # the calls still in the open window, before reporting
    size = write_report(args.report, ledger, title="create_agent_middleware.py")
    print(f"report: {args.report} ({size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
