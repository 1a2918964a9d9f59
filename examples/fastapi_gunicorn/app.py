"""A FastAPI agent served by gunicorn with several workers, with driftwatch metrics aggregated across them.

Run it (from this folder):

    export PROMETHEUS_MULTIPROC_DIR=$(mktemp -d)     # must be set, and empty, before gunicorn starts
    export DRIFTWATCH_LEDGER=$PWD/driftwatch.db       # one SQLite ledger shared by every worker
    gunicorn -c gunicorn.conf.py app:app --bind 127.0.0.1:8000 --workers 2
    curl '127.0.0.1:8000/ask?q=hello'; curl 127.0.0.1:8000/metrics

Each worker is a separate process: prometheus_client's multiprocess mode writes every worker's
metrics to files in PROMETHEUS_MULTIPROC_DIR and `/metrics` serves their aggregate. (Exemplars are
not available in this mode.) The agent tunes its own prompt every 10 calls it serves, so the ledger
shows the same rewrites from each worker.
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

import driftwatch

PROMPTS = ["You are a helpful assistant.", "You are a helpful assistant. Be brief.", "Answer in one word."]

app = FastAPI(title="driftwatch multiprocess example")
state = {"calls": 0, "prompt": PROMPTS[0]}


def model(prompt: str, question: str) -> str:
    """A stand-in for a hosted LLM (no network here): the answer length follows the prompt."""
    if "one word" in prompt:
        return "Yes."
    if "brief" in prompt:
        return f"Briefly: {question}."
    return f"Thank you for asking about {question}. Here is a detailed answer about {question}."


@driftwatch.watch(agent="api-bot")
async def answer(question: str) -> str:
    state["calls"] += 1
    if state["calls"] % 10 == 0:  # the agent's own self-tuning step
        state["prompt"] = PROMPTS[min(state["calls"] // 10, len(PROMPTS) - 1)]
    driftwatch.track("api-bot", "system_prompt", state["prompt"], kind="system_prompt", source="agent")
    return model(state["prompt"], question)


@app.get("/ask")
async def ask(q: str) -> dict[str, str]:
    return {"answer": await answer(q)}


@app.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
