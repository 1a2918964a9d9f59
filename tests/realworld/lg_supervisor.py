"""A supervisor managing two ``create_react_agent`` sub-agents (langgraph-supervisor's quickstart).

Source: langchain-ai/langgraph-supervisor-py, ``README.md`` "Quickstart" (commit 766a673): ``math_expert``
(tools ``add``, ``multiply``) and ``research_expert`` (tool ``web_search``) built with
``langgraph.prebuilt.create_react_agent``, the same prompts, ``create_supervisor([...], model=..., prompt=...)``
and ``workflow.compile()``. Adapted only to fake models: each of the three agents has its own
:class:`tests.realworld.fakes.RuleChatModel`, which calls the tool or hands off the way the README's
transcript shows GPT-4o doing.

The program makes no self-modification: all three prompts are fixed. What driftwatch must show is three
call sites (the supervisor and each sub-agent's model node), each with its own baseline and no change.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from tests.realworld.fakes import last_human, rule_model, text_of, tool_call

HEADCOUNTS = (
    "Here are the headcounts for each of the FAANG companies in 2024:\n"
    "1. **Facebook (Meta)**: 67,317 employees.\n"
    "2. **Apple**: 164,000 employees.\n"
    "3. **Amazon**: 1,551,000 employees.\n"
    "4. **Netflix**: 14,000 employees.\n"
    "5. **Google (Alphabet)**: 181,269 employees."
)


def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


def web_search(query: str) -> str:
    """Search the web for information."""
    return HEADCOUNTS


def _request(messages: list[BaseMessage]) -> str:
    first = next((m for m in messages if m.type == "human"), None)
    return text_of(first) if first is not None else last_human(messages)


def _needs(request: str) -> list[str]:
    text = request.lower()
    out = []
    if any(w in text for w in ("faang", "headcount", "employees")):
        out.append("research_expert")
    if any(w in text for w in ("combined", "total", "times", "plus", "sum", "product", "multiply", "add")):
        out.append("math_expert")
    return out or ["research_expert"]


def _answered(messages: list[BaseMessage]) -> list[str]:
    return [m.name for m in messages if m.type == "ai" and m.name in ("research_expert", "math_expert")
            and not m.tool_calls]


def supervisor_rule(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
    request = _request(messages)
    done = _answered(messages)
    for agent in _needs(request):
        if agent not in done:
            return AIMessage(content="", tool_calls=[tool_call(f"transfer_to_{agent}")])
    last = next(text_of(m) for m in reversed(messages) if m.type == "ai" and m.name in done and not m.tool_calls)
    return AIMessage(content=f"Final answer: {last}")


def _since_handoff(messages: list[BaseMessage]) -> list[BaseMessage]:
    start = max((i for i, m in enumerate(messages) if m.type == "tool" and "transferred to" in text_of(m)), default=0)
    return messages[start + 1:]


def research_rule(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
    mine = [m for m in _since_handoff(messages) if isinstance(m, ToolMessage) and m.name == "web_search"]
    if not mine:
        return AIMessage(content="", tool_calls=[tool_call("web_search", query=_request(messages))])
    return AIMessage(content=f"According to the search: {text_of(mine[-1])}")


_NUM = re.compile(r"(\d[\d,]*(?:\.\d+)?)")


def _numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in _NUM.findall(text) if n.replace(",", "").replace(".", "").isdigit()]


def math_rule(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
    request = _request(messages)
    if "research_expert" in _needs(request):
        source = next(text_of(m) for m in messages if m.type == "ai" and m.name == "research_expert")
        numbers = [n for n in _numbers(source) if n >= 1000]  # the headcounts, not the list numbers / year
    else:
        numbers = _numbers(request)
    op = "multiply" if any(w in request.lower() for w in ("times", "product", "multiply")) else "add"
    results = [float(text_of(m)) for m in _since_handoff(messages) if isinstance(m, ToolMessage)]
    if len(results) < len(numbers) - 1:  # "Always use one tool at a time."
        left = results[-1] if results else numbers[0]
        return AIMessage(content="", tool_calls=[tool_call(op, a=left, b=numbers[len(results) + 1])])
    total = results[-1] if results else numbers[0]
    return AIMessage(content=f"The result is {total:,.0f}.")


QUESTIONS = (
    "what's the combined headcount of the FAANG companies in 2024?",
    "what is {a} times {b}?",
    "How many employees does each FAANG company have?",
    "what is the sum of {a} and {b}?",
    "What is the total number of employees at the FAANG companies?",
    "multiply {a} by {b}, please",
    "add {a} plus {b} plus {c}",
)


def questions(n: int = 21) -> list[str]:
    return [QUESTIONS[i % len(QUESTIONS)].format(a=3 + i, b=11 + 2 * i, c=100 + i) for i in range(n)]


AGENT = "faang-team"


def build(models: dict[str, Any] | None = None) -> Any:
    """The README's workflow, compiled (models: one fake per agent unless given).

    ``create_react_agent`` warns ``LangGraphDeprecatedSinceV10`` (it moved to ``langchain.agents.create_agent``),
    and langgraph-supervisor calls it too; silenced here only, since the program is built as its source builds it.
    """
    from langgraph.prebuilt import create_react_agent
    from langgraph.warnings import LangGraphDeprecatedSinceV10
    from langgraph_supervisor import create_supervisor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangGraphDeprecatedSinceV10)
        return _build(models, create_react_agent, create_supervisor)


def _build(models: dict[str, Any] | None, create_react_agent: Any, create_supervisor: Any) -> Any:

    models = models or {"supervisor": rule_model(supervisor_rule, "fake-gpt-4o"),
                        "math": rule_model(math_rule, "fake-gpt-4o"),
                        "research": rule_model(research_rule, "fake-gpt-4o")}
    math_agent = create_react_agent(
        model=models["math"],
        tools=[add, multiply],
        name="math_expert",
        prompt="You are a math expert. Always use one tool at a time."
    )
    research_agent = create_react_agent(
        model=models["research"],
        tools=[web_search],
        name="research_expert",
        prompt="You are a world class researcher with access to web search. Do not do any math."
    )
    workflow = create_supervisor(
        [research_agent, math_agent],
        model=models["supervisor"],
        prompt=(
            "You are a team supervisor managing a research expert and a math expert. "
            "For current events, use research_agent. "
            "For math problems, use math_agent."
        )
    )
    return workflow.compile()


def scenario(watched: bool, notes: dict[str, Any]) -> list[Any]:
    import driftwatch

    models = {"supervisor": rule_model(supervisor_rule, "fake-gpt-4o"), "math": rule_model(math_rule, "fake-gpt-4o"),
              "research": rule_model(research_rule, "fake-gpt-4o")}
    app = build(models)
    if watched:
        app = driftwatch.watch(app, agent=AGENT)
    out = [app.invoke({"messages": [{"role": "user", "content": q}]})["messages"] for q in questions()]
    notes["tools"] = [name for m in models.values() for name in m.emitted]  # what the models called
    return out
