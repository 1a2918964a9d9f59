"""The scripted language model as a LangChain chat model: ``ScriptedChatModel``, with tool calling.

>>> from driftwatch.demo.scripted_langchain import ScriptedChatModel
>>> from langchain.agents import create_agent
>>> agent = create_agent(ScriptedChatModel(seed=0), tools=[search, calculator], system_prompt="...")

The system message(s) are the instructions, the last human message the request, earlier
human → AI pairs the demos, tools bound with :meth:`ScriptedChatModel.bind_tools` (or passed by
``create_agent``) the tools it may call, and tool messages after the request its observations; see
:mod:`driftwatch.demo.scripted` for how each steers the answer. Replies are ``AIMessage`` objects with
``tool_calls`` when a tool is chosen and ``usage_metadata`` (token counts) always. Deterministic for a
given ``seed`` and sequence of calls; offline.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr

from driftwatch.demo.scripted import Prompt, ScriptedModel, Tool

__all__ = ["ScriptedChatModel"]

_NOT_FORCED = (None, "auto", "none")


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content
                   if isinstance(b, str) or b.get("type") == "text")


def _tools(specs: Sequence[dict[str, Any]]) -> tuple[Tool, ...]:
    tools = []
    for spec in specs:
        fn = spec.get("function", spec)
        props = (fn.get("parameters") or {}).get("properties") or {}
        params = {k: str(v.get("type", "string")) if isinstance(v, dict) else "string" for k, v in props.items()}
        tools.append(Tool(str(fn.get("name", "")), str(fn.get("description", "")), params))
    return tuple(tools)


def prompt_of(messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]] = ()) -> Prompt:
    """The framework-free :class:`Prompt` for a LangChain conversation and OpenAI-format tool specs."""
    system = "\n".join(_text(m) for m in messages if isinstance(m, SystemMessage))
    last = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    demos = []
    for a, b in itertools.pairwise(messages[:last]):
        if isinstance(a, HumanMessage) and isinstance(b, AIMessage) and not b.tool_calls:
            demos.append((_text(a), _text(b)))
    observations = tuple(_text(m) for m in messages[last + 1:] if isinstance(m, ToolMessage))
    text = _text(messages[last]) if last >= 0 else ""
    return Prompt(system, text, tuple(demos), _tools(tools), observations)


class ScriptedChatModel(BaseChatModel):
    """A deterministic, offline LangChain chat model whose behaviour follows its prompt.

    ``seed`` fixes the randomness; ``knowledge`` maps phrases to right answers (arithmetic is built in).
    Instances made by ``bind_tools``/``bind`` share the behaviour model (and its call counter).
    """

    seed: int = 0
    knowledge: dict[str, str] = Field(default_factory=dict)
    model_name: str = "scripted-driftwatch"
    _behaviour: ScriptedModel = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._behaviour = ScriptedModel(self.seed, knowledge=self.knowledge)

    @property
    def behaviour(self) -> ScriptedModel:
        """The :class:`~driftwatch.demo.scripted.ScriptedModel` answering for this chat model."""
        return self._behaviour

    @property
    def _llm_type(self) -> str:
        return "scripted-driftwatch"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "seed": self.seed}

    def bind_tools(self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], *,
                   tool_choice: str | None = None, **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer ``tools`` to the model (``tool_choice``: ``"any"``/``"required"`` or a tool name forces a call)."""
        specs = [convert_to_openai_tool(t) for t in tools]
        if tool_choice not in _NOT_FORCED:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=specs, **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        specs = list(kwargs.get("tools") or ())
        choice = kwargs.get("tool_choice")
        if isinstance(choice, dict):
            choice = (choice.get("function") or choice).get("name")
        if isinstance(choice, str) and choice not in ("any", "required", *_NOT_FORCED):
            specs = [s for s in specs if s.get("function", s).get("name") == choice] or specs
        prompt = prompt_of(messages, specs)
        reply = self._behaviour.respond(prompt, require_tool=choice not in _NOT_FORCED)
        tool_calls = []
        if reply.tool_call is not None:
            call_id = f"call_{self.seed}_{self._behaviour.calls}"
            tool_calls.append({"name": reply.tool_call.name, "args": reply.tool_call.args, "id": call_id,
                               "type": "tool_call"})
        message = AIMessage(
            content=reply.text, tool_calls=tool_calls,
            usage_metadata={"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                            "total_tokens": reply.input_tokens + reply.output_tokens},
            response_metadata={"model_name": self.model_name,
                               "finish_reason": "tool_calls" if tool_calls else "stop"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
