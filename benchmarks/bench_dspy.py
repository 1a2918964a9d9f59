"""Added cost per call of watching a DSPy program: driftwatch vs OpenInference's DSPy instrumentor.

Run:  .venv/bin/python benchmarks/bench_dspy.py [--calls 100] [--rounds 25] [--clock cpu|wall] [--bytecodes]

The same 3-predictor program (Predict → ChainOfThought → Predict) on the same ``DummyLM``, in one
process. Modes run interleaved, round after round (each round runs every mode once, in a rotated
order; short turns, so that load from other processes hits every mode alike; a watched mode's turn ends with its
runtime's ``flush_calls()``, timed, so that each turn pays for its own calls' batch work and spans), and the table shows
the median over rounds, the median of each round's ratio to bare *in the same round* (paired, with its
quartiles: this cancels most of a shared machine's noise), plus the best round of each mode (the least
disturbed by other processes) and its ratio. ``--clock cpu`` (default) times the process's CPU time (all its
threads), which other processes do not inflate; ``--clock wall`` times wall time:

- bare                the program with nothing installed
- watched             ``driftwatch.watch(program)``: metrics on, spans through the global (no-op) provider
- watched+otel        watched, with an SDK TracerProvider, SimpleSpanProcessor and in-memory exporter
- watched+batch       watched, with an SDK TracerProvider, BatchSpanProcessor (production's) and in-memory
                      exporter (the export runs on the processor's thread: the CPU clock counts it too)
- sdk-span            the bare program inside one plain SDK span per call (start, made current, end; no
                      attributes; the watched+batch provider): the floor of any tool that makes one span per call
- openinference       ``openinference-instrumentation-dspy`` with the same in-memory exporter setup

The two instrumentations patch DSPy classes, so each mode installs its patches for its turn and
removes them afterwards: driftwatch's ``uninstrument()``; for OpenInference, whose ``uninstrument()``
(0.1.48) leaves its wrappers on ``Module.__call__``, ``BaseLM.__call__`` and ``Adapter.__call__``, the
benchmark also puts back every DSPy class attribute it changed. Each mode calls its own program
instance (DSPy appends every LM call to each calling module's ``history``). Goal: watched ≤ 1.05x.

OpenInference runs in a second phase of the same run, against its own interleaved bare baseline:
its instrument/uninstrument cycle (even with no call in between) leaves the process slower for the
code that runs after it (watched measured 1.05x without it in the loop, 1.07–1.09x with it), so
interleaving it with the first phase would charge driftwatch for OpenInference.

Because other processes on a small machine make end-to-end ratios noisy, the benchmark also times
driftwatch's own work per program call in isolation (the hooks run on the same program and result,
without the DSPy call in between), which does not depend on load much. ``--bytecodes`` counts instead the
Python bytecodes one program call runs in place, bare and watched, by file: a figure load does not move, which
shows what each mode adds where it runs (also inside DSPy: e.g. DSPy 3.3's ``inspect.stack()`` per ``forward``
read costs more for every frame a hook adds); C work (dict copies, locks) is not in it, so it is no measure of cost:
``bench_instructions.py`` counts machine instructions, C included.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections import Counter
from collections.abc import Callable

import dspy
from bytecodes import added_by_file, bytecodes  # benchmarks/bytecodes.py
from dspy.utils import DummyLM
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import driftwatch
from driftwatch.config import Settings
from driftwatch.integrations import dspy as dw_dspy
from driftwatch.integrations.dspy import _calls
from driftwatch.integrations.dspy._program import MARK
from driftwatch.integrations.dspy._state import vars_of
from driftwatch.integrations.dspy._watch import Cover
from driftwatch.runtime import Runtime, set_runtime


class Pipeline(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gen_query = dspy.Predict("question -> query")
        self.answer = dspy.ChainOfThought("question, query -> answer")
        self.summarize = dspy.Predict("answer -> summary")

    def forward(self, question: str) -> dspy.Prediction:
        query = self.gen_query(question=question).query
        answer = self.answer(question=question, query=query).answer
        return self.summarize(answer=answer)


ANSWER = {"query": "capital of France", "reasoning": "It is well known.", "answer": "Paris",
          "summary": "The answer is Paris."}


def _dspy_classes() -> list[type]:
    import dspy.adapters
    import dspy.clients

    roots = [dspy.Module, dspy.BaseLM, dspy.adapters.Adapter, dspy.Tool, dspy.Evaluate]
    seen: list[type] = []
    stack = list(roots)
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen


def _snapshot() -> dict[type, dict[str, object]]:
    return {cls: dict(cls.__dict__) for cls in _dspy_classes()}


def _put_back(snapshot: dict[type, dict[str, object]]) -> None:
    for cls, attrs in snapshot.items():
        for name, value in list(cls.__dict__.items()):
            if not callable(value) or attrs.get(name) is value:
                continue
            if name in attrs:
                setattr(cls, name, attrs[name])
            else:
                delattr(cls, name)


def _changed(snapshot: dict[type, dict[str, object]]) -> list[str]:
    return [f"{cls.__qualname__}.{name}" for cls, attrs in snapshot.items() for name, value in cls.__dict__.items()
            if callable(value) and attrs.get(name) is not value]


def in_span(program: dspy.Module, tracer: trace.Tracer) -> Callable[[int], object]:
    """Call ``i`` of the program inside one plain SDK span (start, made current, end; no attributes)."""

    def spanned(i: int) -> object:
        span = tracer.start_span("invoke_agent bench")
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return program(question=f"What is the capital of France? ({i % 7})")
        finally:
            otel_context.detach(token)
            span.end()

    return spanned


CLOCK = time.process_time


def per_call_us(program: dspy.Module, calls: int, rt: Runtime | None = None) -> float:
    """µs per call; with ``rt``, the turn ends with ``rt.flush_calls()``, timed: the calls (and spans) still kept for
    a batch are processed in the turn that made them, not by a timer during another mode's turn."""
    start = CLOCK()
    for i in range(calls):
        program(question=f"What is the capital of France? ({i % 7})")
    if rt is not None:
        rt.flush_calls()
    return (CLOCK() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per mode per round")
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--bytecodes", action="store_true",
                        help="count the Python bytecodes one program call executes per mode, by file (a figure that "
                             "load does not move: what each mode adds in place), instead of timing")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    dspy.configure(lm=DummyLM(itertools.repeat(ANSWER)))
    programs = {mode: Pipeline() for mode in ("bare", "watched", "watched+otel", "watched+batch", "openinference")}

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    batch_exporter = InMemorySpanExporter()
    batch_provider = TracerProvider()
    batch_provider.add_span_processor(BatchSpanProcessor(batch_exporter))
    rt_plain = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), audit=False))
    rt_otel = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), tracer_provider=provider,
                                        audit=False))
    rt_batch = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(),
                                         tracer_provider=batch_provider, audit=False))
    set_runtime(rt_plain)
    for mode in ("watched", "watched+otel", "watched+batch"):
        driftwatch.watch(programs[mode], agent="bench")
    dw_dspy.uninstrument()
    pristine = _snapshot()
    if args.bytecodes:
        print_bytecodes(programs, {"watched": rt_plain, "watched+batch": rt_batch}, batch_provider)
        return

    try:
        from openinference.instrumentation.dspy import DSPyInstrumentor

        oi: DSPyInstrumentor | None = DSPyInstrumentor()
    except Exception as exc:
        print(f"(openinference-instrumentation-dspy unavailable: {exc})")
        oi = None

    def run_bare() -> float:
        return per_call_us(programs["bare"], args.calls)

    def run_watched(mode: str, rt: Runtime) -> float:
        set_runtime(rt)
        dw_dspy.watch_object(programs[mode], agent="bench")  # installs the patches again
        try:
            return per_call_us(programs[mode], args.calls, rt)
        finally:
            dw_dspy.uninstrument()

    def run_spanned() -> float:
        tracer = batch_provider.get_tracer("bench")
        program = programs["bare"]
        start = CLOCK()
        for i in range(args.calls):
            span = tracer.start_span("invoke_agent bench")
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                program(question=f"What is the capital of France? ({i % 7})")
            finally:
                otel_context.detach(token)
                span.end()
        return (CLOCK() - start) / args.calls * 1e6

    def run_oi() -> float:
        assert oi is not None
        oi.instrument(tracer_provider=provider, skip_dep_check=True)
        try:
            return per_call_us(programs["openinference"], args.calls)
        finally:
            oi.uninstrument()
            _put_back(pristine)

    phases = [{"bare": run_bare, "watched": lambda: run_watched("watched", rt_plain),
               "watched+otel": lambda: run_watched("watched+otel", rt_otel),
               "watched+batch": lambda: run_watched("watched+batch", rt_batch), "sdk-span": run_spanned}]
    if oi is not None:
        phases.append({"bare": run_bare, "openinference": run_oi})
    print(f"3-predictor DSPy program on DummyLM: {args.rounds} rounds x {args.calls} calls per mode, interleaved, "
          f"{args.clock} clock")
    print(f"{'mode':<15} {'median µs':>10} {'added µs':>9} {'ratio':>7} {'(paired quartiles)':>18} {'best µs':>9} "
          f"{'ratio':>7}")
    for number, modes in enumerate(phases, 1):
        results = run_phase(modes, args.rounds, (exporter, batch_exporter), pristine)
        bare = statistics.median(results["bare"])
        bare_best = min(results["bare"])
        for name in modes:
            med, best = statistics.median(results[name]), min(results[name])
            label = f"{name} ({number})" if name == "bare" else name
            ratios = sorted(v / b for v, b in zip(results[name], results["bare"], strict=True))
            q1, q2, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
            print(f"{label:<15} {med:10.1f} {med - bare:9.1f} {q2:6.2f}x {f'({q1:.2f}..{q3:.2f})':>18} {best:9.1f} "
                  f"{best / bare_best:6.2f}x")
    set_runtime(None)
    batch_provider.force_flush()
    batch_exporter.clear()
    changes = sum(len(rt.ledger.changes()) for rt in (rt_plain, rt_otel, rt_batch))
    print(f"changes recorded during the run (expected 0): {changes}")
    print("driftwatch's own work per program call, timed in isolation (the hooks on one program and result):")
    for mode, rt in (("watched", rt_plain), ("watched+otel", rt_otel), ("watched+batch", rt_batch)):
        print(f"  {mode:<14} {hooks_us(programs[mode], rt):6.1f} µs")
        exporter.clear()
        batch_provider.force_flush()
        batch_exporter.clear()


def print_bytecodes(programs: dict[str, dspy.Module], runtimes: dict[str, Runtime],
                    provider: TracerProvider) -> None:
    def run(program: dspy.Module) -> Callable[[int], object]:
        return lambda i: program(question=f"What is the capital of France? ({i % 7})")

    bare = bytecodes(run(programs["bare"]), calls=20, warmup=50)
    print(f"Python bytecodes per program call (deterministic; C work is not counted): bare {bare.total():,}")
    print(f"{'mode':<15} {'bytecodes':>10} {'added':>9} {'ratio':>7}   where (by file)")

    def row(mode: str, counts: Counter[str]) -> None:
        print(f"{mode:<15} {counts.total():10d} {counts.total() - bare.total():9d} "
              f"{counts.total() / bare.total():6.3f}x   {added_by_file(counts, bare)}")

    row("bare", bare)
    for mode, rt in runtimes.items():
        set_runtime(rt)
        dw_dspy.watch_object(programs[mode], agent="bench")
        try:
            counts = bytecodes(run(programs[mode]), calls=20, warmup=50)
        finally:
            dw_dspy.uninstrument()
            set_runtime(None)
        row(mode, counts)
    row("sdk-span", bytecodes(in_span(programs["bare"], provider.get_tracer("bench")), calls=20, warmup=50))


def run_phase(modes: dict[str, Callable[[], float]], rounds: int, exporters: tuple[InMemorySpanExporter, ...],
              pristine: dict[type, dict[str, object]]) -> dict[str, list[float]]:
    """Interleave the modes round after round (rotated order); per-call µs of every turn, by mode."""
    for fn in modes.values():  # warm-up: caches, first sightings (baselines) and imports
        fn()
    results: dict[str, list[float]] = {m: [] for m in modes}
    names = list(modes)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            results[name].append(modes[name]())
            for exporter in exporters:
                exporter.clear()
            left = _changed(pristine)
            assert not left, f"{name} left DSPy patched: {left}"
    return results


def hooks_us(program: dspy.Module, rt: Runtime, n: int = 20000) -> float:
    """What the patched ``Module.__call__`` adds around one call of the 3-predictor program (5 module calls)."""
    import timeit

    set_runtime(rt)
    dw_dspy.watch_object(program, agent="bench")
    result = program(question="What is the capital of France?")
    inner = [program.gen_query, program.answer, program.answer.predict, program.summarize]

    def one() -> None:
        _calls.call_target(program)
        rec = _calls.begin(program, "bench")
        for module in inner:  # what the patched Module.__call__ looks at for a module nobody marked
            if MARK in vars_of(module) or Cover.any:
                _calls.call_target(module)
        _calls.end(rec, result)

    try:
        return min(timeit.repeat(one, number=n, repeat=7)) / n * 1e6
    finally:
        dw_dspy.uninstrument()
        set_runtime(None)


if __name__ == "__main__":
    main()
