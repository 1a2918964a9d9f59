"""A self-tuning DSPy program in its own process, with the guard policy ``on_alarm="rollback"``: what the end-to-end
guard test (test_guard_rollback.py) scrapes and rolls back through the alert path.

    python tests/e2e/guard_agent_process.py --ledger /tmp/x.db [--reference-calls 60] [--poll 0.2]

A ``dspy.Predict`` answers arithmetic questions on driftwatch's scripted DSPy LM (offline, prompt-sensitive: the only
stand-in, for a hosted LLM) about 100 times a second from the start. The line ``go`` on stdin runs a real
``dspy.COPRO`` on served examples and swaps its result in: the instructions it picks change the answers' length a
lot (behavioural drift on ``output_chars``). Closing stdin stops the process.

Protocol on stdout, one line each: ``PORT <n>`` once /metrics is served; ``CHANGE <id> <source>`` per recorded change;
``ALARM <signal> <unix time>`` when a behavioural drift alarm latches; ``ROLLED_BACK <unix time>`` when the serving
program is back at the student's revision; ``CLEARED <unix time>`` when no drift alarm is latched any more after
that; ``LENGTH <phase> <mean output chars>`` for the calls before the change (``before``), while the tuned program
served (``tuned``), and after the rollback until cleared (``after``).
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import random
import sys
import time
from typing import Any

import dspy
from opentelemetry.sdk.trace import TracerProvider

import driftwatch
from driftwatch.demo.scripted_dspy import ScriptedLM
from driftwatch.integrations import dspy as dw_dspy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run as a script: its sibling, the on-call agent
from agent_process import latched, pace, stdin_lines  # after the path set-up above

AGENT = "e2e-qa"


class Arithmetic(dspy.Signature):
    """Answer the question."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--reference-calls", type=int, default=60)
    parser.add_argument("--poll", type=float, default=0.2)
    parser.add_argument("--rate", type=float, default=100.0)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # DSPy's progress logs

    rt = driftwatch.configure(ledger=args.ledger, drift_reference_calls=args.reference_calls,
                              drift_poll_s=args.poll, tracer_provider=TracerProvider())
    driftwatch.configure_agent(AGENT, score_metric="correct", on_alarm="rollback")
    server = driftwatch.start_http_server(0, runtime=rt)
    commands = stdin_lines()
    print(f"PORT {server.server_port}", flush=True)

    rnd = random.Random(0)
    student = driftwatch.watch(dspy.Predict(Arithmetic), agent=AGENT)
    program = student
    served: list[Any] = []
    lengths: dict[str, list[int]] = {"before": [], "tuned": [], "after": [], "done": []}
    phase = "before"
    alarmed: set[str] = set()
    period = 1.0 / args.rate
    next_t = time.monotonic()
    with dspy.context(lm=ScriptedLM(seed=1)):
        while True:
            try:
                cmd = commands.get_nowait()
            except queue.Empty:
                cmd = ""
            if cmd is None:
                break
            if cmd == "go" and phase == "before":
                print(f"LENGTH before {sum(lengths['before']) / len(lengths['before']):.1f}", flush=True)
                with dspy.context(lm=ScriptedLM(seed=2)):
                    program = dspy.COPRO(metric=lambda e, p, trace=None: e.answer in str(p.answer), breadth=4,
                                         depth=2, init_temperature=1.0).compile(
                        student, trainset=served[-40:], eval_kwargs={"num_threads": 1, "display_progress": False})
                for change in rt.ledger.changes(agent=AGENT):
                    print(f"CHANGE {change.id} {change.source}", flush=True)
                phase = "tuned"
            a, b = rnd.randint(2, 99), rnd.randint(2, 99)
            pred = program(question=f"What is {a} + {b}?")
            text = str(pred.answer)
            lengths[phase].append(len(text))
            driftwatch.record_score(AGENT, 1.0 if str(a + b) in text else 0.0, metric="correct")
            served.append(dspy.Example(question=f"What is {a} + {b}?", answer=str(a + b)).with_inputs("question"))
            now_latched = latched(rt, AGENT)
            for signal in now_latched - alarmed:
                alarmed.add(signal)
                print(f"ALARM {signal} {time.time():.3f}", flush=True)
            if phase == "tuned" and dw_dspy.program_revision(program) == dw_dspy.program_revision(student):
                phase = "after"
                print(f"LENGTH tuned {sum(lengths['tuned']) / len(lengths['tuned']):.1f}", flush=True)
                print(f"ROLLED_BACK {time.time():.3f}", flush=True)
            elif phase == "after" and not now_latched:
                print(f"LENGTH after {sum(lengths['after']) / len(lengths['after']):.1f}", flush=True)
                print(f"CLEARED {time.time():.3f}", flush=True)
                phase = "done"
            next_t = pace(next_t, period)
    rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
