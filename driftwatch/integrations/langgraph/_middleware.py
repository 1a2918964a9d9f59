"""``DriftwatchMiddleware``: ``create_agent`` middleware (placed last) that sees each final model request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from driftwatch.integrations import DidNotEnable
from driftwatch.integrations._common import jsonable
from driftwatch.integrations.langgraph import _guard as guard
from driftwatch.integrations.langgraph._handler import MIDDLEWARE, check_normalizer
from driftwatch.integrations.langgraph._requests import content_text, hashable_key, items_key, node_of, observe_request
from driftwatch.runtime import get_runtime, is_suppressed

try:  # create_agent's middleware lives in `langchain`, which a LangGraph-only install may lack
    from langchain.agents.middleware import AgentMiddleware as _AgentMiddleware
except ImportError:  # pragma: no cover - the `langgraph` extra installs langchain
    _AgentMiddleware = None  # type: ignore[assignment,misc]  # checked in DriftwatchMiddleware

__all__ = ["DriftwatchMiddleware"]


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


def _node() -> str:
    try:
        from langgraph.config import get_config

        return node_of((get_config() or {}).get("metadata"), "model")
    except Exception:  # noqa: BLE001  # outside a graph run: the create_agent model node's name
        return "model"


def _request_state(request: Any) -> Callable[[], Any]:
    return _request_params(request)[1]


def _observe_model_request(agent: str, request: Any, normalize: Callable[[str], str] | None = None) -> None:
    rt = get_runtime()
    if not rt.enabled or is_suppressed():
        return
    node = _node()
    system = []
    message = getattr(request, "system_message", None)  # langchain >= 1.1: a SystemMessage
    if message is not None:
        system.append(content_text(message.content))
    elif isinstance(getattr(request, "system_prompt", None), str):  # langchain 1.0: the prompt as a string
        system.append(request.system_prompt)
    system.extend(content_text(m.content) for m in request.messages if getattr(m, "type", None) == "system")
    key, state = _request_params(request)
    observe_request(rt, agent, node, system, list(request.tools or ()), key, state, normalize)


if _AgentMiddleware is not None:

    class DriftwatchMiddleware(_AgentMiddleware):  # type: ignore[misc,valid-type]  # a real class when installed
        """``create_agent`` middleware (place it **last**) that sees each final model request.

        It records prompt, tool-set and model / setting changes (dynamic prompts, tool pruning, model
        swaps made by earlier middleware) as ``system_prompt``, ``tools`` and ``model_params`` changes of
        ``agent``, without adding a graph node. For per-invoke behaviour metrics, also wrap the agent
        with ``driftwatch.watch(agent_graph, agent=...)``; the two never count a model call twice.
        """

        def __init__(self, agent: str, *, normalize_prompt: Callable[[str], str] | None = None) -> None:
            if not isinstance(agent, str) or not agent.strip():
                raise ValueError(f"DriftwatchMiddleware(agent={agent!r}): expected a non-empty string")
            super().__init__()
            self.agent = agent
            self.normalize_prompt = check_normalizer(normalize_prompt)

        @property
        def name(self) -> str:
            return "DriftwatchMiddleware"

        def _see(self, request: Any) -> None:
            try:
                _observe_model_request(self.agent, request, self.normalize_prompt)
            except Exception as exc:  # noqa: BLE001  # never break the host
                get_runtime().error("langgraph", exc)

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
