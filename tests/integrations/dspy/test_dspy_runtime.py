"""Watched DSPy programs: baselines, runtime edits (each recorded once), calls, copies, threads, async."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import cloudpickle
import dspy
import pytest
from dspy.evaluate.evaluate import Evaluate
from dspy.primitives.module import Module
from dspy.teleprompt.teleprompt import Teleprompter

import driftwatch
from driftwatch.integrations import dspy as dw_dspy
from driftwatch.integrations.dspy import _patching, _watch
from driftwatch.revision import fingerprint
from driftwatch.testing import Captured
from tests.helpers.dspy_programs import Pipeline, PromptLM, TwoStep, metric, trainset

QUESTION = "What is the capital of France?"


class WithParts(dspy.Module):
    """A program whose forward uses only ``main``: the other parts can be added or removed while it serves."""

    def __init__(self) -> None:
        super().__init__()
        self.main = dspy.Predict("question -> answer")
        self.helpers = [dspy.Predict("answer -> critique")]
        self.aux = dspy.Predict("question -> topic")
        self.coder = dspy.Flex("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.main(question=question)


def _example() -> dspy.Example:
    return dspy.Example(question="Capital of Italy?", query="capital of Italy", answer="Rome", summary="Rome")


def _flex_rebind(p: Any) -> None:
    p.coder.load_state({"module_src": p.coder.module_src.replace("result = ", "result  = "), "lm": None})


# (name, program class, edit, expected component, expected kind)
EDITS: list[tuple[str, type, Callable[[Any], Any], str, str]] = [
    ("signature replaced", Pipeline,
     lambda p: setattr(p.gen_query, "signature", p.gen_query.signature.with_instructions("Be brief.")),
     "gen_query", "instructions"),
    ("field prefix replaced", Pipeline,
     lambda p: setattr(p.gen_query, "signature", p.gen_query.signature.with_updated_fields("query", prefix="Search:")),
     "gen_query", "fields"),
    ("instructions set in place", Pipeline,
     lambda p: setattr(p.answer.predict.signature, "instructions", "Think, then answer."),
     "answer.predict", "instructions"),
    ("demo appended", Pipeline, lambda p: p.summarize.demos.append(_example()), "summarize", "demos"),
    ("demos replaced", Pipeline, lambda p: setattr(p.gen_query, "demos", [_example()]), "gen_query", "demos"),
    ("config key added", Pipeline, lambda p: p.summarize.config.update(temperature=0.7), "summarize", "lm_config"),
    ("config replaced", Pipeline, lambda p: setattr(p.summarize, "config", {"max_tokens": 50}), "summarize",
     "lm_config"),
    ("lm set", Pipeline, lambda p: setattr(p.gen_query, "lm", PromptLM()), "gen_query", "lm_config"),
    ("predictor added", WithParts, lambda p: setattr(p, "extra", dspy.Predict("answer -> title")), "WithParts",
     "topology"),
    ("predictor removed", WithParts, lambda p: delattr(p, "aux"), "WithParts", "topology"),
    ("predictor appended to a list", WithParts, lambda p: p.helpers.append(dspy.Predict("answer -> score")),
     "WithParts", "topology"),
    ("Flex code rebound", WithParts, _flex_rebind, "coder", "code"),
]


@pytest.mark.parametrize(("name", "cls", "edit", "component", "kind"), EDITS, ids=[e[0] for e in EDITS])
def test_each_runtime_edit_is_recorded_once(cap: Captured, lm: PromptLM, name: str, cls: type,
                                            edit: Callable[[Any], Any], component: str, kind: str) -> None:
    """An edit made while the program serves is recorded exactly once, on the next call, source runtime."""
    program = driftwatch.watch(cls(), agent="qa")
    program(question=QUESTION)
    assert cap.changes() == []
    edit(program)
    for _ in range(3):
        program(question=QUESTION)
    changes = cap.changes()
    assert [(c.component, c.kind, c.source) for c in changes] == [(component, kind, "runtime")]
    assert changes[0].after_id == fingerprint(dw_dspy.program_state(program)[component])
    assert cap.value("driftwatch_changes_total", agent="qa", component=component, kind=kind, source="runtime") == 1


def test_same_key_config_value_edit_is_recorded_once(cap: Captured, lm: PromptLM) -> None:
    """Changing the value of an existing config key (same dict, same length) is still seen once."""
    program = Pipeline()
    program.summarize.config["temperature"] = 0.1
    driftwatch.watch(program, agent="qa")
    program(question=QUESTION)
    program.summarize.config["temperature"] = 0.9
    program(question=QUESTION)
    program(question=QUESTION)
    assert [(c.component, c.kind, c.paths) for c in cap.changes()] == [
        ("summarize", "lm_config", ("$.config.temperature",))]


def test_demo_item_replaced_in_place_is_recorded_once(cap: Captured, lm: PromptLM) -> None:
    """Replacing one demo inside the same list (same length) is seen once."""
    program = Pipeline()
    program.gen_query.demos = [_example()]
    driftwatch.watch(program, agent="qa")
    program(question=QUESTION)
    program.gen_query.demos[0] = dspy.Example(question="Capital of Spain?", query="capital of Spain")
    program(question=QUESTION)
    program(question=QUESTION)
    assert [(c.component, c.kind) for c in cap.changes()] == [("gen_query", "demos")]


IN_PLACE: list[tuple[str, Callable[[Any], Any], str, str]] = [
    ("last demo popped", lambda p: p.summarize.demos.pop(), "summarize", "demos"),
    ("demo appended to the first", lambda p: p.gen_query.demos.append(_example()), "gen_query", "demos"),
    ("config value replaced", lambda p: p.gen_query.config.update(stop=["y"]), "gen_query",
     "lm_config"),
    ("config key removed", lambda p: p.gen_query.config.pop("stop"), "gen_query", "lm_config"),
    ("instructions of the last set in place",
     lambda p: setattr(p.summarize.signature, "instructions", "Summarize tersely."), "summarize", "instructions"),
    ("demos cleared in place", lambda p: p.summarize.demos.clear(), "summarize", "demos"),
    ("sub-module replaced",
     lambda p: setattr(p, "answer", dspy.ChainOfThought(dspy.Signature("question, query -> answer", "In French."))),
     "answer.predict", "instructions"),
]


@pytest.mark.parametrize(("name", "edit", "component", "kind"), IN_PLACE, ids=[e[0] for e in IN_PLACE])
def test_in_place_edits_are_seen_on_the_fast_path(cap: Captured, lm: PromptLM, name: str,
                                                   edit: Callable[[Any], Any], component: str, kind: str) -> None:
    """The per-call check of an unchanged program takes its one-pass path (``ProgramWatch.fast``), which sees
    an edit in place at any position (first or last predictor, a list growing or shrinking) on the next call."""
    program = Pipeline()
    program.summarize.demos = [_example(), _example()]
    program.gen_query.config["stop"] = ["x"]
    driftwatch.watch(program, agent="qa")
    program(question=QUESTION)
    program(question=QUESTION)
    pw = _watch.existing_watch(program, "qa", cap.runtime)
    assert pw is not None and pw.fast is not None
    edit(program)
    program(question=QUESTION)
    changes = cap.changes()
    assert [(c.component, c.kind) for c in changes][:1] == [(component, kind)]
    program(question=QUESTION)
    assert cap.changes() == changes
    assert pw.fast is not None


def test_watch_returns_the_same_program_and_records_baselines(cap: Captured, lm: PromptLM) -> None:
    """watch() returns the very object; its components are baselines in the ledger, not changes."""
    program = Pipeline()
    watched = driftwatch.watch(program, agent="qa")
    assert watched is program and isinstance(watched, Pipeline)
    baselines = cap.ledger.changes(agent="qa", baselines=True)
    assert sorted(c.component for c in baselines) == ["Pipeline", "answer.predict", "gen_query", "summarize"]
    assert all(c.is_baseline for c in baselines)
    assert cap.changes() == []
    assert cap.value("driftwatch_changes_total", agent="qa", component="gen_query", kind="instructions",
                     source="runtime") == 0


def test_a_thousand_unchanged_calls_record_nothing(cap: Captured, lm: PromptLM,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """1000 calls of an unchanged program: 1000 calls counted, no change, state read in full only once."""
    reads: list[Any] = []
    original = _watch.predict_state
    monkeypatch.setattr(_watch, "predict_state", lambda p: reads.append(p) or original(p))
    program = driftwatch.watch(TwoStep(), agent="qa")
    for _ in range(1000):
        program(question=QUESTION)
    assert cap.changes() == []
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 1000
    assert len(reads) == 2  # once per predictor, when watched


def test_calls_are_measured_with_tokens_and_span(cap: Captured, lm: PromptLM) -> None:
    """Each call: status, duration, output size, tokens from the LM's usage, an invoke_agent span."""
    program = driftwatch.watch(Pipeline(), agent="qa")
    result = program(question=QUESTION)
    assert result.summary == "Lyon"
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 1
    assert cap.value("driftwatch_call_duration_seconds_count", agent="qa") == 1
    assert cap.value("driftwatch_output_chars_sum", agent="qa") == len("Lyon")
    assert cap.value("driftwatch_tokens_total", agent="qa", type="output") == 15  # 3 LM calls x 5
    assert cap.value("driftwatch_tokens_total", agent="qa", type="input") > 0
    (span,) = cap.spans("invoke_agent qa")
    attrs = dict(span.attributes)
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.agent.name"] == "qa"
    assert attrs["gen_ai.agent.version"] == cap.runtime.agent_version("qa")
    assert attrs["gen_ai.usage.output_tokens"] == 15
    assert attrs["driftwatch.output.chars"] == 4


def test_a_program_watched_alone_reports_its_program_revision_as_its_version(cap: Captured, lm: PromptLM) -> None:
    """gen_ai.agent.version of a program watched alone is its program_revision (the id its optimizer candidates are
    recorded under), before and after an edit of one predictor."""
    program = driftwatch.watch(Pipeline(), agent="qa")
    program(question=QUESTION)
    assert cap.runtime.agent_version("qa") == dw_dspy.program_revision(program)
    first = cap.runtime.agent_version("qa")
    program.summarize.signature = program.summarize.signature.with_instructions("Answer in one word.")
    program(question=QUESTION)
    assert cap.runtime.agent_version("qa") == dw_dspy.program_revision(program) != first


def test_user_usage_tracking_is_left_intact(cap: Captured, lm: PromptLM) -> None:
    """With DSPy's own track_usage on, the prediction still carries its usage and driftwatch reads it."""
    program = driftwatch.watch(TwoStep(), agent="qa")
    with dspy.context(track_usage=True):
        result = program(question=QUESTION)
    assert result.get_lm_usage()["dummy"]["completion_tokens"] == 10
    assert cap.value("driftwatch_tokens_total", agent="qa", type="output") == 10


def test_a_failing_call_is_counted_and_its_exception_passes_unchanged(cap: Captured, lm: PromptLM) -> None:
    """A forward that raises: status error, span in error, the very same exception reaches the caller."""
    boom = ValueError("bad input")

    class Failing(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.step = dspy.Predict("question -> answer")

        def forward(self, question: str) -> Any:
            self.step(question=question)
            raise boom

    program = driftwatch.watch(Failing(), agent="qa")
    with pytest.raises(ValueError) as info:
        program(question=QUESTION)
    assert info.value is boom
    assert cap.value("driftwatch_calls_total", agent="qa", status="error") == 1
    (span,) = cap.spans("invoke_agent qa")
    assert span.attributes["error.type"] == "ValueError"


def test_class_decorator_watches_every_instance(cap: Captured, lm: PromptLM) -> None:
    """@watch on a dspy.Module subclass returns the class; each instance (and subclass instance) is watched."""

    @driftwatch.watch(agent="decorated")
    class Decorated(TwoStep):
        pass

    class Sub(Decorated):
        pass

    assert Decorated.__name__ == "Decorated" and issubclass(Decorated, TwoStep)
    Decorated()(question=QUESTION)
    Sub()(question=QUESTION)
    TwoStep()(question=QUESTION)
    assert cap.value("driftwatch_calls_total", agent="decorated", status="ok") == 2
    assert cap.value("driftwatch_calls_total", agent="TwoStep", status="ok") == 0


def test_nested_watched_program_is_recorded_once(cap: Captured, lm: PromptLM) -> None:
    """A watched program called inside another watched program: only the outer call is recorded."""

    class Outer(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = driftwatch.watch(TwoStep(), agent="inner")
            self.final = dspy.Predict("answer -> summary")

        def forward(self, question: str) -> Any:
            return self.final(answer=self.inner(question=question).answer)

    outer = driftwatch.watch(Outer(), agent="outer")
    outer(question=QUESTION)
    outer.inner(question=QUESTION)
    assert cap.value("driftwatch_calls_total", agent="outer", status="ok") == 1
    assert cap.value("driftwatch_calls_total", agent="inner", status="ok") == 1  # the direct call only
    assert {c.component for c in cap.ledger.changes(agent="outer", baselines=True)} == {
        "Outer", "inner.gen_query", "inner.respond", "final"}


def test_instrument_covers_every_program_and_uninstrument_undoes_every_patch(cap: Captured, lm: PromptLM) -> None:
    """instrument(): unwatched programs are recorded under their class name; uninstrument() restores DSPy."""
    originals = (Module.__dict__["__call__"], Module.__dict__["acall"], Evaluate.__dict__["__call__"],
                 Teleprompter.__dict__["__init_subclass__"], dspy.COPRO.__dict__["compile"])
    dw_dspy.instrument()
    dw_dspy.instrument()  # idempotent
    assert Module.__dict__["__call__"] is not originals[0]
    assert dspy.COPRO.__dict__["compile"] is not originals[4]
    TwoStep()(question=QUESTION)
    assert cap.value("driftwatch_calls_total", agent="TwoStep", status="ok") == 1
    dw_dspy.uninstrument()
    dw_dspy.uninstrument()  # idempotent
    assert (Module.__dict__["__call__"], Module.__dict__["acall"], Evaluate.__dict__["__call__"],
            Teleprompter.__dict__["__init_subclass__"], dspy.COPRO.__dict__["compile"]) == originals
    assert not dw_dspy.is_instrumented()
    TwoStep()(question=QUESTION)
    assert cap.value("driftwatch_calls_total", agent="TwoStep", status="ok") == 1


def test_copies_stay_watched_without_spurious_changes(cap: Captured, lm: PromptLM, tmp_path: Any) -> None:
    """deepcopy, cloudpickle and save()/load() keep the program watched; equal content is no change."""
    program = driftwatch.watch(Pipeline(), agent="qa")
    program(question=QUESTION)
    copies = [copy.deepcopy(program), program.deepcopy(), cloudpickle.loads(cloudpickle.dumps(program))]
    program.save(str(tmp_path / "p.json"))
    loaded = driftwatch.watch(Pipeline(), agent="qa")
    loaded.load(str(tmp_path / "p.json"))
    for other in [*copies, loaded]:
        assert isinstance(other, Pipeline)
        other(question=QUESTION)
    assert cap.changes() == []
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 5
    copies[2].gen_query.signature = copies[2].gen_query.signature.with_instructions("Pickled, then edited.")
    copies[2](question=QUESTION)
    assert [(c.component, c.kind) for c in cap.changes()] == [("gen_query", "instructions")]


def test_loading_a_different_state_is_one_change(cap: Captured, lm: PromptLM, tmp_path: Any) -> None:
    """Loading saved state that differs from the running program is recorded once, on the next call."""
    tuned = Pipeline()
    tuned.gen_query.demos = [_example()]
    tuned.save(str(tmp_path / "tuned.json"))
    program = driftwatch.watch(Pipeline(), agent="qa")
    program(question=QUESTION)
    program.load(str(tmp_path / "tuned.json"))
    program(question=QUESTION)
    program(question=QUESTION)
    assert [(c.component, c.kind) for c in cap.changes()] == [("gen_query", "demos")]


def test_threads_evaluate_and_parallel(cap: Captured, lm: PromptLM) -> None:
    """Evaluate and dspy.Parallel with threads: every call recorded; one edit still recorded once."""
    program = driftwatch.watch(TwoStep(), agent="qa")
    devset = trainset(8)
    Evaluate(devset=devset, metric=metric, num_threads=4)(program)
    program.respond.signature = program.respond.signature.with_instructions("Be concise.")
    result = Evaluate(devset=devset, metric=metric, num_threads=4)(program)
    assert result.score == 100.0
    dspy.Parallel(num_threads=4)([(program, ex.inputs()) for ex in devset])
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 24
    assert [(c.component, c.kind) for c in cap.changes()] == [("respond", "instructions")]


def test_async_calls_are_recorded(cap: Captured, lm: PromptLM) -> None:
    """acall is recorded like a call, and sees edits the same way."""
    program = driftwatch.watch(TwoStep(), agent="qa")

    async def main() -> list[Any]:
        first = await program.acall(question=QUESTION)
        program.respond.demos.append(_example())
        results = await asyncio.gather(*(program.acall(question=QUESTION) for _ in range(3)))
        return [first, *results]

    results = asyncio.run(main())
    assert [r.answer for r in results] == ["Lyon", "Paris", "Paris", "Paris"]
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 4
    assert cap.value("driftwatch_tokens_total", agent="qa", type="output") == 40
    assert [(c.component, c.kind) for c in cap.changes()] == [("respond", "demos")]


def test_a_failing_hook_never_breaks_the_call(cap: Captured, lm: PromptLM, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception inside driftwatch's check is counted; the program's result is returned as usual."""
    program = driftwatch.watch(TwoStep(), agent="qa")

    def broken(self: Any, program: Any, **kw: Any) -> Any:
        raise RuntimeError("driftwatch bug")

    monkeypatch.setattr(_watch.ProgramWatch, "check", broken)
    assert program(question=QUESTION).answer == "Lyon"
    assert cap.value("driftwatch_internal_errors_total", stage="dspy") >= 1
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 1


def test_refresh_sees_in_place_field_edits(cap: Captured, lm: PromptLM) -> None:
    """An in-place json_schema_extra edit escapes the cheap check; refresh() records it."""
    program = driftwatch.watch(Pipeline(), agent="qa")
    program(question=QUESTION)
    program.gen_query.signature.output_fields["query"].json_schema_extra["prefix"] = "Search:"
    program(question=QUESTION)
    assert cap.changes() == []
    (change,) = dw_dspy.refresh(program)
    assert (change.component, change.kind) == ("gen_query", "fields")
    program(question=QUESTION)
    assert len(cap.changes()) == 1


def test_watch_rejects_what_it_cannot_watch() -> None:
    """Other DSPy objects and unknown options get a one-line error naming what was passed."""
    with pytest.raises(TypeError, match="PromptLM"):
        driftwatch.watch(PromptLM(), agent="qa")
    with pytest.raises(TypeError, match="prompt_keys"):
        driftwatch.watch(TwoStep(), agent="qa", prompt_keys=["x"])
    with pytest.raises(TypeError, match="program"):
        dw_dspy.program_state("not a program")


def test_a_factory_returning_a_program_is_watched(cap: Captured, lm: PromptLM) -> None:
    """@watch on a function that builds a program: the program is watched; the build is a create_agent span."""

    @driftwatch.watch(agent="built")
    def build() -> TwoStep:
        return TwoStep()

    program = build()
    assert isinstance(program, TwoStep)
    program(question=QUESTION)
    assert cap.value("driftwatch_calls_total", agent="built", status="ok") == 1
    assert [s.name for s in cap.spans()] == ["create_agent built", "invoke_agent built"]


def test_missing_or_too_old_dspy_is_refused_with_an_install_hint() -> None:
    """The integration declares its minimum DSPy (equal to the extra); a missing or older one: DidNotEnable."""
    import subprocess
    import sys

    from driftwatch.integrations import MINIMUM_VERSIONS

    assert MINIMUM_VERSIONS["dspy"] == dw_dspy.MINIMUM_VERSION
    code = ("import dspy; dspy.__version__ = '3.2.9'\n"
            "from driftwatch.integrations import DidNotEnable\n"
            "try:\n    import driftwatch.integrations.dspy\nexcept DidNotEnable as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == (f"driftwatch's DSPy integration needs dspy>={dw_dspy.MINIMUM_VERSION} (found "
                                  "3.2.9): pip install 'driftwatch-agents[dspy]'")
    missing = code.replace("import dspy; dspy.__version__ = '3.2.9'", "import sys; sys.modules['dspy'] = None")
    out = subprocess.run([sys.executable, "-c", missing], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "driftwatch's DSPy integration needs dspy: pip install 'driftwatch-agents[dspy]'"


def test_unhashable_programs_are_watched_and_forgotten_when_gone(cap: Captured, lm: PromptLM) -> None:
    """A program class defining __eq__ (so unhashable) is watched; its entry goes when the program does."""
    import gc

    class Comparable(TwoStep):
        def __eq__(self, other: object) -> bool:
            return isinstance(other, Comparable)

    program = driftwatch.watch(Comparable(), agent="qa")
    program(question=QUESTION)
    program.respond.demos.append(_example())
    program(question=QUESTION)
    assert [(c.component, c.kind) for c in cap.changes()] == [("respond", "demos")]
    assert cap.runtime.error_counts == {}
    key = id(program)
    assert key in _watch._WATCHES.values(cap.runtime)
    del program
    gc.collect()
    assert key not in _watch._WATCHES.values(cap.runtime)


def test_uninstrument_leaves_a_later_instrumentor_working(cap: Captured, lm: PromptLM) -> None:
    """OpenInference wraps DSPy after driftwatch: uninstrument() keeps OpenInference's spans, records nothing more."""
    from openinference.instrumentation.dspy import DSPyInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    classes = [Module, Evaluate, Teleprompter, dspy.BaseLM, dspy.LM, type(lm).__mro__[1], dspy.Adapter,
               dspy.ChatAdapter, dspy.Tool, *_patching.all_subclasses(Module)]
    pristine = {cls: dict(cls.__dict__) for cls in classes}
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    oi = DSPyInstrumentor()
    program = driftwatch.watch(TwoStep(), agent="qa")
    oi.instrument(tracer_provider=provider, skip_dep_check=True)
    try:
        program(question=QUESTION)
        dw_dspy.uninstrument()
        assert Module.__dict__["__call__"] is not pristine[Module]["__call__"]  # OpenInference's wrapper stays
        exporter.clear()
        program(question=QUESTION)
        assert len(exporter.get_finished_spans()) > 0
        assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 1
        driftwatch.watch(program, agent="qa")  # re-armed once, not twice (the inert wrapper stays inert)
        program(question=QUESTION)
        assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 2
    finally:
        oi.uninstrument()
        dw_dspy.uninstrument()
        for cls, attrs in pristine.items():  # OpenInference 0.1.48's uninstrument leaves some wrappers
            for name, value in list(cls.__dict__.items()):
                if not (callable(value) or isinstance(value, classmethod)) or attrs.get(name) is value:
                    continue
                if name in attrs:
                    setattr(cls, name, attrs[name])
                else:
                    delattr(cls, name)
    assert Module.__dict__["__call__"] is pristine[Module]["__call__"]


def test_tokens_spent_in_a_programs_own_parallel_section_count(cap: Captured, lm: PromptLM) -> None:
    """A program that fans out with dspy.Parallel: the worker threads' tokens are part of its call."""

    class FanOut(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.respond = dspy.Predict("question -> answer")

        def forward(self, question: str) -> Any:
            results = dspy.Parallel(num_threads=3)([(self.respond, {"question": f"{question} {i}"})
                                                    for i in range(3)])
            return results[-1]

    program = driftwatch.watch(FanOut(), agent="fan")
    program(question=QUESTION)
    assert cap.value("driftwatch_calls_total", agent="fan", status="ok") == 1
    assert cap.value("driftwatch_tokens_total", agent="fan", type="output") == 15  # 3 LM calls x 5


def test_uninstrument_under_a_later_wrapper_keeps_it_and_restores_the_rest(cap: Captured, lm: PromptLM) -> None:
    """Another tool wraps Module.__call__ after driftwatch: uninstrument() keeps its wrapper (ours under it passes
    calls through) and puts every other patch back; watching again records each call once."""
    original = Module.__dict__["__call__"]
    pristine = {(cls, name): cls.__dict__.get(name) for cls, name in
                [(Module, "acall"), (Evaluate, "__call__"), (Teleprompter, "__init_subclass__"),
                 (dspy.BootstrapFewShot, "compile")]}
    program = driftwatch.watch(TwoStep(), agent="qa")
    ours = Module.__dict__["__call__"]
    seen: list[str] = []

    def other(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(type(self).__name__)
        return ours(self, *args, **kwargs)

    Module.__call__ = other  # type: ignore[method-assign]  # the later instrumentor
    try:
        program(question=QUESTION)
        assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 1  # ours live before
        dw_dspy.uninstrument()
        assert Module.__dict__["__call__"] is other
        assert {(cls, name): cls.__dict__.get(name) for cls, name in pristine} == pristine
        seen.clear()
        assert program(question=QUESTION).answer == "Lyon"
        assert "TwoStep" in seen  # theirs still runs
        assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 1  # ours records nothing
        driftwatch.watch(program, agent="qa")  # patched again, over their wrapper
        program(question=QUESTION)
        assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 2
    finally:
        dw_dspy.uninstrument()
        Module.__call__ = original  # type: ignore[method-assign]
