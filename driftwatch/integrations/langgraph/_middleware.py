"""``DriftwatchMiddleware``: ``create_agent`` middleware (placed last) that sees each final model request, and
whose agent's runs are recorded through the marker it leaves on the compiled graph (``_marker``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from driftwatch.integrations import DidNotEnable
from driftwatch.integrations._common import jsonable
from driftwatch.integrations.langgraph import _guard as guard
from driftwatch.integrations.langgraph._handler import ACTIVE, MIDDLEWARE, DriftwatchCallbackHandler, check_normalizer
from driftwatch.integrations.langgraph._instrument import ensure_run_patches, run_patches_installed
from driftwatch.integrations.langgraph._marker import RunMarker
from driftwatch.integrations.langgraph._requests import (
    SKIP,
    content_text,
    hashable_key,
    items_key,
    node_of,
    observe_request,
)
from driftwatch.integrations.langgraph._sites import names_of, structured_names
from driftwatch.runtime import get_runtime, is_suppressed

try:  # create_agent's middleware lives in `langchain`, which a LangGraph-only install may lack
    from langchain.agents.middleware import AgentMiddleware as _AgentMiddleware
except ImportError:  # pragma: no cover - the `langgraph` extra installs langchain
    _AgentMiddleware = None  # type: ignore[assignment,misc]  # checked in DriftwatchMiddleware

__all__ = ["DriftwatchMiddleware"]

log = logging.getLogger("driftwatch")


def _model_name(model: Any) -> str:
    for attr in ("model_name", "model", "model_id", "deployment_name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__qualname__


def _request_params(request: Any) -> tuple[Any, Callable[[], Any]]:
    model = request.model
    settings = request.model_settings or {}
    fmt = request.response_format
    key = (id(model), items_key(settings.items()), hashable_key(request.tool_choice), id(fmt))

    def state() -> dict[str, Any]:
        out: dict[str, Any] = {"model": _model_name(model), "class": type(model).__qualname__,
                               "settings": jsonable(settings)}
        if request.tool_choice is not None:
            out["tool_choice"] = jsonable(request.tool_choice)
        if fmt is not None:
            schema = getattr(fmt, "schema", fmt)
            out["response_format"] = jsonable(schema)
        return out

    return key, state


def _metadata() -> dict[str, Any] | None:
    try:
        from langgraph.config import get_config

        return (get_config() or {}).get("metadata")
    except Exception:  # noqa: BLE001  # outside a graph run (no runnable context)
        return None


def _node() -> str:
    return node_of(_metadata(), "model")  # outside a graph run: the create_agent model node's name


def _request_state(request: Any) -> Callable[[], Any]:
    return _request_params(request)[1]


def _observe_model_request(agent: str, request: Any, normalize: Callable[[str], str] | None = None) -> bool:
    """Compare the request with the last one of its call site; tell the run's record what it offers. Returns
    whether a recorded run of ``agent`` is in progress."""
    rt = get_runtime()
    if not rt.enabled or is_suppressed():
        return True
    metadata = _metadata()
    inv = ACTIVE.get()
    if inv is not None and inv.agent != agent:
        inv = None
    tools: Any = list(request.tools or ())
    if inv is not None:
        inv.own("structured").update(structured_names(request.response_format))
        inv.own("offered").update(names_of(tools))
        if inv.selected(metadata):
            tools = SKIP  # chosen for this request by a tool selector: not the agent's tool set
    system = []
    message = getattr(request, "system_message", None)  # langchain >= 1.1: a SystemMessage
    if message is not None:
        system.append(content_text(message.content))
    elif isinstance(getattr(request, "system_prompt", None), str):  # langchain 1.0: the prompt as a string
        system.append(request.system_prompt)
    system.extend(content_text(m.content) for m in request.messages if getattr(m, "type", None) == "system")
    key, state = _request_params(request)
    observe_request(rt, agent, node_of(metadata, "model"), system, tools, key, state, normalize)
    return inv is not None


if _AgentMiddleware is not None:

    class DriftwatchMiddleware(_AgentMiddleware):  # type: ignore[misc,valid-type]  # a real class when installed
        """``create_agent`` middleware (place it **last**) that watches the agent: its model requests and its runs.

        - Each final model request (after dynamic prompts, tool filters and model swaps made by earlier
          middleware): prompt, tool-set and model / setting changes, as ``system_prompt``, ``tools`` and
          ``model_params`` changes of ``agent``, without adding a graph node. Helper model calls of other
          middleware (a tool selector's, a summarizer's) are call sites of their own. A guard's pinned
          revisions are what the model receives (``docs/guardrails.md``).
        - Each run of the agent (``invoke``, ``ainvoke``, ``stream``, ``astream``, and what runs through them):
          one call record — status, duration, output size, the tools its model called, tokens — and an
          ``invoke_agent {agent}`` span, as ``driftwatch.watch(agent_graph, agent=...)`` gives (LangChain >= 1.4,
          whose ``create_agent`` keeps the middleware's stream transformers on the graph; the middleware's
          ``transformers`` carry the marker). Watching the graph with ``driftwatch.watch`` as well records each
          run once.
        """

        def __init__(self, agent: str, *, normalize_prompt: Callable[[str], str] | None = None) -> None:
            if not isinstance(agent, str) or not agent.strip():
                raise ValueError(f"DriftwatchMiddleware(agent={agent!r}): expected a non-empty string")
            super().__init__()
            self.agent = agent
            self.normalize_prompt = check_normalizer(normalize_prompt)
            handler = DriftwatchCallbackHandler(agent, normalize_prompt=self.normalize_prompt)
            handler.chain_attribution = False  # create_agent keeps no prompt in state: chain events only stream
            #: the marker create_agent hands to the compiled graph (its ``stream_transformers``)
            self.transformers = (RunMarker(agent, handler),)
            self._unrecorded_warned = False
            try:
                ensure_run_patches()
            except Exception as exc:  # noqa: BLE001  # the agent runs; its changes are still seen
                get_runtime().error("langgraph", exc)

        @property
        def name(self) -> str:
            return "DriftwatchMiddleware"

        def _see(self, request: Any) -> None:
            try:
                if not _observe_model_request(self.agent, request, self.normalize_prompt):
                    self._not_recorded()
            except Exception as exc:  # noqa: BLE001  # never break the host
                get_runtime().error("langgraph", exc)

        def _not_recorded(self) -> None:
            """A model call outside a recorded run of the agent: re-arm the run patches (taken back by
            ``uninstrument()``), or say once that this graph's runs cannot be recorded without ``watch``."""
            if not run_patches_installed():
                ensure_run_patches()
            elif not self._unrecorded_warned:
                self._unrecorded_warned = True
                log.warning("DriftwatchMiddleware(agent=%r): this agent's runs are not recorded (calls, spans, "
                            "output; a create_agent of LangChain < 1.4 keeps no middleware marker): also wrap it "
                            "with driftwatch.watch(agent_graph, agent=%r)", self.agent, self.agent)

        def _guarded(self, request: Any) -> Any:
            """Observe the request, then the one to send (a guard's pinned revisions served)."""
            return guard.around_request(self.agent, request, self._see, _node, _request_state, _model_name)

        def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
            request = self._guarded(request)
            token = MIDDLEWARE.set(self.agent)
            try:
                return handler(request)
            finally:
                MIDDLEWARE.reset(token)

        async def awrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
            request = self._guarded(request)
            token = MIDDLEWARE.set(self.agent)
            try:
                return await handler(request)
            finally:
                MIDDLEWARE.reset(token)

else:  # pragma: no cover - the `langgraph` extra installs langchain

    class DriftwatchMiddleware:  # type: ignore[no-redef]  # stands in when langchain is missing
        """Needs ``langchain`` (``create_agent``): pip install 'driftwatch-agents[langgraph]'."""

        def __init__(self, agent: str, **options: Any) -> None:
            raise DidNotEnable("DriftwatchMiddleware needs langchain>=1.0: pip install 'driftwatch-agents[langgraph]'")
