"""LangGraph's reflection tutorial: an essay writer and a teacher's critique, looped three times, async.

Sources: langchain-ai/langgraph, ``examples/reflection/reflection.ipynb`` at commit 727e63c (July 2024), the
``MessageGraph`` version: ``generate = prompt | llm`` and ``reflect = reflection_prompt | llm`` (the same two
system prompts), async ``generation_node`` / ``reflection_node``, ``should_continue`` ending after three
iterations (``len(state) > 6``), run with ``graph.astream([...])``; and the same tutorial at commit 23961cf
(``docs/docs/tutorials/reflection/reflection.ipynb``, after "purge message graph"), where the state is
``State(TypedDict): messages: Annotated[list, add_messages]``.

Adapted only to a fake model (:class:`tests.realworld.fakes.RuleChatModel` in place of ChatFireworks):
the essay grows with each critique, the critique names the revision it reads. The programs run with
``ainvoke`` and with ``astream``. ``MessageGraph`` is deprecated in LangGraph 1.x (it warns) but still
ships; the tests that build it say so.

No self-modification: both prompts are fixed. driftwatch must show two call sites (``generate``,
``reflect``) with a baseline each and no change, and an output size for every call.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from tests.realworld.fakes import rule_model, system_text, text_of

ESSAY_PROMPT = ("You are an essay assistant tasked with writing excellent 5-paragraph essays."
                " Generate the best essay possible for the user's request."
                " If the user provides critique, respond with a revised version of your previous attempts.")
TEACHER_PROMPT = ("You are a teacher grading an essay submission. Generate critique and recommendations for the"
                  " user's submission. Provide detailed recommendations, including requests for length, depth,"
                  " style, etc.")


def essay_rule(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
    topic = text_of(next(m for m in messages if m.type == "human"))
    if "teacher" in system_text(messages):
        rounds = sum(1 for m in messages if m.type == "human") - 1  # the essays are human turns here
        return AIMessage(content=f"Critique {rounds}: the essay on '{topic[:40]}' needs more depth and an example.")
    revision = sum(1 for m in messages if m.type == "ai")
    body = " ".join(f"Paragraph {i + 1} on {topic.lower()}." for i in range(5 + revision))
    return AIMessage(content=f"Essay (revision {revision}): {body}")


def chains(llm: Any) -> tuple[Any, Any]:
    prompt = ChatPromptTemplate.from_messages([("system", ESSAY_PROMPT), MessagesPlaceholder(variable_name="messages")])
    reflection_prompt = ChatPromptTemplate.from_messages(
        [("system", TEACHER_PROMPT), MessagesPlaceholder(variable_name="messages")])
    return prompt | llm, reflection_prompt | llm


def message_graph(llm: Any) -> Any:
    """The July 2024 tutorial's ``MessageGraph`` (its state *is* the list of messages).

    ``MessageGraph()`` warns ``LangGraphDeprecatedSinceV10`` (removal planned for LangGraph 2); the warning is
    silenced here only, since the program is built the way its source builds it."""
    from langgraph.graph import MessageGraph
    from langgraph.warnings import LangGraphDeprecatedSinceV10

    generate, reflect = chains(llm)

    async def generation_node(state: list[BaseMessage]) -> Any:
        return await generate.ainvoke({"messages": state})

    async def reflection_node(messages: list[BaseMessage]) -> list[BaseMessage]:
        # Other messages we need to adjust
        cls_map = {"ai": HumanMessage, "human": AIMessage}
        # First message is the original user request. We hold it the same for all nodes
        translated = [messages[0]] + [cls_map[msg.type](content=msg.content) for msg in messages[1:]]
        res = await reflect.ainvoke({"messages": translated})
        # We treat the output of this as human feedback for the generator
        return HumanMessage(content=res.content)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangGraphDeprecatedSinceV10)
        builder = MessageGraph()
    builder.add_node("generate", generation_node)
    builder.add_node("reflect", reflection_node)
    builder.add_edge(START, "generate")

    def should_continue(state: list[BaseMessage]) -> str:
        if len(state) > 6:
            # End after 3 iterations
            return END
        return "reflect"

    builder.add_conditional_edges("generate", should_continue)
    builder.add_edge("reflect", "generate")
    return builder.compile()


class State(TypedDict):
    messages: Annotated[list, add_messages]


def state_graph(llm: Any) -> Any:
    """The current tutorial's ``StateGraph`` (a ``messages`` key with ``add_messages``)."""
    generate, reflect = chains(llm)

    async def generation_node(state: State) -> State:
        return {"messages": [await generate.ainvoke(state["messages"])]}

    async def reflection_node(state: State) -> State:
        cls_map = {"ai": HumanMessage, "human": AIMessage}
        translated = [state["messages"][0]] + [cls_map[msg.type](content=msg.content) for msg in state["messages"][1:]]
        res = await reflect.ainvoke(translated)
        return {"messages": [HumanMessage(content=res.content)]}

    builder = StateGraph(State)
    builder.add_node("generate", generation_node)
    builder.add_node("reflect", reflection_node)
    builder.add_edge(START, "generate")

    def should_continue(state: State) -> str:
        if len(state["messages"]) > 6:
            return END
        return "reflect"

    builder.add_conditional_edges("generate", should_continue)
    builder.add_edge("reflect", "generate")
    return builder.compile()


TOPICS = ("the topicality of The Little Prince in modern life", "why the little prince is relevant in modern childhood",
          "the role of libraries in small towns", "night trains in Europe", "learning a second language as an adult",
          "the ethics of urban beekeeping", "public transport and quiet", "what chess teaches children",
          "the history of the bicycle", "why people keep diaries", "the sea in Portuguese poetry")

MESSAGE_GRAPH_AGENT = "essay-reflection"
STATE_GRAPH_AGENT = "essay-reflection-state"


def requests(n: int = 22) -> list[str]:
    return [f"Generate an essay on {TOPICS[i % len(TOPICS)]}" + (" (short version)" if i >= len(TOPICS) else "")
            for i in range(n)]


async def _serve(graph: Any, as_state: bool) -> list[Any]:
    """Even requests with ``ainvoke``, odd ones with ``astream`` (the tutorial's way: the updates, in order)."""
    out: list[Any] = []
    for i, text in enumerate(requests()):
        payload: Any = [HumanMessage(content=text)]
        if as_state:
            payload = {"messages": payload}
        if i % 2 == 0:
            out.append(await graph.ainvoke(payload))
        else:
            out.append([event async for event in graph.astream(payload)])
    return out


def _scenario(build: Any, agent: str, as_state: bool) -> Any:
    async def scenario(watched: bool, notes: dict[str, Any]) -> list[Any]:
        import driftwatch

        llm = rule_model(essay_rule, "fake-mixtral-8x7b-instruct")
        graph = build(llm)
        if watched:
            graph = driftwatch.watch(graph, agent=agent)
        out = await _serve(graph, as_state)
        notes["llm_calls"] = llm.calls
        return out

    return scenario


message_graph_scenario = _scenario(message_graph, MESSAGE_GRAPH_AGENT, as_state=False)
state_graph_scenario = _scenario(state_graph, STATE_GRAPH_AGENT, as_state=True)
