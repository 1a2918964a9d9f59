"""Optimizer runs on watched programs: real DSPy optimizers (smallest settings) on the DummyLM-based test LM."""

from __future__ import annotations

from typing import Any

import dspy
import pytest
from dspy.adapters import JSONAdapter
from dspy.teleprompt.teleprompt import Teleprompter
from dspy.utils import DummyLM

import driftwatch
from driftwatch.integrations import dspy as dw_dspy
from driftwatch.integrations.dspy import _optimizer, _patching
from driftwatch.revision import fingerprint
from driftwatch.testing import Captured
from tests.helpers.dspy_programs import Pipeline, PromptLM, TwoStep, metric, trainset

QUESTION = "What is the capital of France?"
pytestmark = pytest.mark.usefixtures("quiet_optimizers")


def gepa_metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> float:
    return metric(gold, pred)


def _compile(name: str, student: dspy.Module) -> dspy.Module:
    ts = trainset(4)
    if name == "BootstrapFewShot":
        return dspy.BootstrapFewShot(metric=metric, max_bootstrapped_demos=1, max_labeled_demos=1).compile(
            student, trainset=ts)
    if name == "BootstrapFewShotWithRandomSearch":
        return dspy.BootstrapFewShotWithRandomSearch(
            metric=metric, max_bootstrapped_demos=1, max_labeled_demos=1, num_candidate_programs=2,
            num_threads=1).compile(student, trainset=ts)
    if name == "COPRO":
        return dspy.COPRO(metric=metric, breadth=2, depth=1).compile(
            student, trainset=ts, eval_kwargs={"num_threads": 1, "display_progress": False})
    if name == "MIPROv2":
        return dspy.MIPROv2(metric=metric, auto=None, num_candidates=2, max_bootstrapped_demos=0,
                            max_labeled_demos=0, num_threads=1, verbose=False).compile(
            student, trainset=ts, num_trials=3, minibatch=False)
    if name == "GEPA":
        # GEPA's reflection LM answers through JSONAdapter with {"new_instruction": ...}
        reflection = DummyLM([{"new_instruction": "Be concise."}] * 50, adapter=JSONAdapter())
        return dspy.GEPA(metric=gepa_metric, max_metric_calls=16, reflection_lm=reflection, num_threads=1,
                         reflection_minibatch_size=2).compile(student, trainset=ts, valset=ts[:2])
    if name == "SIMBA":
        return dspy.SIMBA(metric=metric, bsize=2, num_candidates=2, max_steps=1, max_demos=1,
                          num_threads=1).compile(student, trainset=ts)
    raise AssertionError(name)


OPTIMIZERS = ["BootstrapFewShot", "BootstrapFewShotWithRandomSearch", "COPRO", "MIPROv2", "GEPA", "SIMBA"]
EVALUATES = {"BootstrapFewShotWithRandomSearch", "COPRO", "MIPROv2", "GEPA", "SIMBA"}


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("program_cls", [TwoStep, Pipeline], ids=["2 predictors", "3 predictors"])
def test_optimizer_run_is_recorded_with_one_change_per_changed_predictor(
        cap: Captured, lm: PromptLM, name: str, program_cls: type) -> None:
    """The run, its candidates and scores, and exactly the predictors whose dump_state changed, linked to it."""
    student = driftwatch.watch(program_cls(), agent="qa")
    student(question=QUESTION)
    before = {n: p.dump_state() for n, p in student.named_predictors()}
    calls_before = cap.value("driftwatch_calls_total", agent="qa", status="ok")

    result = _compile(name, student)

    after = {n: p.dump_state() for n, p in result.named_predictors()}
    assert {n: p.dump_state() for n, p in student.named_predictors()} == before  # the student is untouched
    differs = {n for n in after if after[n] != before[n]}
    assert differs, "the test LM rewards concise instructions and demos: every optimizer here finds a change"

    (run,) = cap.ledger.runs(agent="qa")
    assert (run.optimizer, run.outcome) == (name, "ok")
    changes = cap.changes(agent="qa")
    assert {c.component for c in changes} == differs
    assert len(changes) == len(differs)  # one change per predictor: trials inside the compile are not changes
    state = dw_dspy.program_state(result)
    for change in changes:
        assert (change.source, change.run_id) == (name, run.id)
        assert change.after_id == fingerprint(state[change.component])
        moved = {k for k in ("demos", "signature", "lm") if after[change.component][k] != before[change.component][k]}
        expected = "instructions" if "signature" in moved and after[change.component]["signature"]["instructions"] \
            != before[change.component]["signature"]["instructions"] else "fields" if "signature" in moved \
            else "demos" if "demos" in moved else "lm_config"
        assert change.kind == expected

    assert cap.value("driftwatch_optimizer_runs_total", agent="qa", optimizer=name, outcome="ok") == 1
    candidates = cap.ledger.candidates(run.id)
    assert len(candidates) == run.candidates
    assert cap.value("driftwatch_optimizer_candidates_total", agent="qa", optimizer=name) == run.candidates
    if name in EVALUATES:
        assert run.candidates >= 2
        scores = [c["score"] for c in candidates if c["score"] is not None]
        assert run.best_score == max(scores) == 1.0
        assert cap.value("driftwatch_optimizer_best_score", agent="qa", optimizer=name) == 1.0
    # trial calls inside the compile are not production calls
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == calls_before

    (span,) = cap.spans("driftwatch.optimizer.compile")
    assert dict(span.attributes) == {
        "driftwatch.agent": "qa", "driftwatch.optimizer.name": name, "driftwatch.optimizer.run_id": run.id,
        "driftwatch.optimizer.outcome": "ok", "driftwatch.optimizer.candidates": run.candidates,
        **({"driftwatch.optimizer.best_score": run.best_score} if run.best_score is not None else {})}
    assert run.trace_id == format(span.context.trace_id, "032x")
    change_spans = [s for s in cap.spans("driftwatch.change") if s.attributes["driftwatch.change.source"] == name]
    assert len(change_spans) == len(changes)
    assert all(s.parent.span_id == span.context.span_id for s in change_spans)

    # the returned program is watched under the same agent; serving it records nothing new
    result(question=QUESTION)
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == calls_before + 1
    assert len(cap.changes(agent="qa")) == len(changes)


def test_a_failing_run_is_recorded_and_its_exception_passes_unchanged(cap: Captured, lm: PromptLM) -> None:
    """compile() raising: outcome failed in the ledger, metric and span; the same exception reaches the caller."""
    student = driftwatch.watch(TwoStep(), agent="qa")
    boom = RuntimeError("metric exploded")

    def bad_metric(*args: Any) -> float:
        raise boom

    optimizer = dspy.BootstrapFewShot(metric=bad_metric, max_errors=0)
    with pytest.raises(RuntimeError) as info:
        optimizer.compile(student, trainset=trainset(2))
    assert info.value is boom
    (run,) = cap.ledger.runs(agent="qa")
    assert (run.optimizer, run.outcome, run.error_type) == ("BootstrapFewShot", "failed", "RuntimeError")
    assert cap.value("driftwatch_optimizer_runs_total", agent="qa", optimizer="BootstrapFewShot",
                     outcome="failed") == 1
    (span,) = cap.spans("driftwatch.optimizer.compile")
    assert span.attributes["driftwatch.optimizer.outcome"] == "failed"
    assert cap.changes() == []


def test_optimizer_classes_defined_after_instrument_are_wrapped(cap: Captured, lm: PromptLM) -> None:
    """A Teleprompter subclass defined after instrument(): its runs and changes are recorded; errors pass through."""
    dw_dspy.instrument()

    class Prefixer(Teleprompter):
        def compile(self, student: dspy.Module, *, trainset: list[Any]) -> dspy.Module:
            program = student.deepcopy()
            for _, predictor in program.named_predictors():
                predictor.signature = predictor.signature.with_instructions("Be concise. " +
                                                                            predictor.signature.instructions)
            return program

    class Broken(Prefixer):
        def compile(self, student: dspy.Module, *, trainset: list[Any]) -> dspy.Module:
            super().compile(student, trainset=trainset)  # nested: part of this run, not a run of its own
            raise KeyError("no trainset")

    student = driftwatch.watch(TwoStep(), agent="qa")
    result = Prefixer().compile(student, trainset=[])
    assert result(question=QUESTION).answer == "Paris"
    with pytest.raises(KeyError, match="no trainset"):
        Broken().compile(student, trainset=[])
    runs = cap.ledger.runs(agent="qa")
    assert [(r.optimizer, r.outcome) for r in runs] == [("Prefixer", "ok"), ("Broken", "failed")]
    assert sorted((c.component, c.kind, c.source) for c in cap.changes()) == [
        ("gen_query", "instructions", "Prefixer"), ("respond", "instructions", "Prefixer")]


def test_every_teleprompter_subclass_is_wrapped_and_unwrapped(lm: PromptLM) -> None:
    """instrument() wraps compile on every optimizer class (KNNFewShot, LabeledFewShot...); uninstrument() undoes it."""
    classes = [c for c in _patching.all_subclasses(Teleprompter) if "compile" in c.__dict__]
    names = {c.__name__ for c in classes}
    assert {"BootstrapFewShot", "BootstrapFewShotWithRandomSearch", "LabeledFewShot", "KNNFewShot", "COPRO",
            "MIPROv2", "GEPA", "SIMBA"} <= names
    originals = {c: c.__dict__["compile"] for c in classes}
    dw_dspy.instrument()
    assert all(getattr(c.__dict__["compile"], "__driftwatch_original__", None) is originals[c] for c in classes)
    dw_dspy.uninstrument()
    assert all(c.__dict__["compile"] is originals[c] for c in classes)


def test_unwatched_students_are_left_alone(cap: Captured, lm: PromptLM) -> None:
    """Without instrument(), compiling a program nobody watches records nothing, while the same compile of a
    watched student (the control: the patched compile is in place and records) is a run with its changes."""
    watched = driftwatch.watch(TwoStep(), agent="other")  # patches are in place
    baseline = len(cap.changes())
    dspy.LabeledFewShot(k=1).compile(TwoStep(), trainset=trainset(2))
    assert cap.ledger.runs() == []
    assert len(cap.changes()) == baseline
    dspy.LabeledFewShot(k=1).compile(watched, trainset=trainset(2))
    (run,) = cap.ledger.runs()
    assert (run.agent, run.optimizer, run.outcome) == ("other", "LabeledFewShot", "ok")
    assert {c.component for c in cap.changes()[baseline:]} == {"gen_query", "respond"}


def test_a_watched_optimizer_records_runs_for_any_student(cap: Captured, lm: PromptLM) -> None:
    """watch(optimizer, agent=...) records its runs under that agent even for an unwatched student."""
    optimizer = driftwatch.watch(dspy.LabeledFewShot(k=1), agent="tuner")
    optimizer.compile(TwoStep(), trainset=trainset(2))
    (run,) = cap.ledger.runs()
    assert (run.agent, run.optimizer, run.outcome) == ("tuner", "LabeledFewShot", "ok")
    assert {c.component for c in cap.changes()} == {"gen_query", "respond"}


def test_a_compile_inside_a_forward_is_part_of_the_call(cap: Captured, lm: PromptLM) -> None:
    """KNNFewShot-style programs compile inside forward: that is the call's own work, not an optimizer run."""

    class SelfTuning(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.respond = dspy.Predict("question -> answer")

        def forward(self, question: str) -> Any:
            tuned = dspy.LabeledFewShot(k=1).compile(self, trainset=trainset(1))
            return tuned.respond(question=question)

    program = driftwatch.watch(SelfTuning(), agent="qa")
    assert program(question=QUESTION).answer == "Paris"
    assert cap.ledger.runs() == []
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 1



def test_saving_dspy_settings_inside_a_compile_still_works(cap: Captured, lm: PromptLM, tmp_path: Any) -> None:
    """The run marker that rides in dspy.context pickles to nothing: dspy.settings.save() inside a run works."""
    path = tmp_path / "settings.pkl"

    def saving_metric(example: Any, prediction: Any, trace: Any = None) -> float:
        dspy.settings.save(str(path), exclude_keys=["lm"])
        return metric(example, prediction)

    student = driftwatch.watch(TwoStep(), agent="qa")
    dspy.BootstrapFewShot(metric=saving_metric, max_bootstrapped_demos=1, max_labeled_demos=1).compile(
        student, trainset=trainset(1))
    assert dspy.settings.load(str(path), allow_pickle=True)["driftwatch_compile"] is None
    assert cap.ledger.runs()[0].outcome == "ok"


def test_a_failing_hook_never_breaks_an_optimizer_run(cap: Captured, lm: PromptLM,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors inside driftwatch's compile and Evaluate hooks are counted; the optimizer's result is unchanged."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("driftwatch bug")

    monkeypatch.setattr(_optimizer, "program_snapshot", broken)
    monkeypatch.setattr(_optimizer.CompileScope, "_record_result", broken)
    student = driftwatch.watch(TwoStep(), agent="qa")
    tuned = _compile("COPRO", student)
    assert tuned(question=QUESTION).answer == "Paris"
    (run,) = cap.ledger.runs(agent="qa")
    assert run.outcome == "ok" and run.candidates >= 2
    assert all(c["revision_id"] is None for c in cap.ledger.candidates(run.id))
    assert cap.value("driftwatch_internal_errors_total", stage="dspy") >= 1 + run.candidates


def test_instrument_records_runs_of_unwatched_students_under_their_class_name(cap: Captured, lm: PromptLM) -> None:
    """With instrument(), an unwatched student's run and changes are recorded under the program's class name."""
    dw_dspy.instrument()
    tuned = dspy.LabeledFewShot(k=1).compile(TwoStep(), trainset=trainset(2))
    tuned(question=QUESTION)
    (run,) = cap.ledger.runs()
    assert (run.agent, run.optimizer) == ("TwoStep", "LabeledFewShot")
    assert sorted((c.agent, c.component, c.kind) for c in cap.changes()) == [
        ("TwoStep", "gen_query", "demos"), ("TwoStep", "respond", "demos")]
    assert cap.value("driftwatch_calls_total", agent="TwoStep", status="ok") == 1


def test_knn_fewshot_is_one_run_and_its_per_call_compiles_are_not(cap: Captured, lm: PromptLM) -> None:
    """KNNFewShot: compile() is a run (demos reset: one change); its program's per-call compiles are part of calls."""
    import numpy as np

    def embed(texts: list[str]) -> Any:  # a deterministic embedding: no model can be downloaded here
        return np.array([[len(t), t.count("a"), t.count("e")] for t in texts], dtype=np.float32)

    program = TwoStep()
    program.respond.demos = [dspy.Example(question="Capital of Italy?", query="capital of Italy", answer="Rome")]
    student = driftwatch.watch(program, agent="qa")
    knn = dspy.KNNFewShot(k=1, trainset=trainset(3), vectorizer=dspy.Embedder(embed), max_bootstrapped_demos=1,
                          max_labeled_demos=1)
    tuned = knn.compile(student)
    answers = [tuned(question=QUESTION).answer for _ in range(3)]
    assert answers == ["Paris"] * 3  # each call attaches its nearest neighbour as a demo
    (run,) = cap.ledger.runs()
    assert (run.agent, run.optimizer, run.outcome) == ("qa", "KNNFewShot", "ok")
    assert [(c.component, c.kind, c.source) for c in cap.changes()] == [("respond", "demos", "KNNFewShot")]
    assert cap.value("driftwatch_calls_total", agent="qa", status="ok") == 3
