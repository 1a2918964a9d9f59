"""``langchain.agents.create_agent`` with built-in middleware that makes its own model calls.

Sources (LangChain docs, https://docs.langchain.com/oss/python/langchain/):
- ``middleware/built-in`` — ``SummarizationMiddleware(model=..., trigger=("tokens", 4000), keep=("messages", 20))``
  and ``LLMToolSelectorMiddleware(model=..., max_tools=3, always_include=["search"])`` on an agent with many
  tools;
- ``structured-output`` — ``response_format=ToolStrategy(ContactInfo)``;
- ``middleware/custom`` — ``@dynamic_prompt`` for a system prompt read on every model call;
- driftwatch's README — ``DriftwatchMiddleware(agent=...)`` placed last in ``middleware=[...]``.

Adapted only to fake models and to a shorter conversation: the agent, the summarizer and the tool selector
each get a :class:`tests.realworld.fakes.RuleChatModel`; summarization triggers at 8 messages (keeping 4)
instead of 4000 tokens, so that it happens within 22 requests over four conversation threads
(an ``InMemorySaver`` checkpointer, ``thread_id`` per user).

Self-modification (one, the positive control): after 10 requests the program rewrites the system prompt
its ``@dynamic_prompt`` middleware serves (``PROMPTS["tuned"]``); driftwatch must record it once, as a
``system_prompt`` change of the agent's ``model`` node, source ``runtime`` (no graph node wrote it).
Everything else the middleware does (the selector's and the summarizer's own model calls, the tool set the
selector narrows per request) is not a self-modification.
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from tests.realworld.fakes import last_human, rule_model, system_text, text_of, tool_call


@tool
def search(query: str) -> str:
    """Search the help center for articles about a topic."""
    return f"Help center: 3 articles about {query[:40]}."


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is 18 degrees and cloudy in {city}."


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as 12 * 7."""
    a, op, b = re.fullmatch(r"(\d+) ([-+*]) (\d+)", expression).groups()  # type: ignore[union-attr]
    return str({"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op])


@tool
def lookup_order(order_id: str) -> str:
    """Look up the status of a customer's order by its id."""
    return f"Order {order_id} shipped yesterday."


@tool
def send_email(to: str, body: str) -> str:
    """Send an email to a customer."""
    return f"Email sent to {to}."


TOOLS = [search, get_weather, calculator, lookup_order, send_email]


class Answer(BaseModel):
    """The reply to the customer."""

    answer: str = Field(description="what to tell the customer")
    sources: list[str] = Field(description="the tools whose results the answer uses")


PROMPTS = {"start": "You are Acme's support assistant. Use the tools, then answer.",
           "tuned": "You are Acme's support assistant. Use the tools, cite them, and answer in one sentence."}


def _wanted(request: str) -> list[str]:
    text = request.lower()
    out = []
    if "weather" in text:
        out.append("get_weather")
    if re.search(r"\d+ [-+*] \d+", text):
        out.append("calculator")
    if "order" in text:
        out.append("lookup_order")
    if "email" in text:
        out.append("send_email")
    return out or ["search"]


def _args(name: str, request: str) -> dict[str, Any]:
    if name == "get_weather":
        return {"city": (re.search(r"in ([A-Z][a-z]+)", request) or re.search(r"(\w+)$", request)).group(1)}
    if name == "calculator":
        return {"expression": re.search(r"\d+ [-+*] \d+", request).group(0)}  # type: ignore[union-attr]
    if name == "lookup_order":
        return {"order_id": re.search(r"#?(\d{4,})", request).group(1)}  # type: ignore[union-attr]
    if name == "send_email":
        return {"to": "customer@example.com", "body": request[:60]}
    return {"query": request[:60]}


def agent_rule(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
    """Call the first wanted tool it was offered (once per request), then answer through ``Answer``."""
    request = last_human(messages)
    start = max(i for i, m in enumerate(messages) if m.type == "human")
    used = [m.name for m in messages[start:] if m.type == "tool"]
    todo = [t for t in _wanted(request) if t in tools and t not in used]
    if todo and not used:
        return AIMessage(content="", tool_calls=[tool_call(todo[0], **_args(todo[0], request))])
    results = " ".join(text_of(m) for m in messages[start:] if m.type == "tool")
    brief = "one sentence" in system_text(messages)
    answer = (results or "I can help with that.") if brief else f"Thanks for asking. {results or 'Happy to help.'}"
    return AIMessage(content="", tool_calls=[tool_call("Answer", answer=answer, sources=used)])


def selector_rule(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
    """The tool selector: answers its structured-output schema with the tools the request needs (``search``
    is always included by the middleware, so it is not among the choices)."""
    request = last_human(messages)
    return AIMessage(content="", tool_calls=[tool_call(tools[0], tools=[t for t in _wanted(request) if t != "search"])])


def summarizer_rule(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
    asked = re.findall(r"human: ([^\n]{0,30})", " ".join(text_of(m) for m in messages).lower())
    return AIMessage(content=f"Summary: the customer asked {len(asked) or 'several'} questions so far.")


REQUESTS = ("What's the weather in Lisbon?", "Where is my order #48213?", "What is 12 * 7?",
            "How do I reset my password?", "Please email me the invoice for order #55120.",
            "What's the weather like in Oslo today?", "What is 120 + 35?", "How do I change my billing address?",
            "Can you check order #70011 for me?", "Is it raining in Madrid? What's the weather?",
            "What is 9 - 4?")


def requests(n: int = 22) -> list[tuple[str, str]]:
    """(thread_id, text): four customers, each in their own conversation thread."""
    return [(f"customer-{i % 4}", REQUESTS[i % len(REQUESTS)]) for i in range(n)]


def build(models: dict[str, Any], extra_middleware: list[Any], state: dict[str, str]) -> Any:
    from langchain.agents import create_agent
    from langchain.agents.middleware import (
        LLMToolSelectorMiddleware,
        ModelRequest,
        SummarizationMiddleware,
        dynamic_prompt,
    )
    from langchain.agents.structured_output import ToolStrategy
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    @dynamic_prompt
    def current_prompt(request: ModelRequest) -> str:
        return state["prompt"]

    return create_agent(
        model=models["agent"],
        tools=TOOLS,
        middleware=[
            SummarizationMiddleware(model=models["summarizer"], trigger=("messages", 8), keep=("messages", 4)),
            LLMToolSelectorMiddleware(model=models["selector"], max_tools=2, always_include=["search"]),
            current_prompt,
            *extra_middleware,
        ],
        response_format=ToolStrategy(Answer),
        # the structured response is checkpointed: allow its class explicitly (LangGraph warns otherwise)
        checkpointer=InMemorySaver(serde=JsonPlusSerializer(allowed_msgpack_modules=[(__name__, "Answer")])),
    )


AGENT = "acme-support"
#: what the program's own code needs: SummarizationMiddleware(trigger=, keep=) and
#: JsonPlusSerializer(allowed_msgpack_modules=) (older releases take other arguments)
NEEDS = (("langchain", "1.1"), ("langgraph-checkpoint", "4.0.1"))


def scenario_for(mode: str) -> Any:
    """``"middleware"``: ``DriftwatchMiddleware`` alone, as the README shows it; ``"both"``: the middleware and
    ``driftwatch.watch(agent_graph, agent=...)`` (what the middleware's docstring asks for)."""

    def scenario(watched: bool, notes: dict[str, Any]) -> list[Any]:
        import driftwatch
        from driftwatch.integrations.langgraph import DriftwatchMiddleware

        models = {"agent": rule_model(agent_rule, "fake-gpt-4.1"),
                  "selector": rule_model(selector_rule, "fake-gpt-4.1-mini"),
                  "summarizer": rule_model(summarizer_rule, "fake-gpt-4.1-mini")}
        state = {"prompt": PROMPTS["start"]}
        extra = [DriftwatchMiddleware(agent=AGENT)] if watched else []
        agent = build(models, extra, state)
        if watched and mode == "both":
            agent = driftwatch.watch(agent, agent=AGENT)
        out = []
        for i, (thread, text) in enumerate(requests()):
            if i == 10:
                state["prompt"] = PROMPTS["tuned"]
            result = agent.invoke({"messages": [{"role": "user", "content": text}]},
                                  {"configurable": {"thread_id": thread}})
            out.append((result["structured_response"], result["messages"][-1]))
        notes["agent_tools"] = [t for t in models["agent"].emitted if t != "Answer"]
        notes["calls"] = {name: m.calls for name, m in models.items()}
        notes["threads"] = [thread for thread, _ in requests()]
        return out

    return scenario
