"""Real LangGraph graphs and LangChain fake chat models shared by the LangGraph integration tests.

Only the hosted LLM is replaced, by LangChain's own fake chat models (``FakeListChatModel``,
``GenericFakeChatModel``); graphs, callbacks, checkpointers and stores are the real thing.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    system_prompt: str
    question: str
    answer: str


def reflect(state: State) -> dict[str, Any]:
    """Rewrites the system prompt held in state when the user asks for it (the self-edit under test)."""
    if "rewrite" in state.get("question", ""):
        return {"system_prompt": state["system_prompt"] + " Be brief."}
    return {}


def prep(state: State) -> dict[str, Any]:
    return {}


def reflect_graph(model: Any = None, *, state: type = State, rewrite: Callable[..., Any] = reflect,
                  agent: Any = None, agent_name: str = "agent", with_prep: bool = True, extra_node: bool = False,
                  checkpointer: Any = None) -> Any:
    """The self-editing graph of the tests: ``prep -> reflect -> agent`` (``-> critic`` with ``extra_node``).

    ``reflect`` runs ``rewrite`` (default: append " Be brief." to the system prompt when the question asks for a
    "rewrite"); ``agent`` calls ``model`` with the prompt in state, unless another node (a function, a compiled
    subgraph) is given as ``agent``, named ``agent_name``. ``with_prep=False`` leaves out the leading no-op node.
    """
    model = model or FakeListChatModel(responses=["Hello there, happy to help."])

    def call_model(state: State) -> dict[str, Any]:
        reply = model.invoke([SystemMessage(state["system_prompt"]), HumanMessage(state["question"])])
        return {"answer": reply.content}

    async def acall_model(state: State) -> dict[str, Any]:
        reply = await model.ainvoke([SystemMessage(state["system_prompt"]), HumanMessage(state["question"])])
        return {"answer": reply.content}

    builder = StateGraph(state)
    if with_prep:
        builder.add_node("prep", prep)
    builder.add_node("reflect", rewrite)
    builder.add_node(agent_name, agent if agent is not None else RunnableLambda(call_model, afunc=acall_model))
    if with_prep:
        builder.add_edge(START, "prep")
        builder.add_edge("prep", "reflect")
    else:
        builder.add_edge(START, "reflect")
    builder.add_edge("reflect", agent_name)
    if extra_node:
        builder.add_node("critic", lambda s: {})
        builder.add_edge(agent_name, "critic")
        builder.add_edge("critic", END)
    else:
        builder.add_edge(agent_name, END)
    return builder.compile(checkpointer=checkpointer)


class ToolModel(GenericFakeChatModel):
    """``GenericFakeChatModel`` with ``bind_tools`` (OpenAI-format schemas, as real providers bind them)."""

    model_name: str = "fake-tool-model"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Runnable:
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


def replies(*messages: AIMessage | str) -> Iterator[AIMessage | str]:
    """An endless iterator cycling through ``messages`` (fake models consume one per call)."""
    return itertools.cycle(messages)


def usage_reply(text: str, *, tool_calls: Sequence[dict[str, Any]] = (), tokens: tuple[int, int] = (12, 5),
                ) -> AIMessage:
    return AIMessage(content=text, tool_calls=list(tool_calls),
                     usage_metadata={"input_tokens": tokens[0], "output_tokens": tokens[1],
                                     "total_tokens": sum(tokens)})


@tool
def search(query: str) -> str:
    """Search the knowledge base."""
    return f"results for {query}"


@tool
def calc(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    return "42"


class FanState(TypedDict, total=False):
    system_prompt: str
    answers: Annotated[list[str], operator.add]


def fan_graph(model_a: Any, model_b: Any) -> Any:
    """``START -> (left, right) -> END``: two branches that call their models in parallel threads."""

    def branch(model: Any, suffix: str) -> Callable[[FanState], dict[str, Any]]:
        def node(state: FanState) -> dict[str, Any]:
            reply = model.invoke([SystemMessage(state["system_prompt"] + suffix), HumanMessage("go")])
            return {"answers": [reply.content]}

        return node

    builder = StateGraph(FanState)
    builder.add_node("left", branch(model_a, " (left)"))
    builder.add_node("right", branch(model_b, " (right)"))
    builder.add_edge(START, "left")
    builder.add_edge(START, "right")
    builder.add_edge("left", END)
    builder.add_edge("right", END)
    return builder.compile()


def tools_graph(model: ToolModel) -> Any:
    """``agent`` binds the tools named in the question (``tools:search,calc``) and a temperature."""
    available: dict[str, BaseTool] = {"search": search, "calc": calc}

    def agent(state: State) -> dict[str, Any]:
        question = state["question"]
        names = question.split("tools:", 1)[1].split()[0].split(",") if "tools:" in question else ["search"]
        temperature = 0.9 if "hot" in question else 0.1
        bound = model.bind_tools([available[n] for n in names], temperature=temperature)
        reply = bound.invoke([SystemMessage(state["system_prompt"]), HumanMessage(question)])
        return {"answer": reply.content}

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    return builder.compile()


def chain_graph(state: type, *nodes: tuple[str, Any]) -> Any:
    """``START -> node 1 -> … -> END``, compiled: the smallest graphs tests build around one behaviour."""
    builder = StateGraph(state)
    previous = START
    for name, fn in nodes:
        builder.add_node(name, fn)
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder.compile()
