"""A watched, self-tuning agent in its own process: what the end-to-end on-call test scrapes.

    python tests/helpers/agent_process.py --ledger /tmp/x.db [--reference-calls 60]

At start the agent tries to add a ``refund_order`` tool; its guard policy holds tool-set changes for approval, so it
keeps its two tools (``TOOLS held`` on stdout): the held change feeds the guard panels.

Protocol on stdout, one line each: ``PORT <n>`` once /metrics is served (on 127.0.0.1), ``CHANGE <id> <source>``
per self-modification, ``ALARM <signal> <unix time>`` when a behavioural drift alarm of driftwatch's drift engine
latches (read from the exported ``driftwatch_drift_alarm`` gauge).
It serves steady traffic (about 100 calls/s) from the start. The line ``go`` on stdin runs the first optimizer
run, ``next`` the second (once the reference after the first change is complete): the test sends it once Prometheus
has scraped the first change, so every counter is seen moving. Closing stdin stops the process.

The agent answers with driftwatch's scripted model (offline, prompt-sensitive: the only stand-in, for a hosted
LLM) and reports each call through the runtime's call scope (output, tokens, tool calls, errors) and
``driftwatch.record_score``. Its prompt optimizer (it emits no framework callbacks, like LangMem's) is
reported through the runtime's run scope (``begin_run``, ``candidate``, ``finish``) and deploys its pick
with ``driftwatch.track``: the first run adds "check your arithmetic" (more accurate, same length), the second
picks a prompt that asks for detailed reasoning, which raises accuracy again and makes answers several times
longer: behavioural drift on ``output_chars``.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

import driftwatch
from driftwatch import ChangeBlocked
from driftwatch.change import Change
from driftwatch.demo.scripted import Prompt, ScriptedModel, Tool
from driftwatch.drift import OPERATIONAL_SIGNALS

AGENT = "e2e-support-bot"
OPTIMIZER = "PromptOptimizer"
PROMPTS = (
    "Answer briefly in JSON.",
    "Answer briefly in JSON. Check your arithmetic.",
    "Explain your reasoning step by step and in detail, then answer in JSON. Check your arithmetic.",
)
TOOLS = (
    Tool("search_docs", "Search the product documentation and manuals", {"query": "string"}),
    Tool("calculator", "Evaluate an arithmetic sum or product of numbers", {"expression": "string"}),
)
#: a tool the agent tries to add at start; its policy holds tools changes for approval, so it keeps TOOLS
REFUND = Tool("refund_order", "Refund a customer's order", {"order": "string"})
QUESTIONS = (
    "What is {a} + {b}?",
    "What is {a} * {b}?",
    "Where do I find the manuals for the product documentation?",
    "How do I reset my password?",
    "What is {a} - {b}?",
    "Can you summarise the release notes?",
)


class Agent:
    """The agent: a system prompt it can rewrite, a model, two tools."""

    def __init__(self) -> None:
        self.model = ScriptedModel(seed=7)
        self.system_prompt = PROMPTS[0]
        self.tools = TOOLS
        self.lock = threading.Lock()
        self.n = 0

    def question(self) -> str:
        self.n += 1
        return QUESTIONS[self.n % len(QUESTIONS)].format(a=self.n % 50, b=(self.n * 7) % 30)

    def call(self) -> None:
        """One watched call."""
        rt = driftwatch.get_runtime()
        with self.lock:
            prompt_text = self.system_prompt
            q = self.question()
        driftwatch.track(AGENT, "system_prompt", prompt_text, kind="system_prompt", source="agent")
        scope = rt.begin_call(AGENT)
        reply = self.model.respond(Prompt(instructions=prompt_text, text=q, tools=self.tools))
        tools: tuple[str, ...] = ()
        tokens_in, tokens_out = reply.input_tokens, reply.output_tokens
        error: Exception | None = None
        if reply.tool_call is not None:
            tools = (reply.tool_call.name,)
            if reply.tool_call.name == "calculator" and self.n % 97 == 0:
                error = ZeroDivisionError("calculator: division by zero")  # a failing tool: the call raises
            observation = f"{reply.tool_call.name} returned a result for {json.dumps(reply.tool_call.args)}"
            reply = self.model.respond(Prompt(instructions=prompt_text, text=q, observations=(observation,)))
            tokens_in += reply.input_tokens
            tokens_out += reply.output_tokens
        if scope is not None:
            scope.finish(error=error, output_text=reply.text, output_chars=len(reply.text), input_tokens=tokens_in,
                         output_tokens=tokens_out, tools=tools)
        if reply.correct is not None:
            driftwatch.record_score(AGENT, 1.0 if reply.correct else 0.0, metric="exact_match")

    def add_refund_tool(self) -> str:
        """The agent tries to add a tool; held for approval, it keeps serving its tool set. Returns the outcome."""
        driftwatch.track(AGENT, "tools", [t.name for t in self.tools], kind="tools", source="agent")
        try:
            driftwatch.track(AGENT, "tools", [t.name for t in (*TOOLS, REFUND)], kind="tools", source="agent",
                             enforce=True)
        except ChangeBlocked as exc:
            return "held" if exc.change is not None and exc.change.status == "held" else "blocked"
        self.tools = (*TOOLS, REFUND)
        return "applied"

    def optimize(self, candidates: tuple[str, ...]) -> Change | None:
        """The agent's prompt optimizer: score each candidate instruction on a dev set, deploy the best."""
        rt = driftwatch.get_runtime()
        run = rt.begin_run(AGENT, OPTIMIZER)
        dev = ScriptedModel(seed=11)
        best, best_score = None, -1.0
        for cand in candidates:
            replies = [dev.respond(Prompt(instructions=cand, text=f"What is {i} + {i * 3}?")) for i in range(40)]
            score = sum(1.0 for r in replies if r.correct) / len(replies)
            run.candidate(score)
            if score >= best_score:  # a proposal (later candidate) replaces the current prompt unless worse
                best, best_score = cand, score
        run.finish()
        with self.lock:
            self.system_prompt = best or self.system_prompt
        return driftwatch.track(AGENT, "system_prompt", self.system_prompt, kind="system_prompt", source=OPTIMIZER)


def stdin_lines() -> queue.Queue[str | None]:
    """Lines of stdin, read on a thread, stripped; ``None`` once stdin closes."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def pace(next_t: float, period: float) -> float:
    """Sleep until the next call is due (``period`` after ``next_t``); never burst to catch up. Returns it."""
    next_t += period
    delay = next_t - time.monotonic()
    if delay > 0:
        time.sleep(delay)
        return next_t
    return time.monotonic()


def latched(rt: Any, agent: str = AGENT) -> set[str]:
    """Behavioural signals of ``agent`` whose ``driftwatch_drift_alarm`` gauge reads 1."""
    out = set()
    for metric in rt.metrics.drift_alarm.collect():
        for sample in metric.samples:
            signal = sample.labels["signal"]
            if sample.labels["agent"] == agent and sample.value >= 1 and signal not in OPERATIONAL_SIGNALS:
                out.add(signal)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--reference-calls", type=int, default=60)
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second")
    args = parser.parse_args(argv)

    # a real SDK tracer provider (no exporter): spans get trace ids, which /metrics carries as exemplars
    rt = driftwatch.configure(ledger=args.ledger, drift_reference_calls=args.reference_calls,
                              tracer_provider=TracerProvider())
    if rt.drift is None or rt.metrics is None:
        print("ERROR driftwatch's drift engine or metrics are off in this build", flush=True)
        return 2
    # the agent's contract: answers are JSON (feeds format_failure); the score signal reads exact_match; its guard
    # policy holds tool-set changes for approval (the alert only pages: on_alarm defaults to page)
    driftwatch.configure_agent(AGENT, format="json", score_metric="exact_match", approve=["tools"])
    server = driftwatch.start_http_server(0, runtime=rt)
    agent = Agent()
    say_tools = agent.add_refund_tool()
    out_lock = threading.Lock()

    def say(line: str) -> None:
        with out_lock:
            print(line, flush=True)

    commands = stdin_lines()
    say(f"TOOLS {say_tools}")
    say(f"PORT {server.server_port}")

    period = 1.0 / args.rate
    phase = 0  # 0: steady, 1: after the first optimizer run, 2: after the second
    calls_in_phase = 0
    next_asked = False
    alarmed: set[str] = set()
    next_t = time.monotonic()
    while True:
        try:
            cmd = commands.get_nowait()
        except queue.Empty:
            cmd = ""
        if cmd is None:
            break
        next_asked = next_asked or cmd == "next"
        if (cmd == "go" and phase == 0) or (phase == 1 and next_asked and calls_in_phase >= args.reference_calls + 20):
            change = agent.optimize(PROMPTS[phase:phase + 2])
            phase += 1
            calls_in_phase = 0
            if change is not None:
                say(f"CHANGE {change.id} {change.source}")
        agent.call()
        calls_in_phase += 1
        for signal in latched(rt) - alarmed:
            alarmed.add(signal)
            say(f"ALARM {signal} {time.time():.3f}")
        next_t = pace(next_t, period)
    rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
