"""The per-call path of the patched ``Module.__call__``: unmarked modules pass straight through (what the hook
skips is only what cannot be watched), and the tokens a call spent are summed once, at its end."""

from __future__ import annotations

import asyncio
import functools
import sys
from typing import Any

import dspy
import pytest
from dspy.primitives.module import Module
from dspy.utils.callback import BaseCallback

import driftwatch
from driftwatch.integrations import dspy as dw_dspy
from driftwatch.integrations.dspy import _calls, _watch
from driftwatch.testing import Captured
from tests.helpers.dspy_programs import Pipeline, PromptLM, TwoStep

QUESTION = "What is the capital of France?"


@pytest.fixture
def targets(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The modules the hook looked at in full (``call_target``), in order; no class marked so far (as in a
    process that never watched a class: the flags are process-wide, so another test may have set them)."""
    monkeypatch.setattr(_watch.Cover, "classes", False)
    monkeypatch.setattr(_watch.Cover, "any", _watch.Cover.all)
    seen: list[Any] = []
    original = _calls.call_target

    def spy(module: Any) -> str | None:
        seen.append(module)
        return original(module)

    monkeypatch.setattr(_calls, "call_target", spy)
    return seen


def test_only_the_marked_program_is_looked_at_in_full(cap: Captured, lm: PromptLM, targets: list[Any]) -> None:
    """A watched program's predictors, and unwatched programs, go straight to DSPy: the full look (agent, nesting,
    optimizer trial) is for the marked program only; its call is recorded with its tokens."""
    program = driftwatch.watch(Pipeline(), agent="qa")
    targets.clear()  # watch() itself looked at nothing through the hook; keep the count to the calls
    assert program(question=QUESTION).summary == "Lyon"
    assert targets == [program]
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 1
    assert cap.value("driftwatch_tokens_total", agent="qa", type="output") == 15  # 3 LM calls x 5
    TwoStep()(question=QUESTION)
    assert targets == [program]
    assert cap.value("driftwatch_calls_total", agent="TwoStep", status="ok") == 0


def test_instrument_looks_at_every_module(cap: Captured, lm: PromptLM, targets: list[Any]) -> None:
    """With instrument() every module can be a program: each call gets the full look (the outer one is recorded,
    the nested ones are not)."""
    dw_dspy.instrument()
    program = TwoStep()
    program(question=QUESTION)
    assert targets[0] is program and len(targets) == 3  # the program and its two predictors
    assert cap.value("driftwatch_calls_total", agent="TwoStep", status="ok") == 1
    dw_dspy.uninstrument()
    targets.clear()
    TwoStep()(question=QUESTION)  # the patch is gone: nothing looked at, nothing recorded
    assert targets == []
    assert cap.value("driftwatch_calls_total", agent="TwoStep", status="ok") == 1


def test_marking_a_class_makes_its_unmarked_instances_watched(cap: Captured, lm: PromptLM,
                                                              targets: list[Any]) -> None:
    """An instance of a watched class has no mark of its own: watching the class turns the full look on."""

    class Marked(TwoStep):
        pass

    assert not _watch.Cover.any
    driftwatch.watch(Marked, agent="marked")
    assert _watch.Cover.any
    program = Marked()
    program(question=QUESTION)
    assert targets[0] is program
    assert cap.value("driftwatch_calls_total", agent="marked", status="ok") == 1
    dw_dspy.uninstrument()  # the class keeps its mark, so the full look stays on for its instances
    assert _watch.Cover.any and not _watch.Cover.all


def test_watching_an_optimizer_class_leaves_modules_to_their_marks(targets: list[Any]) -> None:
    """A marked optimizer class marks no module: the fast path stays (positive control: a module class flips it)."""
    driftwatch.watch(dspy.BootstrapFewShot, agent="opt")
    try:
        assert not _watch.Cover.any
        driftwatch.watch(type("Marked", (TwoStep,), {}), agent="marked")
        assert _watch.Cover.any
    finally:
        del dspy.BootstrapFewShot._driftwatch_agent


@pytest.mark.parametrize(("usage", "expected"), [
    ({"m": {"prompt_tokens": 3, "completion_tokens": 4}, "n": {"prompt_tokens": 1, "completion_tokens": 2}},
     (4, 6)),
    ({"m": {"input_tokens": 3, "output_tokens": 4}}, (3, 4)),  # the Responses API's names
    ({"m": {"prompt_tokens": 3, "input_tokens": 30, "completion_tokens": 4}}, (3, 4)),  # the chat names first
    ({"m": {"prompt_tokens": 3}}, (3, 0)),
    ({"m": {"total_tokens": 7}}, (None, None)),  # nothing to split: no figure rather than a zero
    ({}, (None, None)),
    (None, (None, None)),
])
def test_tokens_are_summed_from_the_usage_entries(usage: Any, expected: tuple[int | None, int | None]) -> None:
    assert _calls.tokens(usage) == expected


def test_a_usage_sum_counts_each_entry_once_and_keeps_its_total() -> None:
    """Entries added during a call (and by a nested dspy.track_usage() block) count once each."""
    counter = _calls.UsageSum()
    counter.add_usage("m", {"prompt_tokens": 2, "completion_tokens": 5})
    counter.add_usage("m", {})  # a cache hit's empty usage: ignored
    assert counter.totals() == (2, 5)
    counter.usage_data["m"].append({"prompt_tokens": 1, "completion_tokens": 1})
    assert counter.totals() == (3, 6)
    assert counter.totals() == (3, 6)


class Depth(dspy.Module):
    """A program whose forward notes how deep the stack is where DSPy reads ``forward`` (DSPy 3.3 walks it)."""

    def __init__(self) -> None:
        super().__init__()
        self.respond = dspy.Predict("question -> answer")
        self.depths: list[int] = []

    def forward(self, question: str) -> Any:
        frame, depth = sys._getframe(), 0
        while frame is not None:
            frame, depth = frame.f_back, depth + 1
        self.depths.append(depth)
        return self.respond(question=question)


def test_a_watched_call_has_as_many_frames_as_a_bare_one(cap: Captured, lm: PromptLM) -> None:
    """With no callback active the hook takes the place of DSPy's with_callbacks wrapper: no extra frame for
    DSPy 3.3's stack walks to read (positive control: the wrapper's own frame when a callback is active)."""
    bare = Depth()
    bare(question=QUESTION)
    watched = driftwatch.watch(Depth(), agent="qa")
    watched(question=QUESTION)
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 1
    assert watched.depths == bare.depths

    class Noting(BaseCallback):
        def __init__(self) -> None:
            self.modules: list[str] = []

        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            self.modules.append(type(instance).__name__)

    noting = Noting()
    with dspy.context(callbacks=[noting]):
        watched(question=QUESTION)
        bare(question=QUESTION)
    assert noting.modules == ["Depth", "Predict"] * 2  # the callbacks still see every module call
    assert watched.depths[-1] == bare.depths[-1] == bare.depths[0] + 1  # with_callbacks' frame, in both
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 2


def test_a_wrapper_of_another_tool_under_the_hook_is_never_skipped(cap: Captured, lm: PromptLM,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Only DSPy's own with_callbacks wrapper is stepped over: another instrumentor's, patched in before
    driftwatch, runs for every module call (positive control: DSPy's wrapper is recognised)."""
    assert _calls.unwrapped(Module.__dict__["__call__"]) is not None
    assert _calls.unwrapped(Module.__dict__["acall"]) is not None
    seen: list[str] = []
    original = Module.__dict__["__call__"]

    @functools.wraps(original)
    def other(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(type(self).__name__)
        return original(self, *args, **kwargs)

    assert _calls.unwrapped(other) is None
    monkeypatch.setattr(Module, "__call__", other)
    program = driftwatch.watch(TwoStep(), agent="qa")
    program(question=QUESTION)
    assert seen == ["TwoStep", "Predict", "Predict"]
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 1
    dw_dspy.uninstrument()
    assert Module.__dict__["__call__"] is other


def test_async_calls_keep_their_callbacks(cap: Captured, lm: PromptLM) -> None:
    """acall: recorded; with a callback active DSPy's wrapper runs it (positive control: none without one)."""

    class Counting(BaseCallback):
        starts = 0

        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            Counting.starts += 1

    program = driftwatch.watch(TwoStep(), agent="qa")
    asyncio.run(program.acall(question=QUESTION))
    assert Counting.starts == 0
    with dspy.context(callbacks=[Counting()]):
        asyncio.run(program.acall(question=QUESTION))
    assert Counting.starts == 3  # the program and its two predictors
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 2


def test_callbacks_from_every_place_dspy_reads_them_still_run(cap: Captured, lm: PromptLM) -> None:
    """The hook reads "is a callback active" without ``dspy.settings.get``: callbacks configured globally, in a
    ``dspy.context`` and on one instance (``Module(callbacks=...)``) each still run, where DSPy runs them."""

    class Noting(BaseCallback):
        def __init__(self) -> None:
            self.modules: list[str] = []

        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            self.modules.append(type(instance).__name__)

    program = driftwatch.watch(TwoStep(), agent="qa")
    own = Noting()
    program.gen_query.callbacks = [own]  # one predictor's own callbacks
    program(question=QUESTION)
    assert own.modules == ["Predict"]
    configured = Noting()
    dspy.configure(callbacks=[configured])
    try:
        program(question=QUESTION)
    finally:
        dspy.configure(callbacks=[])
    assert configured.modules == ["TwoStep", "Predict", "Predict"]
    assert own.modules == ["Predict", "Predict"]
    program(question=QUESTION)
    assert configured.modules == ["TwoStep", "Predict", "Predict"]
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 3
