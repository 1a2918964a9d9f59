"""A watched DSPy program: an optimizer run, a runtime edit, and a restore, all in a SQLite ledger.

Run:   .venv/bin/python examples/dspy_watch.py [--ledger dspy-demo.db]
Needs:   pip install 'driftwatch-agents[dspy]'
Then:  .venv/bin/driftwatch history --ledger dspy-demo.db

It runs offline: the LM is DSPy's own ``DummyLM`` with scripted answers, so no API key is needed.
Swap in ``dspy.LM("openai/gpt-4o-mini")`` and nothing else changes.
"""

from __future__ import annotations

import argparse
import itertools
import logging

import dspy
from dspy.utils import DummyLM

import driftwatch
from driftwatch.integrations import dspy as dw_dspy

QUESTION = "What is the capital of France?"


class RAG(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gen_query = dspy.Predict("question -> query")
        self.answer = dspy.Predict("question, query -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        query = self.gen_query(question=question).query
        return self.answer(question=question, query=query)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", default="dspy-demo.db", help="SQLite ledger file (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.getLogger("dspy").setLevel(logging.ERROR)

    driftwatch.configure(ledger=args.ledger)
    dspy.configure(lm=DummyLM(itertools.repeat({"query": "capital of France", "answer": "Paris"})))

    program = driftwatch.watch(RAG(), agent="qa")          # baselines go to the ledger
    program(question=QUESTION)                             # a recorded call

    trainset = [dspy.Example(question=f"{QUESTION} ({i})", answer="Paris").with_inputs("question")
                for i in range(3)]
    optimizer = dspy.BootstrapFewShot(metric=lambda ex, pred, trace=None: pred.answer == ex.answer,
                                      max_bootstrapped_demos=2, max_labeled_demos=0)
    program = optimizer.compile(program, trainset=trainset)  # one run; a change per tuned predictor
    program(question=QUESTION)

    program.answer.signature = program.answer.signature.with_instructions("Answer in one word.")
    program(question=QUESTION)                             # the runtime edit is recorded on this call

    ledger = driftwatch.get_runtime().ledger
    edit = [c for c in ledger.changes(agent="qa") if c.source == "runtime"][-1]
    dw_dspy.restore(program, edit.before_id)               # roll the edit back (recorded as "manual")

    for run in ledger.runs(agent="qa"):
        print(f"run     {run.id[:12]}  {run.optimizer:<18} {run.outcome}")
    for change in ledger.changes(agent="qa"):
        print(f"change  {change.id[:12]}  {change.component:<10} {change.kind:<13} {change.source:<17} "
              f"{change.before_id[:12]} -> {change.after_id[:12]}")


if __name__ == "__main__":
    main()
