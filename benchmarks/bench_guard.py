"""Per-call cost of the guard check with a policy set and nothing frozen (goal: at most 1 µs).

Run:  .venv/bin/python benchmarks/bench_guard.py [--calls 200000] [--rounds 7]

Each mode runs interleaved in rounds within one process (medians reported); every guarded mode is compared with the
same work in the same run without a policy:

- check            the hooks' per-call guard check: ``Guard.tick(agent)`` (is a poll due? the agent's serial) and
                   ``Guard.pins(agent)`` — no policy vs ``on_alarm=rollback approve=tools max_rate=100/hour``
- check, pinned    the same check for an agent with a pinned component (what a frozen agent's hooks do before
                   rewriting: informational, no goal)
- watched call     a whole watched call: ``driftwatch.track()`` of an unchanged prompt, then a call recorded
                   through the runtime (metrics on, tracing and drift off) — no policy vs the policy
- middleware       ``DriftwatchMiddleware``'s guard step around a model request (``around_request`` with the
                   observation itself stubbed out) — no policy vs the policy
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from driftwatch.config import Settings
from driftwatch.guardrails.engine import Pin
from driftwatch.observation import Call
from driftwatch.runtime import Runtime, set_runtime

POLICY = {"on_alarm": "rollback", "approve": ["tools"], "max_rate": "100/hour"}
PROMPT = "You are a careful assistant. " * 140  # ~4 KB


def per_call_us(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def runtime(policy: bool) -> Runtime:
    rt = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), tracing=False, audit=False,
                                   drift=False))
    if policy:
        rt.configure_agent("bench", **POLICY)
    rt.guard.poll()  # the first poll (reads the empty guard state); the next is due in drift_poll_s
    rt.observe("bench", "system_prompt", PROMPT)  # the baseline
    return rt


class _Request:
    """What around_request reads of a ModelRequest when nothing is pinned."""

    def __init__(self) -> None:
        self.tools = [object(), object()]
        self.model = object()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    plain, guarded, pinned = runtime(False), runtime(True), runtime(True)
    pinned.guard.touch("bench")
    # an agent with a pinned component, without a real freeze
    pinned.guard._agents["bench"].pins["model.system_prompt"] = Pin("r" * 32, "frozen prompt", "bench")

    def check(rt: Runtime) -> Callable[[], Any]:
        guard = rt.guard

        def run() -> None:
            guard.tick("bench")
            guard.pins("bench")
        return run

    def watched_call(rt: Runtime) -> Callable[[], Any]:
        def run() -> None:
            rt.observe("bench", "system_prompt", PROMPT)
            rt.record_call(Call(agent="bench", duration_s=0.001, output_chars=12))
        return run

    try:
        from driftwatch.integrations.langgraph._guard import around_request
    except Exception:  # LangGraph not installed: that mode is skipped
        around_request = None

    def middleware(rt: Runtime) -> Callable[[], Any]:
        request = _Request()

        def see(_request: Any) -> None:
            return None

        def run() -> None:
            set_runtime(rt)
            around_request("bench", request, see, lambda: "model", lambda r: (lambda: {}), lambda m: "fake")
        return run

    modes: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "check": (check(plain), check(guarded)),
        "check, pinned": (check(plain), check(pinned)),
        "watched call": (watched_call(plain), watched_call(guarded)),
    }
    if around_request is not None:
        modes["middleware"] = (middleware(plain), middleware(guarded))
    results: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in modes}
    for _ in range(args.rounds):
        for name, (base, with_policy) in modes.items():
            results[name][0].append(per_call_us(base, args.calls))
            results[name][1].append(per_call_us(with_policy, args.calls))
    print(f"{'mode':<15} {'no policy µs':>13} {'policy µs':>10} {'added µs':>9} {'ratio':>7}")
    for name, (base, with_policy) in results.items():
        b, p = statistics.median(base), statistics.median(with_policy)
        print(f"{name:<15} {b:>13.3f} {p:>10.3f} {p - b:>9.3f} {p / b:>7.3f}")
    check_us = statistics.median(results["check"][1])
    print(f"\nguard check with a policy set, nothing frozen: {check_us:.3f} µs per call (goal: <= 1 µs) — "
          f"{'met' if check_us <= 1.0 else 'NOT met'}")
    for rt in (plain, guarded, pinned):
        rt.close()
    set_runtime(None)


if __name__ == "__main__":
    main()
