"""A plain-Python agent that rewrites its own system prompt, watched by driftwatch.

Run it:  python examples/self_editing_agent.py [--calls 40] [--port 9464] [--ledger driftwatch.db]
Needs:   pip install driftwatch-agents

It answers questions with a stand-in model (no network, no API key), and every ten calls it
"reflects" and rewrites its own system prompt. driftwatch records each rewrite as a change in the
SQLite ledger, serves /metrics on 127.0.0.1, and the history is printed at the end.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request

import driftwatch
from driftwatch.cli import main as cli_main

REWRITES = [
    "Answer in full sentences and explain your reasoning step by step.",
    "Answer briefly.",
    "Answer briefly. Refuse anything about passwords.",
]


class SelfEditingAgent:
    def __init__(self) -> None:
        self.system_prompt = "You are a helpful assistant."
        self.calls = 0

    def model(self, question: str) -> str:
        """A stand-in language model whose answer length follows the prompt."""
        if "step by step" in self.system_prompt:
            return f"Let us think about '{question}' step by step. " * 4 + "So the answer is 42."
        if "briefly" in self.system_prompt:
            return "42."
        return f"The answer to '{question}' is 42."

    def reflect(self) -> None:
        """The agent's own optimizer: pick the next prompt (here, from a fixed list)."""
        self.system_prompt = REWRITES[(self.calls // 10 - 1) % len(REWRITES)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--port", type=int, default=0, help="port for /metrics (0: any free port)")
    parser.add_argument("--ledger", default="driftwatch.db")
    args = parser.parse_args(argv)

    driftwatch.configure(ledger=args.ledger)
    server = driftwatch.start_http_server(args.port)
    agent = SelfEditingAgent()

    @driftwatch.watch(agent="self-editor")
    def answer(question: str) -> str:
        agent.calls += 1
        if agent.calls % 10 == 0:
            agent.reflect()
        driftwatch.track("self-editor", "system_prompt", agent.system_prompt, kind="system_prompt", source="agent")
        return agent.model(question)

    for i in range(args.calls):
        answer(f"question {i}")

    url = f"http://127.0.0.1:{server.server_port}/metrics"
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    changes = [line for line in body.splitlines() if line.startswith("driftwatch_changes_total{")]
    print(f"/metrics served at {url}:")
    print("\n".join("  " + line for line in changes))
    print(f"\nhistory from {args.ledger}:")
    return cli_main(["history", "--ledger", args.ledger, "--baselines", "--agent", "self-editor"])


if __name__ == "__main__":
    sys.exit(main())
