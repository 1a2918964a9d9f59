"""Added cost per invoke of watching a 3-node LangGraph graph, next to its peers.

Run:  .venv/bin/python benchmarks/bench_langgraph.py [--invokes 100] [--rounds 30] [--clock cpu|wall]
                                                     [--processor simple|batch] [--sample-ratio 1.0] [--bytecodes]

The graph is ``prep -> reflect -> agent`` with ``FakeListChatModel`` (the agent node makes one chat-model
call with a system prompt; the prompt does not change, so this is driftwatch's steady-state hot path).
Modes, interleaved in rounds within one process; each round runs every mode for ``--invokes`` invokes
(in a rotated order, so no mode always follows another); a watched mode's turn ends with its runtime's
``flush_calls()``, timed, so that each turn pays for its own calls' batch work and spans. Reported: the median
over rounds of the mean µs per invoke, and the median over rounds of its ratio to bare *in the same round*
(paired, which cancels most of the noise of a shared machine). ``--clock cpu`` (default) times the process's CPU time
(all its threads), which other processes on the machine do not inflate; ``--clock wall`` times wall
time.

- bare            the compiled graph
- noop-callback   the graph with a do-nothing ``BaseCallbackHandler`` (the floor of any callback approach)
- sdk-span        the graph inside one bare SDK span (start, made current, end; same provider): the floor of
                  any tool that makes one span per invoke
- watched         ``driftwatch.watch(graph)``: metrics, drift engine, in-memory ledger, spans through an
                  SDK TracerProvider with an in-memory exporter behind a SimpleSpanProcessor (default) or a
                  BatchSpanProcessor (``--processor batch``, what production uses); ``--sample-ratio 0.1``
                  head-samples 10% of traces, as busy services do (unsampled spans are non-recording)
- watched-notrace the same with tracing off (no SDK configured: what an app without OpenTelemetry pays)
- watched-nodrift tracing and the drift engine off: the integration itself plus metrics and ledger
- decorated       ``graph.invoke`` inside the generic ``@driftwatch.watch`` decorator, SDK tracing as watched:
                  one call recorded (metrics, drift engine, ledger) and its span, but no model request observed
                  (nothing LangGraph-specific): the floor of any hook that records a call with a span
- decorated-notrace the same with tracing off
- openinference   OpenInference ``LangChainInstrumentor`` (same provider setup), instrumented per round
- openllmetry     OpenLLMetry ``LangchainInstrumentor`` (same provider setup). Its ``uninstrument()`` leaves
                  wrappers behind (bare stays ~2.3x slower after it), so it cannot be interleaved: it runs
                  last, in its own rounds, and its ratio is to the median of as many bare rounds measured just
                  before it is installed (the machine's load then, not the interleaved rounds' earlier load)

``--bytecodes`` counts instead the Python bytecodes one invoke runs in each mode (OpenInference and OpenLLMetry
included), by file (``benchmarks/bytecodes.py``): where each mode spends, load-independent, but no measure of cost
(C work is not in it); ``bench_instructions.py`` counts machine instructions, C included.

Goal (issue 15): watched ≤ 1.10x bare with a BatchSpanProcessor.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any, TypedDict

from bytecodes import added_by_file, bytecodes  # benchmarks/bytecodes.py
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import CollectorRegistry

import driftwatch
from driftwatch.config import Settings
from driftwatch.runtime import Runtime, set_runtime

PROMPT = "You are a helpful support agent. Answer briefly and cite the knowledge base. " * 8


class State(TypedDict, total=False):
    system_prompt: str
    question: str
    answer: str


def build() -> Any:
    model = FakeListChatModel(responses=["Happy to help with that."])

    def prep(state: State) -> dict[str, Any]:
        return {}

    def reflect(state: State) -> dict[str, Any]:
        return {"system_prompt": state["system_prompt"] + " Be brief."} if "rewrite" in state["question"] else {}

    def agent(state: State) -> dict[str, Any]:
        reply = model.invoke([SystemMessage(state["system_prompt"]), HumanMessage(state["question"])])
        return {"answer": reply.content}

    builder = StateGraph(State)
    builder.add_node("prep", prep)
    builder.add_node("reflect", reflect)
    builder.add_node("agent", agent)
    builder.add_edge(START, "prep")
    builder.add_edge("prep", "reflect")
    builder.add_edge("reflect", "agent")
    builder.add_edge("agent", END)
    return builder.compile()


class Spanned:
    """The bare graph inside one plain SDK span per invoke (no attributes, no driftwatch)."""

    def __init__(self, graph: Any, provider: TracerProvider) -> None:
        self.graph = graph
        self.tracer = provider.get_tracer("bench")

    def invoke(self, state: Any) -> Any:
        span = self.tracer.start_span("invoke_agent bench")
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return self.graph.invoke(state)
        finally:
            otel_context.detach(token)
            span.end()


class Decorated:
    """``graph.invoke`` inside the generic decorator (``@driftwatch.watch`` on a plain function)."""

    def __init__(self, graph: Any, agent: str) -> None:
        def invoke(state: Any) -> Any:
            return graph.invoke(state)

        self.invoke = driftwatch.watch(invoke, agent=agent)


class Noop(BaseCallbackHandler):
    run_inline = True

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        return None


CLOCK = time.process_time


def per_invoke_us(graph: Any, invokes: int, rt: Runtime | None = None) -> float:
    """µs per invoke; with ``rt``, the round ends with ``rt.flush_calls()``, timed: the calls (and spans) still kept
    for a batch are processed in the round that made them, not by a timer during another mode's round."""
    state = {"system_prompt": PROMPT, "question": "How do I reset my password?"}
    start = CLOCK()
    for _ in range(invokes):
        graph.invoke(state)
    if rt is not None:
        rt.flush_calls()
    return (CLOCK() - start) / invokes * 1e6


def peers(provider: TracerProvider) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from openinference.instrumentation.langchain import LangChainInstrumentor

            out["openinference"] = LangChainInstrumentor()
        except Exception as exc:  # a missing peer is reported, not fatal
            print(f"openinference unavailable: {exc}")
        try:
            from opentelemetry.instrumentation.langchain import LangchainInstrumentor

            out["openllmetry"] = LangchainInstrumentor()
        except Exception as exc:
            print(f"openllmetry unavailable: {exc}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invokes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--processor", choices=("simple", "batch"), default="simple")
    parser.add_argument("--sample-ratio", type=float, default=1.0,
                        help="head sampling of traces (ParentBased(TraceIdRatioBased)); 1.0 records every span")
    parser.add_argument("--bytecodes", action="store_true",
                        help="count the Python bytecodes one invoke executes per mode, by file (a figure that load "
                             "does not move), instead of timing")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(args.sample_ratio)))
    processor = SimpleSpanProcessor if args.processor == "simple" else BatchSpanProcessor
    provider.add_span_processor(processor(exporter))
    rt_trace = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), tracer_provider=provider))
    rt_plain = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), tracing=False))
    rt_bare = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), tracing=False,
                                        drift=False))
    set_runtime(rt_trace)

    bare = build()
    graphs: dict[str, tuple[Any, Runtime | None, Any]] = {
        "bare": (bare, None, None),
        "noop-callback": (bare.with_config(callbacks=[Noop()]), None, None),
        "sdk-span": (Spanned(bare, provider), None, None),
        "watched": (driftwatch.watch(bare, agent="bench"), rt_trace, None),
        "watched-notrace": (driftwatch.watch(bare, agent="bench-plain"), rt_plain, None),
        "watched-nodrift": (driftwatch.watch(bare, agent="bench-nodrift"), rt_bare, None),
        "decorated": (Decorated(bare, "bench-deco"), rt_trace, None),
        "decorated-notrace": (Decorated(bare, "bench-deco-plain"), rt_plain, None),
    }
    last: dict[str, Any] = {}
    for name, instrumentor in peers(provider).items():
        (last if name == "openllmetry" else graphs)[name] = (bare, None, instrumentor)

    for graph, rt, _ in graphs.values():  # warm up (baselines, imports, caches)
        set_runtime(rt or rt_trace)
        per_invoke_us(graph, 20)

    if args.bytecodes:
        print_bytecodes(graphs, last, rt_trace, provider, args.processor)
        return

    results: dict[str, list[float]] = {m: [] for m in graphs}
    names = list(graphs)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            graph, rt, instrumentor = graphs[name]
            set_runtime(rt or rt_trace)
            if instrumentor is not None:
                instrumentor.instrument(tracer_provider=provider)
            try:
                results[name].append(per_invoke_us(graph, args.invokes, rt))
            finally:
                if instrumentor is not None:
                    instrumentor.uninstrument()
            exporter.clear()

    bare_before: list[float] = []
    if last:  # the baseline of the peer that cannot be taken out again: bare, measured right before it
        bare_before = [per_invoke_us(bare, args.invokes) for _ in range(args.rounds)]
    for name, (graph, _, instrumentor) in last.items():  # instrumented for good: after everything else
        instrumentor.instrument(tracer_provider=provider)
        per_invoke_us(graph, 20)
        results[name] = []
        for _ in range(args.rounds):
            results[name].append(per_invoke_us(graph, args.invokes))
            exporter.clear()

    base = statistics.median(results["bare"])
    base_last = statistics.median(bare_before) if bare_before else base
    print(f"3-node LangGraph graph, FakeListChatModel; {args.rounds} rounds x {args.invokes} invokes per mode, "
          f"{args.clock} clock, {args.processor} span processor, trace sampling {args.sample_ratio:g}")
    print(f"{'mode':<18} {'µs/invoke':>10} {'added µs':>9} {'ratio':>7}   (quartiles of the paired ratio)")
    for name, values in results.items():
        med = statistics.median(values)
        paired = name not in last
        ratios = sorted(v / b for v, b in zip(values, results["bare"] if paired else [base_last] * len(values),
                                              strict=True))
        q1, q2, q3 = statistics.quantiles(ratios, n=4)
        print(f"{name:<18} {med:10.1f} {med - (base if paired else base_last):9.1f} {q2:6.2f}x   ({q1:.2f}..{q3:.2f})")
    if bare_before:
        print(f"(openllmetry against bare measured just before it: {base_last:.1f} µs/invoke)")
    errors = rt_trace.error_counts or rt_plain.error_counts or rt_bare.error_counts
    if errors:
        print(f"internal errors counted (driftwatch_internal_errors_total, by stage): {errors}")


def print_bytecodes(graphs: dict[str, tuple[Any, Runtime | None, Any]], last: dict[str, Any], rt_trace: Runtime,
                    provider: TracerProvider, processor: str) -> None:
    """Python bytecodes per invoke of each mode (the one that cannot be uninstrumented last)."""
    state = {"system_prompt": PROMPT, "question": "How do I reset my password?"}
    counted: dict[str, Any] = {}
    for name, (graph, rt, instrumentor) in [*graphs.items(), *last.items()]:
        set_runtime(rt or rt_trace)
        if instrumentor is not None:
            instrumentor.instrument(tracer_provider=provider)
        try:
            counted[name] = bytecodes(lambda _i, g=graph: g.invoke(state))
        finally:
            if instrumentor is not None and name not in last:
                instrumentor.uninstrument()
    bare = counted["bare"]
    print(f"3-node LangGraph graph, FakeListChatModel: Python bytecodes per invoke (deterministic; C work is not "
          f"counted), {processor} span processor")
    print(f"{'mode':<18} {'bytecodes':>10} {'added':>9} {'ratio':>7}   where (by file)")
    for name, counts in counted.items():
        print(f"{name:<18} {counts.total():10d} {counts.total() - bare.total():9d} "
              f"{counts.total() / bare.total():6.3f}x   {added_by_file(counts, bare, top=4)}")


if __name__ == "__main__":
    main()
