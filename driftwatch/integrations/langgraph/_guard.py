"""Guard enforcement on LangGraph / LangChain model calls (see ``docs/guardrails.md``).

A component the guard pinned (the agent is frozen and tried a change, a change waits for approval, a rollback's
target, an approved revision) is served as recorded, per node:

- ``create_agent`` (:class:`~driftwatch.integrations.langgraph.DriftwatchMiddleware`): the model request is
  rewritten — system prompt, tool set (from the tool objects this node's requests carried before) and model
  and settings (from the models seen before) — so the model receives the pinned revision;
- a graph whose node builds its own messages (the callback handler): the system message the model is about to
  receive is set to the pinned prompt (its content is rewritten in place, before the model runs). Tools and
  settings bound to a model cannot be changed from a callback: a refused change of those is recorded (and
  counted) but the model receives the agent's own.

Each model call first checks the guard's serial for the agent (a dict lookup); when the guard state moved
(an unfreeze, an approval, a rollback), the node's cached keys are dropped so its request is compared with the
tracker again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from driftwatch.integrations._common import PerRuntime
from driftwatch.integrations.langgraph._requests import _SLOTS, _tool_spec, _tools_state, content_text
from driftwatch.runtime import Runtime, get_runtime, is_suppressed

__all__ = ["around_request", "enforce_messages", "enforce_request", "refresh", "remember"]

_KEPT = 256  # tool and model objects remembered per node


class _Seen:
    """Per (agent, node): the guard serial last seen; per (agent, ""): the tool and model objects its requests
    carried."""

    __slots__ = ("lock", "model_obj", "models", "serial", "tools", "tools_obj")

    def __init__(self) -> None:
        self.serial = 0
        self.tools: dict[str, Any] = {}
        self.tools_obj: Any = None
        self.models: dict[str, Any] = {}
        self.model_obj: Any = None
        self.lock = threading.Lock()


_SEEN: PerRuntime[tuple[str, str], _Seen] = PerRuntime(itemgetter(0))


def refresh(rt: Runtime, agent: str, node: str, serial: int | None = None) -> None:
    """Per model call, before it is observed: poll operator commands when due (unless ``serial`` was just read with
    :meth:`~driftwatch.guardrails.engine.Guard.tick`); when the agent's guard state moved, forget the node's
    cached keys."""
    if serial is None:
        serial = rt.guard.tick(agent)
    if not serial:
        return
    seen = _SEEN.get(rt, (agent, node), _Seen)
    if seen.serial == serial:
        return
    slot = _SLOTS.values(rt).get((agent, node))
    if slot is not None:
        slot.system_key = slot.tools_key = slot.params_key = slot.tools_obj = None
    seen.serial = serial


def remember(rt: Runtime, agent: str, tools: Sequence[Any] | None, model: Any,
             model_name: Callable[[Any], str]) -> None:
    """Keep the agent's tool and model objects of a request (cheap: identity checks unless they changed)."""
    seen = _SEEN.get(rt, (agent, ""), _Seen)
    if tools is not None and tools is not seen.tools_obj:
        with seen.lock:
            for tool in tools:
                name = tool.get("name") if isinstance(tool, dict) else getattr(tool, "name", None)
                if isinstance(name, str):
                    seen.tools[name] = tool
            while len(seen.tools) > _KEPT:
                seen.tools.pop(next(iter(seen.tools)))
            seen.tools_obj = tools
    if model is not None and model is not seen.model_obj:
        name = model_name(model)
        with seen.lock:
            seen.models[name] = model
            while len(seen.models) > _KEPT:
                seen.models.pop(next(iter(seen.models)))
            seen.model_obj = model


def enforce_request(rt: Runtime, agent: str, node: str, request: Any, params_state: Callable[[], Any],
                    model_name: Callable[[Any], str]) -> Any:
    """The request to send: ``request`` itself, or a copy serving the node's pinned revisions."""
    pins = rt.guard.pins(agent)
    if pins is None:
        return request
    overrides: dict[str, Any] = {}
    prompt = pins.get(f"{node}.system_prompt")
    if prompt is not None and isinstance(prompt.state, str):
        system = []
        message = getattr(request, "system_message", None)  # langchain >= 1.1: a SystemMessage
        if message is not None:
            system.append(content_text(message.content))
        elif isinstance(getattr(request, "system_prompt", None), str):  # langchain 1.0: the prompt as a string
            system.append(request.system_prompt)
        in_messages = [m for m in request.messages if getattr(m, "type", None) == "system"]
        system.extend(content_text(m.content) for m in in_messages)
        if "\n".join(system) != prompt.state:
            if hasattr(request, "system_message"):
                from langchain_core.messages import SystemMessage

                overrides["system_message"] = SystemMessage(content=prompt.state)
            else:  # langchain 1.0
                overrides["system_prompt"] = prompt.state
            if in_messages:
                overrides["messages"] = [m for m in request.messages if getattr(m, "type", None) != "system"]
    seen = _SEEN.get(rt, (agent, ""), _Seen)
    tools = pins.get(f"{node}.tools")
    if tools is not None and isinstance(tools.state, list) and _tools_state(list(request.tools or ())) != tools.state:
        chosen = []
        for spec in tools.state:
            tool = seen.tools.get(spec.get("name")) if isinstance(spec, dict) else None
            if tool is None or _tool_spec(tool) != spec:
                raise LookupError(f"guard: the pinned tool {spec.get('name') if isinstance(spec, dict) else spec!r} "
                                  f"of {agent}/{node} was never seen in this process: the model keeps its own tools")
            chosen.append(tool)
        overrides["tools"] = chosen
    params = pins.get(f"{node}.model_params")
    if params is not None and isinstance(params.state, dict) and params_state() != params.state:
        want = params.state
        if want.get("model") != model_name(request.model):
            model = seen.models.get(want.get("model"))
            if model is None:
                raise LookupError(f"guard: the pinned model {want.get('model')!r} of {agent}/{node} was never seen in "
                                  "this process: the request keeps its own")
            overrides["model"] = model
        overrides["model_settings"] = dict(want.get("settings") or {})
        if "tool_choice" in want or request.tool_choice is not None:
            overrides["tool_choice"] = want.get("tool_choice")
    return request.override(**overrides) if overrides else request


def around_request(agent: str, request: Any, see: Callable[[Any], None], node_of_call: Callable[[], str],
                   params_state: Callable[[Any], Callable[[], Any]], model_name: Callable[[Any], str]) -> Any:
    """The middleware's model call: refresh, ``see(request)`` (observe it), then the request to send (pinned
    revisions served). Guard errors are counted; the request is then sent as the agent built it."""
    rt = get_runtime()
    if not rt.enabled or is_suppressed():
        see(request)
        return request
    guard = rt.guard
    node = None
    try:
        serial = guard.tick(agent)  # polls operator commands when due
        if serial:
            node = node_of_call()
            refresh(rt, agent, node, serial)
    except Exception as exc:  # noqa: BLE001  # never break the host
        rt.error("guard", exc)
    see(request)
    try:
        remember(rt, agent, request.tools, request.model, model_name)
        if guard.pins(agent) is None:
            return request
        return enforce_request(rt, agent, node or node_of_call(), request, params_state(request), model_name)
    except Exception as exc:  # noqa: BLE001  # never break the host: the agent's own request goes out
        rt.error("guard", exc)
        return request


def enforce_messages(rt: Runtime, agent: str, node: str, messages: list[list[Any]]) -> None:
    """The system message a model is about to receive, set to the node's pinned prompt (in place)."""
    pins = rt.guard.pins(agent)
    if pins is None:
        return
    prompt = pins.get(f"{node}.system_prompt")
    if prompt is None or not isinstance(prompt.state, str):
        return
    for batch in messages:
        system = [m for m in batch if getattr(m, "type", None) == "system"]
        if not system or "\n".join(content_text(m.content) for m in system) == prompt.state:
            continue
        system[0].content = prompt.state
        for extra in system[1:]:
            extra.content = ""
