"""Multi-hop RAG in DSPy, as DSPy's tutorials write it, on a local corpus and a rule-following DummyLM.

Sources:
- ``SimplifiedBaleen`` (optimized with ``BootstrapFewShot``): stanfordnlp/dspy,
  ``dspy-docs/docs/tutorials/simplified-baleen.md`` (commit 135f69a), "Simplified Baleen: A Step-by-Step
  Guide" — ``GenerateSearchQuery`` / ``GenerateAnswer`` signatures, one ``ChainOfThought`` per hop, the
  ``validate_context_and_answer_and_hops`` metric and ``BootstrapFewShot(...).compile(SimplifiedBaleen(),
  teacher=SimplifiedBaleen(passages_per_hop=2), trainset=...)``.
- ``Hop`` (optimized with ``MIPROv2``): stanfordnlp/dspy, ``docs/docs/tutorials/multihop_search/index.ipynb``
  (https://dspy.ai/tutorials/multihop_search/) — ``generate_query`` / ``append_notes`` and the
  ``top5_recall`` metric.

Adapted only where a hosted service was used: ColBERTv2 / BM25 over Wikipedia is replaced by ``search``, a
word-overlap retriever over a 24-passage corpus of the same "Title | text" shape; the LM is
:class:`tests.realworld.fakes.RuleLM`. ``Hop`` runs 2 hops over 3 documents (the tutorial: 4 over 10) and
MIPROv2 runs at its smallest settings, to keep the suite fast.

The rule LM answers like a small model that needs teaching: without few-shot demos (or instructions that ask
for it) it pads the answer ("Lisbon, I believe") and keeps only the first title it sees, so the optimizers
have something real to improve.
"""

from __future__ import annotations

import re
from typing import Any

import dspy
from dspy.dsp.utils import deduplicate
from dspy.evaluate.metrics import F1

from tests.realworld.fakes import DSPyPrompt, RuleLM

# (book, author, year, city): a two-hop question needs the book's passage, then the author's
FACTS = (
    ("The Silent Harbor", "Marta Quental", 1931, "Lisbon"), ("Glass Orchard", "Henrik Dalby", 1954, "Aarhus"),
    ("A Winter Loom", "Ines Barroca", 1962, "Porto"), ("The Copper Tide", "Olav Strand", 1948, "Bergen"),
    ("Salt Meridian", "Clara Voss", 1977, "Hamburg"), ("North of Quiet", "Jonas Petrak", 1985, "Brno"),
    ("The Lantern Year", "Aoife Kerrigan", 1969, "Galway"), ("Paper Comets", "Luca Ferrante", 1991, "Turin"),
    ("Iron Sonnet", "Mirela Dobre", 1958, "Cluj"), ("The Ninth Ferry", "Tomas Aalto", 1973, "Turku"),
    ("Hollow Meadow", "Sofie Lindqvist", 1966, "Uppsala"), ("Amber Cartography", "Pavel Horak", 1980, "Olomouc"),
)

CORPUS = tuple(
    [f"{book} | {book} is a novel written by {author}, first published in {year}." for book, author, year, _ in FACTS]
    + [f"{author} | {author} was a novelist, born in {city}; best known for {book}."
       for book, author, _, city in FACTS])

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(("a", "an", "the", "of", "in", "is", "was", "by", "for", "and", "to", "who", "where", "which",
                   "what", "born", "city", "author", "novel"))


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def search(query: str, k: int) -> list[str]:
    """The retriever: the ``k`` passages whose title and text share most words with the query."""
    q = _words(query)
    scored = sorted(CORPUS, key=lambda p: (-len(q & _words(p.split("|", 1)[0])) * 2 - len(q & _words(p)), p))
    return scored[:k]


# -- SimplifiedBaleen (BootstrapFewShot) ----------------------------------------------------------------------

class GenerateAnswer(dspy.Signature):
    """Answer questions with short factoid answers."""

    context = dspy.InputField(desc="may contain relevant facts")
    question = dspy.InputField()
    answer = dspy.OutputField(desc="often between 1 and 5 words")


class GenerateSearchQuery(dspy.Signature):
    """Write a simple search query that will help answer a complex question."""

    context = dspy.InputField(desc="may contain relevant facts")
    question = dspy.InputField()
    query = dspy.OutputField()


class SimplifiedBaleen(dspy.Module):
    def __init__(self, passages_per_hop: int = 3, max_hops: int = 2) -> None:
        super().__init__()
        self.generate_query = [dspy.ChainOfThought(GenerateSearchQuery) for _ in range(max_hops)]
        self.passages_per_hop = passages_per_hop  # dspy.Retrieve(k=passages_per_hop) in the tutorial
        self.generate_answer = dspy.ChainOfThought(GenerateAnswer)
        self.max_hops = max_hops

    def forward(self, question: str) -> dspy.Prediction:
        context: list[str] = []
        for hop in range(self.max_hops):
            query = self.generate_query[hop](context=context, question=question).query
            passages = search(query, k=self.passages_per_hop)
            context = deduplicate(context + passages)
        pred = self.generate_answer(context=context, question=question)
        return dspy.Prediction(context=context, answer=pred.answer)


def validate_context_and_answer_and_hops(example: Any, pred: Any, trace: Any = None) -> bool:
    """The tutorial's metric (``answer_exact_match_str(..., frac=0.8)`` is ``F1(...) >= 0.8`` in DSPy 3)."""
    if not dspy.evaluate.answer_exact_match(example, pred):
        return False
    if not dspy.evaluate.answer_passage_match(example, pred):
        return False
    hops = [example.question] + [outputs.query for *_, outputs in trace if "query" in outputs]
    if max(len(h) for h in hops) > 100:
        return False
    return not any(F1(hops[idx], hops[:idx]) >= 0.8 for idx in range(2, len(hops)))


def question(i: int) -> dspy.Example:
    book, _, _, city = FACTS[i % len(FACTS)]
    forms = ("In which city was the author of {b} born?", "Where was the writer of {b} born?",
             "Name the birthplace of the novelist who wrote {b}.")
    return dspy.Example(question=forms[(i // len(FACTS)) % len(forms)].format(b=book), answer=city) \
        .with_inputs("question")


# -- Hop (MIPROv2) ---------------------------------------------------------------------------------------------

class Hop(dspy.Module):
    def __init__(self, num_docs: int = 3, num_hops: int = 2) -> None:
        self.num_docs, self.num_hops = num_docs, num_hops
        self.generate_query = dspy.ChainOfThought("claim, notes -> query")
        self.append_notes = dspy.ChainOfThought("claim, notes, context -> new_notes: list[str], titles: list[str]")

    def forward(self, claim: str) -> dspy.Prediction:
        notes: list[str] = []
        titles: list[str] = []
        for _ in range(self.num_hops):
            query = self.generate_query(claim=claim, notes=notes).query
            context = search(query, k=self.num_docs)
            prediction = self.append_notes(claim=claim, notes=notes, context=context)
            notes.extend(prediction.new_notes)
            titles.extend(prediction.titles)
        return dspy.Prediction(notes=notes, titles=sorted(set(titles)))  # the tutorial: list(set(titles))


def top5_recall(example: Any, pred: Any, trace: Any = None) -> float | bool:
    """The tutorial's metric, unchanged."""
    gold_titles = example.titles
    recall = sum(x in pred.titles[:5] for x in gold_titles) / len(gold_titles)
    if trace is not None:
        return recall >= 1.0
    return recall


def claim(i: int) -> dspy.Example:
    book, author, year, city = FACTS[i % len(FACTS)]
    forms = ("The author of {b} was born in {c}.", "{b} was written by a novelist born in {c}.",
             "The novelist who published {b} in {y} came from {c}.")
    text = forms[(i // len(FACTS)) % len(forms)].format(b=book, c=city, y=year)
    return dspy.Example(claim=text, titles=[book, author]).with_inputs("claim")


# -- the LM's rule ------------------------------------------------------------------------------------------------

def _book_in(text: str) -> str | None:
    return next((b for b, *_ in FACTS if b.lower() in text.lower()), None)


def _taught(p: DSPyPrompt) -> bool:
    """A demo, or instructions that ask for the precise form ("only", "every"), make the answer right."""
    text = p.instructions.lower()
    return p.demos > 0 or "only" in text or "every" in text


def rule(p: DSPyPrompt) -> dict[str, Any]:
    inputs = p.inputs
    known = " ".join([inputs.get("context", ""), inputs.get("notes", "")])
    question_text = inputs.get("question") or inputs.get("claim") or ""
    author = re.search(r"written by ([A-Z][a-z]+ [A-Z][a-z]+)", known)
    if "query" in p.outputs:
        book = _book_in(question_text) or question_text
        return {"reasoning": "First find the book, then its author.",
                "query": author.group(1) if author else book}
    if "answer" in p.outputs:
        born = re.search(r"born in ([A-Z][a-z]+)", inputs.get("context", ""))
        city = born.group(1) if born else "unknown"
        return {"reasoning": "The author's passage names the city.",
                "answer": city if _taught(p) else f"{city}, I believe"}
    if "titles" in p.outputs:
        context = inputs.get("context", "")
        passages = re.findall(r"«([^»]+)»", context)
        titles = [t.split("|", 1)[0].strip() for t in passages]
        named = [t for t in titles if t.lower() in question_text.lower()]  # what the claim names
        linked = [t for t in titles if author and t == author.group(1)]  # what a passage leads to
        keep = named + linked if _taught(p) else named
        return {"reasoning": "Keep the passages about the book and its author.",
                "new_notes": [f for f, t in zip(passages, titles, strict=True) if t in keep],
                "titles": keep}
    if "proposed_instruction" in p.outputs:
        return {"proposed_instruction": "Collect every relevant title; answer with the name only."}
    return {}


def lm() -> RuleLM:
    return RuleLM(rule)


# -- how the programs serve ---------------------------------------------------------------------------------------

BALEEN = "baleen-qa"
HOP = "hop-claims"


def _quiet() -> Any:
    """DSPy's optimizers print progress bars and log each step; keep the test output readable."""
    import contextlib
    import io
    import logging

    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    level = logging.getLogger("dspy").level
    logging.getLogger("dspy").setLevel(logging.CRITICAL)
    stack.callback(logging.getLogger("dspy").setLevel, level)
    return stack


def _serve(program: Any, served: list[str] | None, watched: bool, **inputs: Any) -> Any:
    if watched and served is not None:
        from driftwatch.integrations import dspy as dw_dspy

        served.append(dw_dspy.program_revision(program))
    return program(**inputs)


def baleen_scenario(watched: bool, notes: dict[str, Any]) -> list[Any]:
    """SimplifiedBaleen serves 10 questions, is compiled by BootstrapFewShot (the tutorial's call), then the
    compiled program and the student serve side by side (A/B) for 12 more."""
    import driftwatch

    served: list[str] = notes.setdefault("served_by", [])
    with dspy.context(lm=lm()):
        program = SimplifiedBaleen()
        if watched:
            program = driftwatch.watch(program, agent=BALEEN)
        out = [_serve(program, served, watched, question=question(i).question) for i in range(10)]
        with _quiet():
            teleprompter = dspy.BootstrapFewShot(metric=validate_context_and_answer_and_hops)
            compiled = teleprompter.compile(program, teacher=SimplifiedBaleen(passages_per_hop=2),
                                            trainset=[question(i) for i in range(24, 30)])
        for i in range(10, 22):
            out.append(_serve(compiled if i % 2 == 0 else program, served, watched, question=question(i).question))
        if watched:
            notes["student"], notes["compiled"] = program, compiled
    return out


def hop_scenario(watched: bool, notes: dict[str, Any]) -> list[Any]:
    """Hop serves 10 claims, MIPROv2 (smallest settings) optimizes it, the optimized program serves 12 more."""
    import driftwatch

    served: list[str] = notes.setdefault("served_by", [])
    with dspy.context(lm=lm()):
        program = Hop()
        if watched:
            program = driftwatch.watch(program, agent=HOP)
        out = [_serve(program, served, watched, claim=claim(i).claim) for i in range(10)]
        with _quiet():
            tp = dspy.MIPROv2(metric=top5_recall, auto=None, num_candidates=2, max_bootstrapped_demos=1,
                              max_labeled_demos=1, num_threads=1, seed=0)
            optimized = tp.compile(program, trainset=[claim(i) for i in range(24, 32)],
                                   valset=[claim(i) for i in range(32, 40)], num_trials=3, minibatch=False)
        out += [_serve(optimized, served, watched, claim=claim(i).claim) for i in range(10, 22)]
        if watched:
            notes["student"], notes["compiled"] = program, optimized
    return out
