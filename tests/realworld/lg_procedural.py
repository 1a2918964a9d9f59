"""Procedural memory in a LangGraph Store: one node rewrites the instructions another node reads.

Source: langchain-ai/langgraph, ``docs/docs/concepts/memory.md`` (commit 89de950), "Procedural memory" →
"Writing memories": ``call_model(state, store)`` reads ``store.get(("agent_instructions",), key="agent_a")``
and formats its prompt from the instructions; ``update_instructions(state, store)`` formats a meta-prompt
from the current instructions and the conversation, ``llm.invoke(prompt)``, and
``store.put(("agent_instructions",), "agent_a", {"instructions": new_instructions})``. The docs' sketch
reads ``("instructions",)`` in one place and ``("agent_instructions",)`` in another; this program uses
``("agent_instructions",)`` for both. The graph runs ``call_model`` then ``update_instructions`` (which
rewrites only when the user's message carries feedback), compiled with ``store=InMemoryStore()``.

Adapted only to a fake model (:class:`tests.realworld.fakes.RuleChatModel`): asked for new instructions, it
appends the user's feedback to the current ones; as the agent, it answers in the style its instructions ask.

Self-modifications: each feedback request (3 of the 22) makes ``update_instructions`` write new instructions;
the next ``call_model`` prompt changes because of it. driftwatch must record each rewrite once, naming the
node that wrote it (``update_instructions``): the store write (component ``store:agent_instructions/agent_a``,
kind ``store``) when the namespace is watched, and the ``call_model`` system-prompt change that follows.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

from tests.realworld.fakes import last_human, rule_model, system_text, text_of

NAMESPACE = ("agent_instructions",)
KEY = "agent_a"
INITIAL = "You are a helpful travel assistant. Answer the user's question."
AGENT_TEMPLATE = "{instructions}"
UPDATE_TEMPLATE = ("Here are your current instructions:\n<instructions>{instructions}</instructions>\n"
                   "Here is a conversation with the user:\n<conversation>{conversation}</conversation>\n"
                   "If the user gave feedback on how you should behave, rewrite the instructions to include it. "
                   "Reply with the new instructions only.")


class State(TypedDict):
    messages: Annotated[list, add_messages]


def agent_rule(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
    """The agent: follows its instructions' style requests; the meta-prompt: appends the feedback."""
    text = text_of(messages[-1])
    if "<instructions>" in text:
        current = re.search(r"<instructions>(.*?)</instructions>", text, re.S).group(1)  # type: ignore[union-attr]
        feedback = re.findall(r"feedback: ([^\n<'\"]+)", text)
        return AIMessage(content=f"{current} {feedback[-1].strip().rstrip('.')}." if feedback else current)
    instructions = system_text(messages).lower()
    question = last_human(messages)
    answer = f"Here is what I found about {question.lower().rstrip('?')}."
    if "brief" in instructions:
        answer = answer.split(" about ")[0] + "."
    if "bullet" in instructions:
        answer = f"- {answer}"
    if "metric" in instructions:
        answer += " (distances in km)"
    return AIMessage(content=answer)


def build(llm: Any, store: BaseStore) -> Any:
    # Node that *uses* the instructions
    def call_model(state: State, store: BaseStore) -> dict[str, Any]:
        instructions = store.get(NAMESPACE, key=KEY)
        prompt = AGENT_TEMPLATE.format(instructions=instructions.value["instructions"])
        return {"messages": [llm.invoke([SystemMessage(prompt), *state["messages"]])]}

    # Node that updates instructions
    def update_instructions(state: State, store: BaseStore) -> dict[str, Any]:
        if "feedback:" not in last_human(state["messages"]):
            return {}
        current_instructions = store.get(NAMESPACE, key=KEY)
        conversation = "\n".join(f"{m.type}: {text_of(m)}" for m in state["messages"])
        prompt = UPDATE_TEMPLATE.format(instructions=current_instructions.value["instructions"],
                                        conversation=conversation)
        output = llm.invoke(prompt)
        new_instructions = text_of(output)
        store.put(NAMESPACE, KEY, {"instructions": new_instructions})
        return {}

    builder = StateGraph(State)
    builder.add_node("call_model", call_model)
    builder.add_node("update_instructions", update_instructions)
    builder.add_edge(START, "call_model")
    builder.add_edge("call_model", "update_instructions")
    builder.add_edge("update_instructions", END)
    return builder.compile(store=store)


QUESTIONS = ("How far is Lisbon from Porto?", "What should I pack for Oslo in March?", "Is the Tokyo metro open late?",
             "Where can I rent a bike in Amsterdam?", "How do I get from Rome airport to the center?",
             "What is a good day trip from Vienna?", "Which museums in Madrid are free?")
FEEDBACK = {4: "feedback: please be brief", 11: "feedback: use bullet points", 17: "feedback: use metric units"}


def requests(n: int = 22) -> list[str]:
    return [f"{QUESTIONS[i % len(QUESTIONS)]} {FEEDBACK[i]}" if i in FEEDBACK else QUESTIONS[i % len(QUESTIONS)]
            for i in range(n)]


AGENT = "travel-memory"


def scenario_for(store_namespaces: bool) -> Any:
    """Watched with ``store_namespaces=[("agent_instructions",)]`` (the option the integration's docstring
    names) or without it (the README's plain ``driftwatch.watch(graph, agent=...)``)."""

    def scenario(watched: bool, notes: dict[str, Any]) -> list[Any]:
        import driftwatch

        llm = rule_model(agent_rule, "fake-gpt-4o")
        store = InMemoryStore()
        store.put(NAMESPACE, KEY, {"instructions": INITIAL})
        graph = build(llm, store)
        if watched:
            options = {"store_namespaces": [NAMESPACE]} if store_namespaces else {}
            graph = driftwatch.watch(graph, agent=AGENT, **options)
        out = [graph.invoke({"messages": [{"role": "user", "content": q}]})["messages"] for q in requests()]
        notes["rewrites"] = len(FEEDBACK)
        notes["final_instructions"] = store.get(NAMESPACE, KEY).value["instructions"]
        return out

    return scenario
