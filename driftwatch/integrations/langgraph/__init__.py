"""LangGraph / LangChain: prompt, tool, model-setting, store and topology changes of a running agent.

Four ways in, from the narrowest to the widest:

>>> graph = driftwatch.watch(builder.compile(), agent="support-bot")          # one compiled graph
>>> @driftwatch.watch(agent="support-bot")                                    # a factory that builds one
... def build() -> CompiledStateGraph: ...
>>> agent = create_agent(model, tools, middleware=[..., DriftwatchMiddleware(agent="support-bot")])
>>> driftwatch.integrations.langgraph.instrument()                            # every graph in the process

What is observed:

- **each chat-model call** (a ``run_inline`` callback handler; a watched graph's ``invoke``/``ainvoke`` run
  without it in their callbacks and hand it the model calls through class-level hooks on LangChain's callback
  managers, see ``_hooks``; streamed runs and graphs whose attribution needs chain events carry it in the run's
  callbacks, next to the user's own): the system prompt, the bound tools and the model settings, one set of
  components per call site: a node's own call (``agent.system_prompt``, ``agent.tools``, ``agent.model_params``;
  subgraph nodes read ``outer/inner.system_prompt``) and each helper call inside a node apart
  (``model[tool_selection]``, a call named with ``run_name=``, a structured-output call by its schema; see
  ``_sites``). A change is attributed to source ``agent`` and names the node when a node of the graph wrote the
  new prompt into a state key listed in ``prompt_keys`` or into the graph's store; otherwise its source is
  ``runtime``. Only a hash comparison runs per call; fingerprints and diffs only on change. The writer is known
  without chain callbacks: the watched copy's nodes note prompt writes in their state writers, and the handler
  ignores chain events except in streamed runs (for the output); a graph with subgraph nodes, and
  :func:`instrument`, attribute through chain events instead. A per-request tool selection is not compared as a
  ``tools`` change.
- **each run** (``invoke``/``ainvoke``/``stream``/``astream``, and ``astream_events``/``batch``, which run
  through them): status, duration, output size, the tools the agent's own model calls called (structured-
  output schemas and helper calls left out), token usage, and an ``invoke_agent {agent}`` span around the run
  (provider, model, conversation id; nested graphs of the same agent count once). A ``create_agent`` graph
  with :class:`DriftwatchMiddleware` is recorded without ``watch`` (``_marker``).
- **topology**: a fingerprint of the builder's nodes, edges and branches when a graph is watched (a
  factory that returns a graph of another shape records a ``topology`` change on component ``graph``).
- **store writes** (``BaseStore.batch``/``abatch`` of watched stores, filtered by namespace prefixes):
  kind ``store``, source ``store``, component ``store:<namespace>/<key>``, the writing node; without
  ``store_namespaces`` a graph's store is watched for attribution only.

LangMem prompt optimizers (which emit no LangChain callbacks) have their own integration,
:mod:`driftwatch.integrations.langmem`, which this package does not need.

Options of :func:`watch_object` (``driftwatch.watch(obj, agent=..., **options)``): ``prompt_keys`` —
state keys that hold prompts (default ``("system_prompt",)``); ``normalize_prompt`` — a function
``str -> str`` applied to the system prompt before it is compared, to strip the per-request parts of a
templated prompt (a user's name, today's date) that would otherwise count as a change on every call
(also an argument of :class:`DriftwatchMiddleware` and :func:`instrument`); ``store_namespaces`` — namespace
prefixes of a store to watch (tuples or ``"a/b"`` strings; for a graph, its store is watched only
when this is given; without it, it is watched only to attribute prompts read from it to the node that wrote
them).

The package, one module per concern: ``_handler`` (the callback handler), ``_requests`` (a model
request's prompt, tools and settings per call site), ``_sites`` (which call site a model call is, which tool
calls are the agent's), ``_attribution`` (which node wrote a prompt: state-writer spies), ``_runs`` (recording
each run of a watched graph), ``_topology``, ``_stores``, ``_middleware`` (:class:`DriftwatchMiddleware`),
``_marker`` (how a graph says a middleware watches it), ``_instrument`` (:func:`instrument`, the run patches),
``_hooks`` (the chat-model hooks of watched runs that carry no handler).
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
from driftwatch.integrations.langgraph._stores import note_store_writes, watch_store
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
        if isinstance(store, BaseStore):
            note_store_writes(store, agent=agent)  # prompts read from the store: who wrote them
            if namespaces is not None:
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
