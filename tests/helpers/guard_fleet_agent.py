"""One agent process of the approval fleet test (test_guard_fleet_postgres.py): a create_agent agent whose
tool-picking middleware adds a ``refund`` tool once a flag file exists.

Usage: python guard_fleet_agent.py FLAG_FILE   (ledger and poll interval from DRIFTWATCH_* variables)

The agent's policy holds ``tools`` changes for approval. It answers a call about every 20 ms until stdin closes.
Protocol on stdout, one line each: ``TOOLS <names> <unix time>`` whenever the set of tools the model receives
changes (the first call included); ``HELD <change id>`` once this process holds a change. The only stand-in is the
chat model (LangChain's GenericFakeChatModel): it records the tools bound to each request it receives.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from prometheus_client import CollectorRegistry

import driftwatch
from driftwatch.integrations.langgraph import DriftwatchMiddleware

AGENT = "fleet-bot"
RECEIVED: list[tuple[str, ...]] = []


class ToolModel(GenericFakeChatModel):
    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: list[Any], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        RECEIVED.append(tuple(sorted(t["function"]["name"] for t in kwargs.get("tools") or ())))
        return super()._generate(messages, stop, run_manager, **kwargs)


@tool
def search(query: str) -> str:
    """Search the knowledge base."""
    return "results"


@tool
def refund(order: str) -> str:
    """Refund an order."""
    return "refunded"


class ToolPicker(AgentMiddleware):
    """The agent's own tool selection: ``refund`` joins once the flag file exists."""

    def __init__(self, flag: str) -> None:
        super().__init__()
        self.flag = flag

    def _pick(self, request: ModelRequest) -> ModelRequest:
        if os.path.exists(self.flag):
            return request
        return request.override(tools=[t for t in request.tools if t.name == "search"])

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], Any]) -> Any:
        return handler(self._pick(request))


def main() -> int:
    flag = sys.argv[1]
    rt = driftwatch.configure(registry=CollectorRegistry(), tracing=False, audit=False, drift=False)
    driftwatch.configure_agent(AGENT, approve=["tools"])
    model = ToolModel(messages=iter(lambda: AIMessage("Sure."), None))
    agent = create_agent(model, tools=[search, refund], middleware=[ToolPicker(flag), DriftwatchMiddleware(AGENT)])
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    last: tuple[str, ...] | None = None
    held = False
    while not stop.is_set():
        agent.invoke({"messages": [HumanMessage("hello")]})
        if RECEIVED[-1] != last:
            last = RECEIVED[-1]
            print(f"TOOLS {','.join(last)} {time.time():.3f}", flush=True)
        if not held and rt.guard.held(AGENT):
            held = True
            print(f"HELD {next(iter(rt.guard.held(AGENT).values()))}", flush=True)
        time.sleep(0.02)
    rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
