"""Call sites: which model call inside a node is which, and which of a run's tool calls are the agent's own.

A node may make more than one model call: the agent's own turn, and helper calls beside it — LangChain's
``LLMToolSelectorMiddleware`` and ``SummarizationMiddleware``, a guard or classifier, a structured-output
extraction. Filed under one component they would alternate (a "change" on every call), so each call site is a
component of its own, named ``<node>[<site>]`` (``model[tool_selection].system_prompt``); the node's own call
keeps ``<node>``. The site is, first that applies:

1. ``lc_source`` — the metadata LangChain's middleware puts on its internal model calls (``tool_selection``,
   ``summarization``, ``tool_emulation``; third-party middleware tags its own the same way; LangChain < 1.4
   tags none, so ``LLMToolSelectorMiddleware``'s call is known there by its ``ToolSelectionResponse`` schema);
2. the call's run name — ``llm.with_config(run_name="guard")`` names a helper call site of your own;
3. the schema of a structured-output call (``llm.with_structured_output(Verdict)`` → ``Verdict``).

A call is a *helper* call (not the agent's own turn) when it is tagged by middleware (``lc_source`` or
``lc_internal_call``) or asks for structured output: its tool calls are never agent tools (they are its
schema), and it does not name the agent's model (``gen_ai.request.model``).

Tool calls counted (``driftwatch_tool_calls_total``, the ``tool_mix`` signal) are those of the agent's own
model calls, less structured-output schemas (``ToolStrategy(Answer)`` binds ``Answer`` as a tool), and — when
the graph runs its tools through ``ToolNode`` — only names in the agent's tool registry (the tools of its
``ToolNode`` nodes, subgraphs included) or offered to the model by middleware.

A per-request tool *selection* (``LLMToolSelectorMiddleware`` choosing a few tools for each request) is not a
self-modification: when a ``tool_selection`` call ran in the same node task, the tools of the call it narrowed
are not compared. What the selector may choose from is the tools of its own call site
(``model[tool_selection].tools``): a tool added to or removed from the agent shows there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from driftwatch.tracing import provider_name

__all__ = ["TOOL_SELECTION", "call_site", "model_of", "names_of", "structured_names", "tool_registry"]

#: the site (``lc_source``) of a per-request tool selection
TOOL_SELECTION = "tool_selection"
#: the schema LangChain's LLMToolSelectorMiddleware asks for (how its call is known before lc_source, < 1.4)
_SELECTOR_SCHEMA = "ToolSelectionResponse"

#: metadata keys LangChain (>= 1.x) puts on middleware-internal model calls
_SOURCE = "lc_source"
_INTERNAL = "lc_internal_call"
#: the ``options`` key of a ``with_structured_output`` call (langchain-core)
_STRUCTURED = "ls_structured_output_format"
_SITE_MAX = 64


def _site_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip().replace("[", "(").replace("]", ")")[:_SITE_MAX]
    return text or None


def _schema_title(options: Mapping[str, Any] | None) -> str | None:
    fmt = options.get(_STRUCTURED) if options else None
    if fmt is None or not isinstance(fmt, Mapping):
        return None
    schema = fmt.get("schema")
    title = schema.get("title") if isinstance(schema, Mapping) else None
    return _site_name(title) or "structured_output"


def call_site(node: str, metadata: Mapping[str, Any] | None, run_name: Any,
              options: Mapping[str, Any] | None) -> tuple[str, bool, str | None]:
    """``(component prefix, helper, source)`` of one chat-model call made in ``node`` (see the module docstring);
    ``source`` is the helper's ``lc_source`` (``tool_selection`` for a tool selector's call)."""
    if run_name is None and (not options or _STRUCTURED not in options) \
            and (not metadata or (_SOURCE not in metadata and _INTERNAL not in metadata)):
        return node, False, None  # the node's own call (the common case: a few dict lookups)
    source = _site_name(metadata.get(_SOURCE)) if metadata else None
    structured = _schema_title(options)
    if source is None and structured == _SELECTOR_SCHEMA:
        source = TOOL_SELECTION
    helper = source is not None or structured is not None or bool(metadata and metadata.get(_INTERNAL))
    site = source or _site_name(run_name) or structured
    return (f"{node}[{site}]" if site else node), helper, source


_MODELS: dict[tuple[Any, Any], tuple[str | None, str | None]] = {}
_MODEL_KEYS = frozenset({"model", "model_name", "model_id"})
_MODELS_KEPT = 256


def model_of(metadata: Mapping[str, Any] | None, params: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """``(gen_ai.provider.name, gen_ai.request.model)`` of a chat-model call, from LangChain's ``ls_*``
    metadata (else the invocation parameters)."""
    provider = model = None
    if metadata:
        provider = metadata.get("ls_provider")
        model = metadata.get("ls_model_name")
    if not model and params and not _MODEL_KEYS.isdisjoint(params):  # (a model without a name has none)
        model = params.get("model") or params.get("model_name") or params.get("model_id")
    key = (provider, model)
    try:
        hit = _MODELS.get(key)
    except TypeError:  # an unhashable value: no cache
        hit = None
    if hit is not None:
        return hit
    result = (provider_name(provider if isinstance(provider, str) else None),
              model if isinstance(model, str) and model else None)
    if isinstance(provider, str | None) and isinstance(model, str | None):
        if len(_MODELS) >= _MODELS_KEPT:
            _MODELS.clear()
        _MODELS[key] = result
    return result


def structured_names(response_format: Any) -> set[str]:
    """The tool names a ``create_agent`` response format binds for structured output (``ToolStrategy``)."""
    if response_format is None:
        return set()
    names = set()
    for spec in getattr(response_format, "schema_specs", None) or ():
        name = getattr(spec, "name", None)
        if isinstance(name, str):
            names.add(name)
    if not names:
        schema = getattr(response_format, "schema", None)
        name = getattr(schema, "__name__", None) or (schema.get("title") if isinstance(schema, Mapping) else None)
        if isinstance(name, str):
            names.add(name)
    return names


_REGISTRIES: dict[int, tuple[Any, frozenset[str] | None]] = {}
_REGISTRIES_KEPT = 256
_REGISTRY_LOCK = threading.Lock()


def _walk(nodes: Any, out: set[str], found: list[bool], depth: int) -> None:
    if not isinstance(nodes, Mapping) or depth > 4:
        return
    for node in nodes.values():
        for runnable in (getattr(node, "bound", None), *(getattr(node, "subgraphs", None) or ())):
            by_name = getattr(runnable, "tools_by_name", None) if runnable is not None else None
            if isinstance(by_name, Mapping):
                found[0] = True
                out.update(str(n) for n in by_name)
            inner = getattr(runnable, "nodes", None)
            if inner is not None and inner is not nodes:
                _walk(inner, out, found, depth + 1)


def tool_registry(graph: Any) -> frozenset[str] | None:
    """The names of the tools a graph's ``ToolNode`` nodes run (subgraphs included), or ``None`` when it has
    none (the graph runs its tools itself: every tool call of the agent's own model calls counts).

    Cached per node table (copies of a graph made by ``with_config`` share it)."""
    nodes = getattr(graph, "nodes", None)
    if nodes is None:
        return None
    hit = _REGISTRIES.get(id(nodes))
    if hit is not None and hit[0] is nodes:
        return hit[1]
    names: set[str] = set()
    found = [False]
    _walk(nodes, names, found, 0)
    registry = frozenset(names) if found[0] else None
    with _REGISTRY_LOCK:
        if len(_REGISTRIES) >= _REGISTRIES_KEPT:
            _REGISTRIES.clear()
        _REGISTRIES[id(nodes)] = (nodes, registry)  # the table is pinned, so its id is not reused
    return registry


def names_of(tools: Iterable[Any]) -> set[str]:
    """Names of tool objects or OpenAI-format tool dicts."""
    out = set()
    for tool in tools:
        if isinstance(tool, Mapping):
            fn = tool.get("function") if isinstance(tool.get("function"), Mapping) else tool
            name = fn.get("name")
        else:
            name = getattr(tool, "name", None)
        if isinstance(name, str):
            out.add(name)
    return out
