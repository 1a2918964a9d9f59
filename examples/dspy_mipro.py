"""A DSPy program optimized with MIPROv2 (smallest settings), watched by driftwatch.

Run it:  python examples/dspy_mipro.py [--calls 200] [--ledger mipro.db] [--report mipro.html]
Needs:   pip install 'driftwatch-agents[dspy]'

A ``dspy.ChainOfThought`` program answers arithmetic questions on driftwatch's scripted language model
(offline, no API key; it answers more accurately when its instructions ask for reasoning, and its
answers follow the length and format of its demos). ``driftwatch.watch`` records each call of the
program. It serves ``--calls`` questions, then a real ``dspy.MIPROv2`` (``auto=None``, 3 instruction
candidates, up to 2 demos, 4 trials, no minibatches) tunes it; driftwatch records the optimizer run
with every candidate's score, and each predictor the optimizer changed as a change linked to the run
(source ``MIPROv2``, kind ``instructions``/``demos``). The optimized program then serves the same number
of questions. The example prints the run, the changes, the accuracy before and after, the ledger's
history, and writes the HTML report.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import random
import sys

import dspy

import driftwatch
from driftwatch.cli import main as cli_main
from driftwatch.demo.scripted_dspy import ScriptedLM
from driftwatch.report import write_report

AGENT = "math-tutor"


class Arithmetic(dspy.Signature):
    """Answer the question."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


def examples(n: int, rnd: random.Random) -> list[dspy.Example]:
    out = []
    for _ in range(n):
        a, b = rnd.randint(2, 99), rnd.randint(2, 99)
        out.append(dspy.Example(question=f"What is {a} + {b}?", answer=str(a + b)).with_inputs("question"))
    return out


def correct(example: dspy.Example, pred: dspy.Prediction, trace: object = None) -> bool:
    """The metric MIPROv2 maximizes: the right number appears in the answer."""
    return example.answer in str(pred.answer)


def serve(program: dspy.Module, questions: list[dspy.Example]) -> float:
    """Answer each question (each call recorded by driftwatch); returns the share answered right."""
    right = 0
    for e in questions:
        ok = correct(e, program(question=e.question))
        driftwatch.record_score(AGENT, 1.0 if ok else 0.0, metric="correct")
        right += ok
    return right / len(questions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="questions served before and after (default: 200)")
    parser.add_argument("--ledger", default="mipro.db", help="ledger file (default: mipro.db)")
    parser.add_argument("--report", default="mipro.html", help="HTML report to write (default: mipro.html)")
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error(f"--calls {args.calls}: expected at least 1")

    logging.getLogger("dspy").setLevel(logging.ERROR)  # MIPROv2 logs every step at INFO
    driftwatch.configure(ledger=args.ledger)
    dspy.configure(lm=ScriptedLM(seed=3))
    rnd = random.Random(0)
    program = driftwatch.watch(dspy.ChainOfThought(Arithmetic), agent=AGENT)

    before = serve(program, examples(args.calls, rnd))
    optimizer = dspy.MIPROv2(metric=correct, auto=None, num_candidates=3, max_bootstrapped_demos=2,
                             max_labeled_demos=2, num_threads=1, seed=0)
    noise = io.StringIO()  # MIPROv2 prints its steps and progress bars
    with contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise):
        optimized = optimizer.compile(program, trainset=examples(20, rnd), valset=examples(20, rnd), num_trials=4,
                                      minibatch=False)
    after = serve(optimized, examples(args.calls, rnd))

    ledger = driftwatch.get_runtime().ledger
    for run in ledger.runs(agent=AGENT):
        print(f"optimizer run {run.optimizer}: {run.outcome}, {run.candidates} candidates scored, "
              f"best {run.best_score:.2f}")
    for c in ledger.changes(agent=AGENT):
        print(f"change {c.id[:12]}  {c.component}  {c.kind} by {c.source}  paths {', '.join(c.paths)}")
    print(f"instructions now: {optimized.predict.signature.instructions!r}, {len(optimized.predict.demos)} demos")
    print(f"accuracy: {before:.0%} before, {after:.0%} after ({args.calls} questions each)")
    print(f"\nhistory from {args.ledger}:")
    status = cli_main(["history", "--ledger", args.ledger, "--agent", AGENT])
    driftwatch.get_runtime().windows.flush()  # the calls still in the open window, before reporting
    size = write_report(args.report, ledger, title="dspy_mipro.py")
    print(f"\nreport: {args.report} ({size:,} bytes)")
    return status


if __name__ == "__main__":
    sys.exit(main())
