"""The driftwatch decorator on a plain Python function — no agent framework at all.

Run it:  python examples/plain_function.py [--calls 300] [--port 0] [--ledger plain.db] [--report plain.html]
Needs:   pip install driftwatch-agents

`answer()` is an ordinary function that asks a language model (here driftwatch's offline scripted
model, so no API key is needed) under a system prompt it keeps in a variable. `@driftwatch.watch`
records every call (status, duration, output size, tokens) and `driftwatch.track()` records the prompt:
the first sighting is the baseline, and when the program "tunes" its prompt halfway through, that
rewrite is a change in the ledger. Scores go in with `driftwatch.record_score()`. At the end the
example prints what /metrics shows and what the ledger holds, and writes the HTML report.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request

import driftwatch
from driftwatch.cli import main as cli_main
from driftwatch.demo.scripted import Prompt, ScriptedModel
from driftwatch.report import write_report

PROMPTS = ("You are a helpdesk assistant. Answer the question.",
           "You are a helpdesk assistant. Think step by step and explain your answer in detail.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="questions to answer (default: 300)")
    parser.add_argument("--port", type=int, default=0, help="port for /metrics (default: any free port)")
    parser.add_argument("--ledger", default="plain.db", help="ledger file (default: plain.db)")
    parser.add_argument("--report", default="plain.html", help="HTML report to write (default: plain.html)")
    args = parser.parse_args(argv)
    if args.calls < 2:
        parser.error(f"--calls {args.calls}: expected at least 2")

    driftwatch.configure(ledger=args.ledger)
    server = driftwatch.start_http_server(args.port)
    model = ScriptedModel(seed=7)
    state = {"system_prompt": PROMPTS[0]}

    @driftwatch.watch(agent="helpdesk")
    def answer(question: str) -> str:
        # report the prompt on every call: unchanged costs a hash comparison, a rewrite becomes a change
        driftwatch.track("helpdesk", "system_prompt", state["system_prompt"], kind="system_prompt", source="agent")
        reply = model.respond(Prompt(state["system_prompt"], question))
        if reply.correct is not None:
            driftwatch.record_score("helpdesk", 1.0 if reply.correct else 0.0, metric="correct")
        return reply.text

    for i in range(args.calls):
        if i == args.calls // 2:
            state["system_prompt"] = PROMPTS[1]  # the program tunes its own prompt
        answer(f"What is {i % 50} + {i % 7}?")

    url = f"http://127.0.0.1:{server.server_port}/metrics"
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    wanted = ("driftwatch_calls_total{", "driftwatch_changes_total{", "driftwatch_output_chars_sum{",
              "driftwatch_output_chars_count{")
    print(f"/metrics served at {url}:")
    print("\n".join("  " + line for line in body.splitlines() if line.startswith(wanted)))
    print(f"\nhistory from {args.ledger}:")
    status = cli_main(["history", "--ledger", args.ledger, "--baselines", "--agent", "helpdesk"])
    runtime = driftwatch.get_runtime()
    runtime.windows.flush()  # write the calls still in the open window before reporting
    size = write_report(args.report, runtime.ledger, title="plain_function.py")
    print(f"\nreport: {args.report} ({size:,} bytes) — open it in a browser")
    server.shutdown()
    server.server_close()
    return status


if __name__ == "__main__":
    sys.exit(main())
