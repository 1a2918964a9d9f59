"""A scripted language model: deterministic, offline, and sensitive to its prompt.

driftwatch's demo and tests need a model whose *behaviour* follows its prompt the way a real one's
does, so that self-tuning (an optimizer rewriting instructions, an agent rewriting its own system
prompt) produces real behavioural drift instead of a canned curve. This module is that model, with
no framework imports; :mod:`driftwatch.demo.scripted_dspy` (a ``dspy.BaseLM``) and
:mod:`driftwatch.demo.scripted_langchain` (a LangChain ``BaseChatModel`` with tool calling)
turn framework prompts into a :class:`Prompt` and a :class:`Reply` back into framework objects.

What the prompt does (see :func:`traits`, the single place these rules live):

- **detail** — instructions that ask for detail ("detailed", "explain", "step by step", "thorough" …)
  make answers longer; brevity cues ("brief", "concise", "one sentence" …) make them shorter. Each
  net cue multiplies the expected number of sentences by :data:`DETAIL_FACTOR`.
- **caution** — cautious wording ("careful", "refuse", "decline", "unsafe", "policy" …) raises the
  refusal rate; a sensitive request (passwords, weapons, medical dosage …) raises it further.
- **demos** — few-shot examples steer the output format (JSON, bullet list or prose: the demos'
  majority wins over the instructions) and pull the answer length towards theirs.
- **tools** — each tool is scored by the overlap of its name and description with the request
  (and a bonus when the instructions name it); the choice is sampled from a softmax of the scores,
  so rewriting a tool description or the system prompt shifts the tool mix.
- **accuracy** — arithmetic questions ("What is 12 + 7?") and questions in ``knowledge`` get a right
  answer with a probability that reasoning cues and demos raise: an optimizer scoring correctness
  has something real to optimize, and what it picks changes length, refusals and format.

Randomness is seeded: the same model (same ``seed``) given the same sequence of prompts answers the
same way every time, yet repeated calls on one prompt form a distribution (drift detection needs
variation). Token usage is reported as ``ceil(chars / 4)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DETAIL_FACTOR",
    "REFUSAL_TEXTS",
    "Prompt",
    "Reply",
    "ScriptedModel",
    "Tool",
    "ToolCall",
    "Traits",
    "count_tokens",
    "traits",
]

#: multiplier of the expected sentence count per net detail cue (negative for brevity cues)
DETAIL_FACTOR = 1.8
BASE_SENTENCES = 2.0
BASE_REFUSAL = 0.02
CAUTION_STEP = 0.12
SENSITIVE_FACTOR = 3.0
MAX_REFUSAL = 0.95

_DETAIL_CUES = ("detail", "explain", "step by step", "step-by-step", "thorough", "elaborate", "comprehensive",
                "in depth", "in-depth", "justify", "reasoning", "walk through", "show your work")
_BREVITY_CUES = ("brief", "concise", "short", "one sentence", "single sentence", "terse", "succinct",
                 "no explanation", "just the answer", "only the answer")
_REASONING_CUES = ("step by step", "step-by-step", "reason", "show your work", "think", "check your")
_CAUTION_CUES = ("careful", "cautious", "caution", "refuse", "decline", "unsafe", "harm", "policy", "sensitive",
                 "if unsure", "if you are not sure", "do not guess", "never guess", "safety", "risky")
_SENSITIVE = ("password", "weapon", "explosive", "hack", "dosage", "overdose", "bypass", "steal", "malware",
              "poison", "credit card")
_FORMAT_CUES = (("answer in json", "json"), ("respond in json", "json"), ("as a json object", "json"),
                ("reply in json", "json"), ("bullet", "bullets"), ("list of points", "bullets"))

#: what a refusal looks like (a phrase any refusal detector knows)
REFUSAL_TEXTS = (
    "I'm sorry, but I can't help with that.",
    "I cannot assist with that request.",
    "I'm sorry, I can't answer that safely.",
)

_WORD = re.compile(r"[a-z][a-z0-9_]+")
_STOP_WORDS = """a an and are as at be by can do does for from has have how i if in is it its me my of on or
please that the their them then there these this to use was what when where which who why will with you your
question answer tool"""
_STOP = frozenset(_STOP_WORDS.split())
_ARITH = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/x×])\s*(-?\d+(?:\.\d+)?)")

_FILLERS = (
    "This concerns {topic}.",
    "The key point about {topic} is {answer}.",
    "Looking at {topic} closely, the result is {answer}.",
    "One way to see it is to consider {topic} on its own.",
    "Each part of {topic} leads to the same conclusion.",
    "Checking the reasoning again confirms {answer}.",
    "Other readings of {topic} do not change this.",
    "In short, {topic} gives {answer}.",
    "It helps to restate {topic} before answering.",
    "Nothing else about {topic} affects the outcome.",
)
_INSTRUCTION_POOL = (
    "Answer the question.",
    "Answer the question in one short sentence.",
    "Be concise and give just the answer.",
    "Think step by step, then answer.",
    "Explain your reasoning step by step and in detail before giving the answer.",
    "Give a thorough, detailed answer that walks through each step.",
    "Answer carefully; decline anything unsafe or that you are not sure about.",
    "Answer briefly, and refuse if the request could be unsafe.",
    "Reason through the problem and check your work, then answer concisely.",
    "Provide a comprehensive explanation, then state the answer.",
)


def count_tokens(text: str) -> int:
    """The model's token count of a text: ``ceil(chars / 4)`` (0 for an empty text)."""
    return (len(text) + 3) // 4


def _cues(text: str, cues: Sequence[str]) -> int:
    return sum(1 for c in cues if c in text)


def _stem(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP}


@dataclass(frozen=True)
class Tool:
    """A tool the model may call: its name, description and parameter names with JSON types."""

    name: str
    description: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolCall:
    """The model's decision to call a tool."""

    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Prompt:
    """What the model sees, independent of any framework.

    ``instructions`` is the system prompt (or a DSPy signature's instructions); ``text`` the request
    (the last user turn); ``demos`` few-shot ``(input, output)`` pairs; ``tools`` the tools it may
    call; ``observations`` the tool results it already received for this request.
    """

    instructions: str = ""
    text: str = ""
    demos: tuple[tuple[str, str], ...] = ()
    tools: tuple[Tool, ...] = ()
    observations: tuple[str, ...] = ()

    def size(self) -> int:
        """Characters of everything the model reads (for the input token count)."""
        n = len(self.instructions) + len(self.text) + sum(len(a) + len(b) for a, b in self.demos)
        n += sum(len(t.name) + len(t.description) for t in self.tools) + sum(len(o) for o in self.observations)
        return n


@dataclass(frozen=True)
class Traits:
    """The behaviour a prompt induces: expectations, before any sampling."""

    sentences: float  # expected number of sentences in a prose answer
    refusal: float  # probability of refusing
    format: str  # "prose" | "json" | "bullets"
    format_compliance: float  # probability that the answer really is in ``format``
    accuracy: float  # probability of a right answer where one is known
    tool_weights: dict[str, float]  # probability of each tool (and "" for no tool call)


def _format_of(text: str) -> str:
    s = text.strip()
    if s.startswith(("{", "[")):
        return "json"
    if s.startswith(("- ", "* ", "• ")):
        return "bullets"
    return "prose"


def traits(prompt: Prompt) -> Traits:
    """The behaviour ``prompt`` induces (the rules listed in the module docstring)."""
    instr = prompt.instructions.lower()
    detail = _cues(instr, _DETAIL_CUES) - _cues(instr, _BREVITY_CUES)
    sentences = BASE_SENTENCES * DETAIL_FACTOR ** detail
    if prompt.demos:
        demo_sentences = sum(max(1, len(re.findall(r"[.!?](?:\s|$)", out))) for _, out in prompt.demos)
        sentences = 0.5 * sentences + 0.5 * demo_sentences / len(prompt.demos)
    sentences = min(max(sentences, 1.0), 12.0)

    caution = _cues(instr, _CAUTION_CUES)
    refusal = 1.0 - (1.0 - BASE_REFUSAL) * (1.0 - CAUTION_STEP) ** caution
    if any(s in prompt.text.lower() for s in _SENSITIVE):
        refusal *= SENSITIVE_FACTOR
    refusal = min(refusal, MAX_REFUSAL)

    declared = next((fmt for cue, fmt in _FORMAT_CUES if cue in instr), "prose")
    fmt, compliance = declared, 0.85 if declared != "prose" else 1.0
    if prompt.demos:
        formats = [_format_of(out) for _, out in prompt.demos]
        majority = max(set(formats), key=lambda f: (formats.count(f), f == declared))
        fmt = majority
        compliance = 0.98 if majority == declared else 0.9

    accuracy = 0.55 + 0.15 * min(_cues(instr, _REASONING_CUES), 2) + 0.05 * min(len(prompt.demos), 4)
    accuracy -= 0.1 if _cues(instr, _BREVITY_CUES) and not _cues(instr, _REASONING_CUES) else 0.0
    accuracy = min(max(accuracy, 0.05), 0.98)

    weights: dict[str, float] = {}
    if prompt.tools and not prompt.observations:
        request = _words(prompt.text)
        scores = {}
        for tool in prompt.tools:
            described = _words(tool.name.replace("_", " ") + " " + tool.description)
            score = float(len(request & described))
            if tool.name.lower() in instr:
                score += 2.0
            scores[tool.name] = score
        best = max(scores.values())
        p_call = 0.95 if best > 0 else 0.3
        total = sum(math.exp(2.5 * s) for s in scores.values())
        weights = {name: p_call * math.exp(2.5 * s) / total for name, s in scores.items()}
        weights[""] = 1.0 - p_call
    return Traits(sentences, refusal, fmt, compliance, accuracy, weights)


@dataclass(frozen=True)
class Reply:
    """What the model answered, with the facts behind it (for tests and demos)."""

    text: str
    refused: bool = False
    tool_call: ToolCall | None = None
    format: str = "prose"
    correct: bool | None = None
    input_tokens: int = 0
    output_tokens: int = 0


def _solve(text: str, knowledge: Mapping[str, str]) -> str | None:
    low = text.lower()
    for key, value in knowledge.items():
        if key.lower() in low:
            return value
    m = _ARITH.search(text)
    if m is None:
        return None
    a, op, b = float(m.group(1)), m.group(2), float(m.group(3))
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op in "*x×":
        r = a * b
    else:
        if b == 0:
            return None
        r = a / b
    return str(int(r)) if r == int(r) else f"{r:.2f}"


def _wrong(answer: str, rng: random.Random) -> str:
    try:
        value = float(answer)
    except ValueError:
        return "unknown"
    wrong = value + rng.choice((-2, -1, 1, 2, 10))
    return str(int(wrong)) if wrong == int(wrong) else f"{wrong:.2f}"


class ScriptedModel:
    """The behaviour model: :meth:`respond` to a :class:`Prompt`, seeded, thread-safe.

    ``knowledge`` maps a phrase found in a request to its right answer (arithmetic is built in).
    """

    def __init__(self, seed: int = 0, *, knowledge: Mapping[str, str] | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"ScriptedModel(seed={seed!r}): expected an int")
        self.seed = seed
        self.knowledge = dict(knowledge or {})
        self.calls = 0
        self._lock = threading.Lock()

    def _rng(self, *parts: str) -> random.Random:
        with self._lock:
            n = self.calls
            self.calls += 1
        h = hashlib.blake2b(digest_size=8)
        h.update(f"{self.seed}\x00{n}".encode())
        for part in parts:
            h.update(b"\x00" + part.encode("utf-8", "replace"))
        return random.Random(int.from_bytes(h.digest(), "big"))

    def respond(self, prompt: Prompt, *, require_tool: bool = False) -> Reply:
        """Answer ``prompt``: maybe call a tool, maybe refuse, else answer in the induced format.

        ``require_tool``: a tool must be called (a forced ``tool_choice``) when any is offered.
        """
        rng = self._rng(prompt.instructions, prompt.text, *prompt.observations)
        tr = traits(prompt)
        in_tokens = (prompt.size() + 3) // 4
        if tr.tool_weights:
            names = [n for n in tr.tool_weights if n or not require_tool]
            choice = rng.choices(names, weights=[tr.tool_weights[n] for n in names])[0]
            if choice:
                tool = next(t for t in prompt.tools if t.name == choice)
                call = ToolCall(choice, _tool_args(tool, prompt.text))
                return Reply("", tool_call=call, format="tool", input_tokens=in_tokens)
        if rng.random() < tr.refusal:
            text = rng.choice(REFUSAL_TEXTS)
            return Reply(text, refused=True, input_tokens=in_tokens, output_tokens=count_tokens(text))
        known = _solve(prompt.text, self.knowledge)
        correct = None
        answer = None
        if known is not None:
            correct = rng.random() < tr.accuracy
            answer = known if correct else _wrong(known, rng)
        elif prompt.observations:
            answer = prompt.observations[-1].strip().splitlines()[0][:80] if prompt.observations[-1].strip() else ""
        n = max(1, round(math.exp(rng.gauss(math.log(tr.sentences), 0.35))))
        fmt = tr.format if rng.random() < tr.format_compliance else "prose"
        text = self._compose(prompt.text, answer, n, fmt, rng)
        return Reply(text, format=fmt, correct=correct, input_tokens=in_tokens, output_tokens=count_tokens(text))

    def answer_text(self, prompt: Prompt) -> str:
        """The short answer alone (a DSPy output field's value), or a refusal."""
        return self.respond(prompt).text

    def propose_instruction(self, prompt: Prompt) -> str:
        """A new instruction, as an instruction-proposing optimizer (MIPROv2, COPRO) asks for one."""
        rng = self._rng("propose", prompt.instructions, prompt.text)
        return rng.choice(_INSTRUCTION_POOL)

    @staticmethod
    def _compose(request: str, answer: str | None, n: int, fmt: str, rng: random.Random) -> str:
        words = [w for w in _WORD.findall(request.lower()) if w not in _STOP]
        topic = " ".join(words[:3]) or "the request"
        shown = answer if answer is not None else "as described"
        sentences = []
        if answer is not None:
            sentences.append(f"The answer is {answer}.")
        while len(sentences) < n:
            sentences.append(rng.choice(_FILLERS).format(topic=topic, answer=shown))
        if answer is not None and n > 1:  # long answers reason first, conclude last
            sentences = [*sentences[1:], sentences[0]]
        if fmt == "json":
            return json.dumps({"answer": shown, "explanation": " ".join(sentences)})
        if fmt == "bullets":
            return "\n".join(f"- {s}" for s in sentences)
        return " ".join(sentences)


def _tool_args(tool: Tool, text: str) -> dict[str, Any]:
    numbers = [float(x) if "." in x else int(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]
    m = _ARITH.search(text)
    args: dict[str, Any] = {}
    for name, typ in tool.parameters.items():
        if typ in ("number", "integer"):
            args[name] = numbers.pop(0) if numbers else 0
        elif name in ("expression", "expr") and m is not None:
            args[name] = m.group(0)
        else:
            args[name] = text
    return args
