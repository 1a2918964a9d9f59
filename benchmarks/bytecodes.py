"""Python bytecodes per call, by file: a figure that load does not move (the benchmarks' ``--bytecodes``).

Time on a shared machine moves with everything else that runs on it; the bytecodes a call executes do not (for the
same code, inputs and warm state). They show what each mode adds and where it runs, also inside the framework (a
hook can make the framework's own code do more). They are no measure of cost: C work (dict copies, locks,
allocation, garbage collection, attribute reads through ``attrgetter``) is not in them, and a loop moved into C runs
fewer bytecodes for as many machine instructions or more. ``bench_instructions.py`` (valgrind) counts the cost.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from typing import Any


def bytecodes(call: Callable[[int], object], calls: int = 40, warmup: int = 100) -> Counter[str]:
    """The Python bytecodes one ``call(i)`` executes (a mean over ``calls``, after ``warmup`` calls), by file."""
    counts: Counter[str] = Counter()

    def trace(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes, frame.f_trace_lines = True, False
        if event == "opcode":
            counts[frame.f_code.co_filename] += 1
        return trace

    for i in range(warmup):  # first sightings, caches, baselines
        call(i)
    sys.settrace(trace)
    try:
        for i in range(calls):
            call(i)
    finally:
        sys.settrace(None)
    return Counter({name: n // calls for name, n in counts.items()})


def short(path: str) -> str:
    """A file's name as the tables show it: below site-packages, or driftwatch/…"""
    for root in ("site-packages/", "driftwatch/"):
        if root in path:
            return ("driftwatch/" if root == "driftwatch/" else "") + path.rsplit(root, 1)[1]
    return path.rsplit("/", 1)[-1]


def added_by_file(counts: Counter[str], bare: Counter[str], top: int = 6) -> str:
    """What ``counts`` adds to ``bare``, by file, the largest first."""
    added: Counter[str] = Counter()
    for name in counts.keys() | bare.keys():
        added[short(name)] += counts[name] - bare[name]
    return ", ".join(f"{name} {n:+,}" for name, n in added.most_common(top) if n)
