"""What a model request carries, per call site (a graph node, or a helper call site inside one, see
``_sites``): its system prompt, its tools and its model settings (three components, ``<site>.system_prompt``,
``<site>.tools``, ``<site>.model_params``), compared with the last request cheaply (hashes, identities) and
fingerprinted only when they moved."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

from driftwatch.integrations._common import PerRuntime, jsonable
from driftwatch.integrations.langgraph._attribution import writes_of
from driftwatch.revision import cheap_key
from driftwatch.runtime import Runtime
from driftwatch.tracker import Lazy, Tracker

__all__ = ["SKIP", "content_text", "hashable_key", "items_key", "node_of", "observe_request"]

#: ``tools=SKIP``: the request's tools are not compared (chosen for this request by a tool selector)
SKIP: Any = object()


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return "".join(parts)
    return "" if content is None else str(content)


def _tool_spec(tool: Any) -> dict[str, Any]:
    """A model-neutral ``{name, description, parameters}`` of a tool (OpenAI/Anthropic dict or tool object)."""
    if not isinstance(tool, dict):
        try:
            from langchain_core.utils.function_calling import convert_to_openai_tool

            tool = convert_to_openai_tool(tool)
        except Exception:  # noqa: BLE001  # a provider-specific tool object: name it only
            return {"name": str(getattr(tool, "name", type(tool).__qualname__))}
    fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    spec = {"name": str(fn.get("name", tool.get("type", ""))), "description": fn.get("description") or ""}
    params = fn.get("parameters", fn.get("input_schema"))
    if params is not None:
        spec["parameters"] = jsonable(params)
    if fn is tool and "name" not in tool:  # a provider built-in ({"type": "web_search", ...})
        spec["spec"] = jsonable(tool)
    return spec


def _tools_state(tools: Sequence[Any]) -> list[dict[str, Any]]:
    return sorted((_tool_spec(t) for t in tools), key=lambda s: s["name"])


#: value types that hash by value (settings of these kinds are used as they are, without a ``hash`` attempt)
_ATOMIC = frozenset({str, int, float, bool, type(None), bytes})
_second = itemgetter(1)


def hashable_key(value: Any) -> Any:
    """A cheap hashable stand-in for settings: atoms as they are, containers frozen, other hashable values as they
    are, the rest by identity (no exception raised for the usual kinds: the hot path of a model call)."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if kind is dict:
        return ("d", tuple((k, hashable_key(v)) for k, v in value.items()))
    if kind is list or kind is tuple:
        items = tuple(value)
        if _ATOMIC.issuperset(map(type, items)):  # a list of atoms (no per-item loop in Python)
            return ("l", items)
        return ("l", tuple([v if type(v) in _ATOMIC else hashable_key(v) for v in items]))
    try:
        hash(value)
        return value
    except TypeError:
        pass
    if isinstance(value, dict):
        return ("d", tuple((k, hashable_key(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("l", tuple(hashable_key(v) for v in value))
    return ("i", id(value))


def items_key(items: Iterable[tuple[str, Any]]) -> Any:
    """A hashable key of settings ``(name, value)`` pairs: the pairs themselves when every value is an atom (most
    models' settings), else with each other value frozen (:func:`hashable_key`)."""
    key = tuple(items)
    atomic = _ATOMIC
    if atomic.issuperset(map(type, map(_second, key))):  # every value an atom (no per-item loop in Python)
        return key
    # a Python loop, not ``map(hashable_key, ...)``: C calling a Python function costs more than the loop (~2x here)
    return tuple([(k, v if type(v) in atomic else hashable_key(v)) for k, v in key])


class _Slot:
    """Per (agent, call site): its three trackers and the last cheap keys seen (skips the tracker call)."""

    __slots__ = ("params", "params_key", "system", "system_key", "tools", "tools_key", "tools_obj")

    def __init__(self, rt: Runtime, agent: str, node: str) -> None:
        self.system: Tracker = rt.tracker(agent, f"{node}.system_prompt")
        self.tools: Tracker = rt.tracker(agent, f"{node}.tools")
        self.params: Tracker = rt.tracker(agent, f"{node}.model_params")
        self.system_key: Any = None
        self.tools_key: Any = None
        self.tools_obj: Any = None
        self.params_key: Any = None


#: per (agent, call site), for the runtime in use (its trackers)
_SLOTS: PerRuntime[tuple[str, str], _Slot] = PerRuntime(itemgetter(0))


def observe_request(rt: Runtime, agent: str, site: str, system: Sequence[str], tools: Sequence[Any] | None,
                     params_key: Any, params_state: Callable[[], Any],
                     normalize: Callable[[str], str] | None = None) -> None:
    """Compare one model request's prompt, tools (unless ``SKIP``) and settings with the last ones (cheap keys
    first)."""
    slot = _SLOTS.values(rt).get((agent, site))
    if slot is None:
        slot = _SLOTS.get(rt, (agent, site), lambda: _Slot(rt, agent, site))
    if normalize is None:
        key: Any = tuple(map(hash, system))
        text = None
    else:  # the user strips per-request parts (names, dates) of a templated prompt
        text = normalize("\n".join(system))
        key = hash(text)
    if key != slot.system_key:
        raw = "\n".join(system)
        writer = writes_of(agent).writer(raw) if raw else None
        slot.system.observe(raw if text is None else text, key=key, kind="system_prompt",
                            source="agent" if writer else "runtime", node=writer)
        slot.system_key = key
    if tools is not SKIP:
        tools = tools or ()
        if tools is not slot.tools_obj:  # the same list (or no tools again): nothing to compare
            _observe_tools(slot, tools)
    if params_key != slot.params_key:
        slot.params.observe(Lazy(params_state), key=params_key, kind="model_params", source="runtime")
        slot.params_key = params_key


def _observe_tools(slot: _Slot, tools: Sequence[Any]) -> None:
    if tools is not slot.tools_obj or len(tools) != len(slot.tools_obj or ()):
        tkey = cheap_key(jsonable(list(tools))) if tools and isinstance(tools[0], dict) \
            else tuple((getattr(t, "name", None), hash(getattr(t, "description", None) or ""), id(t))
                       for t in tools)
        if tkey != slot.tools_key:
            slot.tools.observe(Lazy(lambda: _tools_state(tools)), key=tkey, kind="tools", source="runtime")
            slot.tools_key = tkey
        slot.tools_obj = tools


def node_of(metadata: dict[str, Any] | None, default: str) -> str:
    if not metadata:
        return default
    node = metadata.get("langgraph_node")
    if node is None:
        return default
    ns = metadata.get("langgraph_checkpoint_ns") or ""
    if "|" in ns:  # a subgraph's node: name it by its path of node names (task ids stripped)
        return "/".join(seg.split(":", 1)[0] for seg in ns.split("|"))
    return str(node)
