"""The fake models the real-world programs run on (no hosted LLM can run here; nothing else is faked).

- :class:`RuleLM` is DSPy's own ``dspy.utils.DummyLM`` in its "follow examples" mode, with the
  example lookup replaced by a rule: the rule reads the prompt DSPy's ``ChatAdapter`` rendered (the
  instructions, the input field values, the output field names, how many few-shot demos) and returns
  the output fields. DummyLM formats them back the way the adapter expects.
- :class:`RuleChatModel` is LangChain's ``GenericFakeChatModel``; before each generation its message
  iterator is refilled with the one reply a rule computes from the messages and the bound tools, so a
  multi-agent program gets the right tool call for each turn without a hand-flattened script.
  ``bind_tools`` binds OpenAI-format schemas, as real providers do (GenericFakeChatModel has none), so
  ``create_react_agent``, ``create_agent`` and ``with_structured_output`` work on it.

Both are deterministic: the same prompts give the same replies, so a program run bare and run watched
must give identical outputs.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dspy.utils import DummyLM
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

# -- DSPy ------------------------------------------------------------------------------------------------

_HEADER = re.compile(r"\[\[ ## (\w+) ## \]\]")
_RESPOND = re.compile(r"\n*Respond with the corresponding output fields.*\Z", re.S)


@dataclass(frozen=True)
class DSPyPrompt:
    """What a ChatAdapter prompt asks: instructions, input values, output field names, demo count."""

    instructions: str
    inputs: dict[str, str]
    outputs: tuple[str, ...]
    demos: int


def _fields(text: str) -> dict[str, str]:
    parts = _HEADER.split(_RESPOND.sub("", text))
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def parse_prompt(messages: Sequence[dict[str, Any]]) -> DSPyPrompt:
    system = (messages[0].get("content") or "") if messages and messages[0].get("role") == "system" else ""
    block = system.split("Your output fields are:", 1)[-1].split("All interactions", 1)[0]
    outputs = tuple(re.findall(r"^\d+\. `(\w+)`", block, re.M))
    instructions = system.split("your objective is:", 1)[-1].strip() if "your objective is:" in system else ""
    demos = max(0, (len(messages) - 2) // 2)
    return DSPyPrompt(instructions, _fields(messages[-1].get("content") or ""), outputs, demos)


class RuleLM(DummyLM):
    """``DummyLM`` whose answer is ``rule(prompt) -> {field: value}`` (extra fields are dropped)."""

    def __init__(self, rule: Callable[[DSPyPrompt], dict[str, Any]]) -> None:
        super().__init__([], follow_examples=True)
        self.rule = rule
        self.calls = 0
        self._lock = threading.Lock()

    def _use_example(self, messages: list[dict[str, Any]]) -> str:
        with self._lock:
            self.calls += 1
        prompt = parse_prompt(messages)
        answer = self.rule(prompt)
        wanted = {k: v for k, v in answer.items() if k in prompt.outputs} if prompt.outputs else answer
        for name in prompt.outputs:  # a field the rule does not know (an optimizer's own prompts)
            wanted.setdefault(name, f"{name.replace('_', ' ')}.")
        return self._format_answer_fields({k: wanted[k] for k in prompt.outputs} if prompt.outputs else wanted)


# -- LangChain ---------------------------------------------------------------------------------------------

_ids = itertools.count(1)


def tool_call(name: str, **args: Any) -> dict[str, Any]:
    """One tool call of an ``AIMessage`` (ids are unique across the process, as a provider's are)."""
    return {"name": name, "args": args, "id": f"call_{next(_ids)}", "type": "tool_call"}


def tool_names(tools: Sequence[Any] | None) -> list[str]:
    """The names of the tools bound to a call (OpenAI-format schemas)."""
    return [t["function"]["name"] for t in tools or () if isinstance(t, dict) and "function" in t]


Rule = Callable[[list[BaseMessage], list[str]], AIMessage | str]


class RuleChatModel(GenericFakeChatModel):
    """``GenericFakeChatModel`` whose next reply is ``rule(messages, bound_tool_names)``."""

    rule: Any = None
    model_name: str = "fake-rule-model"
    calls: int = 0
    emitted: list[str] = Field(default_factory=list)  # the names of the tool calls this model made, in order

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Runnable:
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> Any:
        self.calls += 1
        reply = self.rule(messages, tool_names(kwargs.get("tools")))
        if isinstance(reply, AIMessage):
            self.emitted.extend(c["name"] for c in reply.tool_calls)
        self.messages = iter([reply])
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def rule_model(rule: Rule, name: str = "fake-rule-model") -> RuleChatModel:
    return RuleChatModel(messages=iter(()), rule=rule, model_name=name)


def text_of(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)


def last_human(messages: Sequence[BaseMessage]) -> str:
    return next((text_of(m) for m in reversed(messages) if m.type == "human"), "")


def system_text(messages: Sequence[BaseMessage]) -> str:
    return " ".join(text_of(m) for m in messages if m.type == "system")
