"""LangGraph / LangChain: prompt, tool, model-setting, store and topology changes of a running agent.

Four ways in, from the narrowest to the widest:

>>> graph = driftwatch.watch(builder.compile(), agent="support-bot")          # one compiled graph
>>> @driftwatch.watch(agent="support-bot")                                    # a factory that builds one
... def build() -> CompiledStateGraph: ...
>>> agent = create_agent(model, tools, middleware=[..., DriftwatchMiddleware(agent="support-bot")])
>>> driftwatch.integrations.langgraph.instrument()                            # every graph in the process

What is observed:

- **each chat-model call** (a ``run_inline`` callback handler, added to the graph's config next to the
  user's own callbacks): the system prompt, the bound tools and the model settings, one component per
  graph node (``agent.system_prompt``, ``agent.tools``, ``agent.model_params``; subgraph nodes read
  ``outer/inner.system_prompt``). A change is attributed to source ``agent`` and names the node when a
  node of the graph wrote the new prompt into a state key listed in ``prompt_keys``; otherwise its
  source is ``runtime``. Only a hash comparison runs per call; fingerprints and diffs only on change.
  The writer is known without chain callbacks: the watched copy's nodes note prompt writes in their
  state writers, and the handler ignores chain events except in streamed runs (for the output);
  a graph with subgraph nodes, and :func:`instrument`, attribute through chain events instead.
- **each run** (``invoke``/``ainvoke``/``stream``/``astream``, and ``astream_events``/``batch``, which run
  through them): status, duration, output size, tool calls by name and token usage, and an
  ``invoke_agent {agent}`` span around the run (nested graphs of the same agent count once).
- **topology**: a fingerprint of the builder's nodes, edges and branches when a graph is watched (a
  factory that returns a graph of another shape records a ``topology`` change on component ``graph``).
- **store writes** (``BaseStore.batch``/``abatch`` of watched stores, filtered by namespace prefixes):
  kind ``store``, source ``store``, component ``store:<namespace>/<key>``.

LangMem prompt optimizers (which emit no LangChain callbacks) have their own integration,
:mod:`driftwatch.integrations.langmem`, which this package does not need.

Options of :func:`watch_object` (``driftwatch.watch(obj, agent=..., **options)``): ``prompt_keys`` —
state keys that hold prompts (default ``("system_prompt",)``); ``normalize_prompt`` — a function
``str -> str`` applied to the system prompt before it is compared, to strip the per-request parts of a
templated prompt (a user's name, today's date) that would otherwise count as a change on every call
(also an argument of :class:`DriftwatchMiddleware` and :func:`instrument`); ``store_namespaces`` — namespace
prefixes of a store to watch (tuples or ``"a/b"`` strings; for a graph, its store is watched only
when this is given).

The package, one module per concern: ``_handler`` (the callback handler), ``_requests`` (a model
request's prompt, tools and settings per node), ``_attribution`` (which node wrote a prompt: state-writer
spies), ``_runs`` (recording each run of a watched graph), ``_topology``, ``_stores``, ``_middleware``
(:class:`DriftwatchMiddleware`), ``_instrument`` (:func:`instrument`, the patch registry).
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import Runnable
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore

from driftwatch.integrations.langgraph._handler import (
    DEFAULT_PROMPT_KEYS,
    DriftwatchCallbackHandler,
    check_normalizer,
    check_prompt_keys,
)
from driftwatch.integrations.langgraph._instrument import check_versions, instrument, is_instrumented, uninstrument
from driftwatch.integrations.langgraph._middleware import DriftwatchMiddleware
from driftwatch.integrations.langgraph._runs import with_handler
from driftwatch.integrations.langgraph._stores import watch_store
from driftwatch.integrations.langgraph._topology import observe_topology, topology

__all__ = [
    "DEFAULT_PROMPT_KEYS",
    "DriftwatchCallbackHandler",
    "DriftwatchMiddleware",
    "instrument",
    "is_instrumented",
    "topology",
    "uninstrument",
    "watch_object",
    "watch_store",
]

_OPTIONS = ("prompt_keys", "normalize_prompt", "store_namespaces")


def watch_object(obj: Any, *, agent: str, **options: Any) -> Any:
    """Instrument a LangGraph / LangChain object for ``agent`` (called by :func:`driftwatch.watch`).

    - a compiled graph (``StateGraph.compile()``, ``create_agent``): a copy of the same class that records
      each run and sees each model call (its config keeps the user's callbacks); its topology is
      fingerprinted now; with ``store_namespaces=``, its store's writes are watched too;
    - a ``BaseStore``: its writes under ``store_namespaces`` (default: all) are recorded; returned as is;
    - any other Runnable (a chat model, a chain): ``with_config`` with the handler attached (prompt,
      tools and settings changes of its model calls; calls are recorded only for graphs).
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"driftwatch.watch got unknown option(s) {', '.join(unknown)} for a LangGraph/LangChain "
                        f"object; expected {', '.join(_OPTIONS)}")
    check_versions()
    prompt_keys = check_prompt_keys(options.get("prompt_keys", DEFAULT_PROMPT_KEYS))
    normalize = check_normalizer(options.get("normalize_prompt"))
    namespaces = options.get("store_namespaces")
    if isinstance(obj, type):
        raise TypeError(f"driftwatch.watch cannot watch the class {obj.__name__}: watch a compiled graph "
                        "(StateGraph(...).compile()), a store or a function that builds one")
    if isinstance(obj, Pregel):
        handler = DriftwatchCallbackHandler(agent, prompt_keys=prompt_keys, normalize_prompt=normalize)
        watched = with_handler(obj, handler)
        observe_topology(agent, obj)
        store = getattr(obj, "store", None)
        if namespaces is not None and isinstance(store, BaseStore):
            watch_store(store, agent=agent, namespaces=namespaces)
        return watched
    if isinstance(obj, BaseStore):
        return watch_store(obj, agent=agent, namespaces=namespaces)
    if hasattr(obj, "compile") and hasattr(obj, "add_node"):
        raise TypeError(f"driftwatch.watch got an uncompiled {type(obj).__name__}: watch the compiled graph, "
                        "driftwatch.watch(builder.compile(), agent=...)")
    if isinstance(obj, Runnable):
        return obj.with_config(callbacks=[DriftwatchCallbackHandler(agent, prompt_keys=prompt_keys,
                                                                    normalize_prompt=normalize)])
    raise TypeError(f"driftwatch.watch cannot watch a {type(obj).__name__}: expected a compiled LangGraph graph, "
                    "a LangGraph store or a LangChain Runnable")
