"""Programs, a test LM, data and a metric for the DSPy integration tests (imported by them and conftest).

There is no hosted LLM here, so the LM is DSPy's own ``DummyLM`` test double, subclassed so that its
answer is computed from the prompt it receives (``DummyLM`` alone answers from a fixed script):
instructions that ask for concision, or few-shot demos, make the answer right. That gives the
optimizers something real to optimize; everything else (programs, adapters, optimizers, Evaluate,
threads) is DSPy itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import dspy
from dspy.dsp.utils.utils import dotdict
from dspy.utils import DummyLM


class Pipeline(dspy.Module):
    """Three predictors: Predict → ChainOfThought → Predict (the program of the benchmark)."""

    def __init__(self) -> None:
        super().__init__()
        self.gen_query = dspy.Predict("question -> query")
        self.answer = dspy.ChainOfThought("question, query -> answer")
        self.summarize = dspy.Predict("answer -> summary")

    def forward(self, question: str) -> dspy.Prediction:
        query = self.gen_query(question=question).query
        answer = self.answer(question=question, query=query).answer
        return self.summarize(answer=answer)


class TwoStep(dspy.Module):
    """Two plain predictors; its answer is the second one's."""

    def __init__(self) -> None:
        super().__init__()
        self.gen_query = dspy.Predict("question -> query")
        self.respond = dspy.Predict("question, query -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        query = self.gen_query(question=question).query
        return self.respond(question=question, query=query)

    async def aforward(self, question: str) -> dspy.Prediction:
        query = (await self.gen_query.acall(question=question)).query
        return await self.respond.acall(question=question, query=query)


def good_prompt(messages: list[dict[str, Any]]) -> bool:
    """The prompt the test LM rewards: concise instructions, or any few-shot demo."""
    system = (messages[0].get("content") or "").lower() if messages else ""
    return "concise" in system or len(messages) > 2


def respond(messages: list[dict[str, Any]], lucky: bool = False) -> dict[str, Any]:
    """Every output field any program or optimizer prompt here asks for (ChatAdapter ignores extra ones).

    ``lucky``: some resampled rollouts (copies of the LM with a ``rollout_id``, as SIMBA makes) are
    right by chance, so that sampled trajectories differ.
    """
    answer = "Paris" if lucky or good_prompt(messages) else "Lyon"
    return {
        "query": "capital of France", "reasoning": "It is well known.", "answer": answer, "summary": answer,
        "proposed_instruction": "Be concise.", "proposed_prefix_for_output_field": "Answer:",
        "program_description": "Answers questions.", "module_description": "Writes a query.",
        "observations": "Questions about capitals.", "discussion": "The answer was wrong.",
        "module_advice": {"gen_query": "Be concise.", "respond": "Be concise.", "answer.predict": "Be concise.",
                          "summarize": "Be concise."},
    }


try:  # DSPy 3.4: DummyLM runs on an engine, which reports zero usage; this one reports some
    from dspy.clients.engines.dummy_engine import AsyncDummyEngine, DummyEngine
except ImportError:  # DSPy 3.3: DummyLM.forward returns the response, with zero usage (PromptLM.forward)
    AsyncDummyEngine = DummyEngine = None


def _usage(messages: list[dict[str, Any]]) -> tuple[int, int]:
    """(input, output) tokens the test LM reports for one completion: a quarter of the prompt's characters, 5."""
    return sum(len(m.get("content") or "") for m in messages) // 4, 5


if DummyEngine is not None:
    class _UsageEngine(DummyEngine):
        def _complete_messages(self, messages: list[dict[str, Any]]) -> Any:
            response = super()._complete_messages(messages)
            given, out = _usage(messages)
            usage = dataclasses.replace(response.usage, input_tokens=given, output_tokens=out,
                                        total_tokens=given + out)
            return dataclasses.replace(response, usage=usage)


class PromptLM(DummyLM):
    """``DummyLM`` answering from the prompt (``respond(messages) -> fields``); reports token usage."""

    def __init__(self, answer: Callable[..., dict[str, Any]] = respond, **kwargs: Any) -> None:
        super().__init__([], follow_examples=True, **kwargs)
        self.answer_fn = answer
        if DummyEngine is not None:
            self._engine_spec = _UsageEngine(self)
            self._async_engine_spec = AsyncDummyEngine(self._engine_spec)
        self.calls = 0

    def _use_example(self, messages: list[dict[str, Any]]) -> str:
        self.calls += 1
        rollout = self.kwargs.get("rollout_id")
        lucky = isinstance(rollout, int) and rollout % 2 == 1
        return self._format_answer_fields(self.answer_fn(messages, lucky=lucky))

    if DummyEngine is None:  # DSPy 3.3: the LM's forward() returns the provider-shaped response itself
        def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
            response = super().forward(prompt=prompt, messages=messages, **kwargs)
            given, out = _usage(messages or [{"role": "user", "content": prompt}])
            n = len(response.choices)
            response.usage = dotdict(prompt_tokens=given * n, completion_tokens=out * n, total_tokens=(given + out) * n)
            return response


def trainset(n: int = 4) -> list[dspy.Example]:
    return [dspy.Example(question=f"What is the capital of France? ({i})", answer="Paris", summary="Paris")
            .with_inputs("question") for i in range(n)]


def metric(example: Any, prediction: Any, trace: Any = None, *args: Any) -> float:
    """1.0 when the program's answer is right."""
    value = getattr(prediction, "answer", None) or getattr(prediction, "summary", None)
    return 1.0 if value == example.answer else 0.0
