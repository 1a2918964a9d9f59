"""The scripted language model as a DSPy LM: ``ScriptedLM``, a ``dspy.BaseLM`` for demos and tests.

>>> import dspy
>>> from driftwatch.demo.scripted_dspy import ScriptedLM
>>> dspy.configure(lm=ScriptedLM(seed=0))
>>> dspy.Predict("question -> answer")(question="What is 12 + 7?").answer
'The answer is 19.'

It reads the prompt DSPy's ``ChatAdapter`` or ``JSONAdapter`` renders — the signature's instructions,
output fields and their types, the few-shot demos, the inputs, a ReAct agent's tools and trajectory —
hands it to :class:`driftwatch.demo.scripted.ScriptedModel`, and renders the reply back in the adapter's
format, so any program runs on it: ``Predict``, ``ChainOfThought``, ``ReAct``, and the optimizers
(MIPROv2 and COPRO get their instruction proposals from it). Token usage is reported on every
response. On DSPy 3.4 it is a canonical custom engine (``complete(Request) -> Response``), so no
deprecated interface is touched; on DSPy 3.3 (no engines) its ``forward()`` returns the OpenAI-shaped
response. Its responses are never cached (repeated calls form a distribution).
"""

from __future__ import annotations

import ast
import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

import dspy
from dspy.dsp.utils.utils import dotdict

try:  # DSPy 3.4: a canonical custom engine answers
    from dspy.lm15 import Message, Response, TextPart, Usage
except ImportError:  # DSPy 3.3: ScriptedLM.forward answers (the legacy OpenAI-shaped contract)
    Message = Response = TextPart = Usage = None  # type: ignore[assignment,misc]  # checked in _attach

from driftwatch.demo.scripted import Prompt, ScriptedModel, Tool, count_tokens

__all__ = ["ScriptedLM"]

_FIELD_LINE = re.compile(r"^\d+\. `(\w+)` \((.*)\):", re.M)
_BLOCK = re.compile(r"\[\[ ## (\w+) ## \]\]\n?(.*?)(?=\n*\[\[ ## \w+ ## \]\]|\Z)", re.S)
_OBJECTIVE = "your objective is:"
_MAIN_NAMES = ("answer", "response", "output", "result", "completion", "text")
_PREFIXES = ("Answer:", "Final answer:", "Short answer:", "Detailed answer:")
_REACT_TOOL = re.compile(
    r"\(\d+\) (\w+), whose description is <desc>(.*?)</desc>\.?\s*It takes arguments (\{.*?\})\.?$", re.S | re.M)


class ScriptedLM(dspy.BaseLM):
    """A deterministic, offline DSPy LM whose behaviour follows its prompt (see :mod:`driftwatch.demo.scripted`).

    ``seed`` fixes the randomness; ``knowledge`` maps phrases to right answers (arithmetic is built
    in); ``behaviour`` shares one :class:`ScriptedModel` between several LMs.
    """

    def __init__(self, seed: int = 0, *, knowledge: Mapping[str, str] | None = None,
                 behaviour: ScriptedModel | None = None, model: str = "scripted/driftwatch",
                 **_state: Any) -> None:  # ``_state``: what BaseLM.dump_state adds (model_type, cache …)
        super().__init__(model=model, model_type="chat", temperature=None, max_tokens=None, cache=False)
        self.behaviour = behaviour if behaviour is not None else ScriptedModel(seed, knowledge=knowledge)
        self._attach()

    def dump_state(self) -> dict[str, Any]:
        """DSPy's LM state plus the seed and knowledge, so a saved program reloads with the same model."""
        return {**super().dump_state(), "seed": self.behaviour.seed, "knowledge": dict(self.behaviour.knowledge)}

    def _attach(self) -> None:
        if Response is None:  # DSPy 3.3: forward() answers
            return
        self._engine_spec = _Engine(self)
        self._async_engine_spec = _AsyncEngine(self._engine_spec)
        self._cache_responses = False

    def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        """DSPy 3.3's LM contract (3.4 calls the engine instead): an OpenAI-shaped response, ``n`` choices."""
        messages = messages or [{"role": "user", "content": prompt}]
        system = "".join(_content(m) for m in messages if m.get("role") == "system")
        turns = [(str(m.get("role")), _content(m)) for m in messages if m.get("role") != "system"]
        choices, n_in, n_out = [], 0, 0
        for _ in range(int(kwargs.get("n") or self.kwargs.get("n") or 1)):
            text, tokens_in, tokens_out = self.reply(system, turns)
            choices.append(dotdict(message=dotdict(content=text, tool_calls=None), finish_reason="stop"))
            n_in, n_out = n_in + tokens_in, n_out + tokens_out
        return dotdict(choices=choices, model=self.model,
                       usage=dotdict(prompt_tokens=n_in, completion_tokens=n_out, total_tokens=n_in + n_out))

    async def aforward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        return self.forward(prompt, messages, **kwargs)

    def reply(self, system: str, turns: list[tuple[str, str]]) -> tuple[str, int, int]:
        """The assistant text for a conversation, with its input and output token counts."""
        text = self.render(system, turns)
        n_in = count_tokens(system) + sum(count_tokens(t) for _, t in turns)
        return text, n_in, count_tokens(text)

    def copy(self, **kwargs: Any) -> ScriptedLM:
        copied = super().copy(**kwargs)
        copied._attach()
        return copied

    def __deepcopy__(self, memo: dict[int, Any]) -> ScriptedLM:
        # optimizers deep-copy programs (and any LM set on a predictor): share the behaviour model
        return self.copy()

    # -- prompt in, text out -------------------------------------------------------------------
    def render(self, system: str, turns: list[tuple[str, str]]) -> str:
        """The assistant text for a DSPy-rendered conversation (``turns``: ``(role, text)``)."""
        outputs = [(m.group(1), m.group(2).strip()) for m in _FIELD_LINE.finditer(_section(system))]
        instructions = system.split(_OBJECTIVE, 1)[1].strip() if _OBJECTIVE in system else system
        users = [t for r, t in turns if r == "user"]
        request = _strip_request(users[-1]) if users else ""
        demos = []
        for (r1, t1), (r2, t2) in itertools.pairwise(turns):
            if r1 == "user" and r2 == "assistant":
                demos.append((_strip_request(t1), _main_value(t2, outputs)))
        tools = _react_tools(instructions)
        raw = users[-1] if users else ""
        observations = tuple(v for k, v in _blocks(raw).items()
                             if k.startswith("observation_") and v != "Completed.")
        prompt = Prompt(instructions=instructions, text=request, demos=tuple(demos), tools=tools,
                        observations=observations)
        values = self._fill(prompt, outputs)
        if "Outputs will be a JSON object" in system:
            return json.dumps(values)
        parts = [f"[[ ## {name} ## ]]\n{_as_text(value)}" for name, value in values.items()]
        return "\n\n".join([*parts, "[[ ## completed ## ]]"])

    def _fill(self, prompt: Prompt, outputs: list[tuple[str, str]]) -> dict[str, Any]:
        model = self.behaviour
        str_fields = [n for n, t in outputs if t == "str" and "instruction" not in n and "prefix" not in n]
        main = next((n for n in str_fields if n in _MAIN_NAMES), str_fields[-1] if str_fields else None)
        needs_reply = main is not None or any(t.startswith("Literal[") for _, t in outputs)
        reply = model.respond(prompt) if needs_reply else None
        chosen = reply.tool_call if reply is not None else None
        values: dict[str, Any] = {}
        for name, typ in outputs:
            if "instruction" in name:
                values[name] = model.propose_instruction(prompt)
            elif "prefix" in name:  # COPRO's proposed_prefix_for_output_field
                values[name] = _PREFIXES[len(prompt.text) % len(_PREFIXES)]
            elif name == main:
                values[name] = reply.text if reply is not None and reply.text else _short(prompt)
            elif typ == "str":
                values[name] = _short(prompt)
            elif typ.startswith("Literal["):
                options = _literal(typ)
                if "finish" in options and (prompt.observations or chosen is None):
                    values[name] = "finish"
                elif chosen is not None and chosen.name in options:
                    values[name] = chosen.name
                else:
                    values[name] = options[0] if options else ""
            elif typ == "bool":
                values[name] = True
            elif typ in ("int", "float"):
                nums = re.findall(r"-?\d+(?:\.\d+)?", reply.text if reply is not None else "")
                values[name] = (float(nums[-1]) if typ == "float" else int(float(nums[-1]))) if nums else 0
            elif typ.startswith("dict"):
                values[name] = dict(chosen.args) if chosen is not None and values.get("next_tool_name") != "finish" \
                    else {}
            elif typ.startswith("list"):
                values[name] = []
            else:
                values[name] = _short(prompt)
        return values


def _section(system: str) -> str:
    start = system.find("Your output fields are:")
    end = system.find("All interactions will be structured")
    return system[start:end] if start >= 0 else ""


def _blocks(text: str) -> dict[str, str]:
    text = text.split("\n\nRespond with", 1)[0]  # the adapter's closing directions name the output fields
    return {m.group(1): m.group(2).strip() for m in _BLOCK.finditer(text)}


def _strip_request(text: str) -> str:
    """The input field values of a rendered user turn (without the adapter's closing directions)."""
    blocks = _blocks(text)
    if not blocks:
        return text
    kept = []
    for name, value in blocks.items():
        if not value or name.startswith(("thought_", "tool_name_", "tool_args_", "observation_")):
            continue
        kept.append(value if name in ("question", "query", "input", "text") else f"{name}: {value}")
    return "\n".join(kept)


def _main_value(text: str, outputs: list[tuple[str, str]]) -> str:
    blocks = _blocks(text)
    if not blocks:
        try:
            blocks = {k: str(v) for k, v in json.loads(text).items()}
        except (ValueError, AttributeError):
            return text
    for name in (*_MAIN_NAMES, *(n for n, _ in outputs)):
        if name in blocks:
            return blocks[name]
    return text


def _react_tools(instructions: str) -> tuple[Tool, ...]:
    tools = []
    for m in _REACT_TOOL.finditer(instructions):
        name, desc, spec = m.group(1), m.group(2).strip(), m.group(3)
        if name == "finish":
            continue
        try:
            params = {k: (v.get("type", "string") if isinstance(v, dict) else "string")
                      for k, v in ast.literal_eval(spec).items()}
        except (ValueError, SyntaxError, AttributeError):
            params = {}
        tools.append(Tool(name, desc, params))
    return tuple(tools)


def _literal(typ: str) -> list[str]:
    try:
        values = ast.literal_eval("[" + typ[len("Literal["):-1] + "]")
    except (ValueError, SyntaxError):
        return []
    return [str(v) for v in values]


def _short(prompt: Prompt) -> str:
    words = prompt.text.split()
    return "Considering " + " ".join(words[:8]) + "." if words else "Considering the request."


def _as_text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _text_of(message: Message) -> str:
    return "".join(getattr(p, "text", "") or "" for p in message.parts)


def _content(message: dict[str, Any]) -> str:
    """A DSPy 3.3 chat message's text (its content is a string, or a list of parts for media)."""
    content = message.get("content") or ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


class _Engine:
    """DSPy 3.4's canonical custom-engine contract: ``complete(Request) -> Response``."""

    def __init__(self, owner: ScriptedLM) -> None:
        self.owner = owner

    def complete(self, request: Any) -> Response:
        system = request.system if isinstance(request.system, str) else \
            "".join(getattr(p, "text", "") for p in (request.system or ()))
        turns = [(str(m.role), _text_of(m)) for m in request.messages]
        turns = [(r.rsplit(".", 1)[-1].lower(), t) for r, t in turns]
        text, n_in, n_out = self.owner.reply(system, turns)
        return Response(id=None, model=self.owner.model, message=Message.assistant([TextPart(text)]),
                        finish_reason="stop", usage=Usage(input_tokens=n_in, output_tokens=n_out,
                                                          total_tokens=n_in + n_out))

    def close(self) -> None:
        pass


class _AsyncEngine:
    def __init__(self, sync: _Engine) -> None:
        self.sync = sync

    async def complete(self, request: Any) -> Response:
        return self.sync.complete(request)

    async def aclose(self) -> None:
        pass
