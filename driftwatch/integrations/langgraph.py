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
- **LangMem prompt optimizers** (which emit no LangChain callbacks): their ``invoke``/``ainvoke`` is
  wrapped; the prompt they return is a change with the optimizer's class name as source, and each run
  counts in ``driftwatch_optimizer_runs_total``.

Options of :func:`watch_object` (``driftwatch.watch(obj, agent=..., **options)``): ``prompt_keys`` —
state keys that hold prompts (default ``("system_prompt",)``); ``normalize_prompt`` — a function
``str -> str`` applied to the system prompt before it is compared, to strip the per-request parts of a
templated prompt (a user's name, today's date) that would otherwise count as a change on every call
(also an argument of :class:`DriftwatchMiddleware` and :func:`instrument`); ``store_namespaces`` — namespace
prefixes of a store to watch (tuples or ``"a/b"`` strings; for a graph, its store is watched only
when this is given); ``component`` — the component name of a LangMem optimizer's prompt.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.runnables import Runnable
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore, PutOp

from driftwatch.integrations import MINIMUM_VERSIONS, DidNotEnable
from driftwatch.observation import output_text
from driftwatch.runtime import CallScope, Runtime, get_runtime, is_suppressed
from driftwatch.tracing import Tracing
from driftwatch.tracker import Lazy, Tracker

try:  # create_agent's middleware lives in `langchain`, which a LangGraph-only install may lack
    from langchain.agents.middleware import AgentMiddleware as _AgentMiddleware
except ImportError:  # pragma: no cover - the `langgraph` extra installs langchain
    _AgentMiddleware = None  # type: ignore[assignment,misc]  # checked in DriftwatchMiddleware

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

#: state keys that hold prompts, unless ``prompt_keys=`` says otherwise
DEFAULT_PROMPT_KEYS: tuple[str, ...] = ("system_prompt",)
_OPTIONS = ("prompt_keys", "normalize_prompt", "store_namespaces", "component")
_WRITES_KEPT = 64  # prompt values remembered per agent for attribution
_NODE_RUNS_KEPT = 10_000  # node runs in progress remembered per handler


# -- versions ------------------------------------------------------------------------------------------

def _parse(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit()) if not part.isdigit() else part
        if not digits:
            break
        out.append(int(digits))
        if not part.isdigit():
            break
    return tuple(out)


_VERSIONS_OK: list[bool] = []


def _check_versions() -> None:
    """``DidNotEnable`` (with the pip command) when LangGraph or LangChain is older than supported."""
    if _VERSIONS_OK:
        return
    for package in ("langgraph", "langchain-core"):
        minimum = MINIMUM_VERSIONS[package]
        try:
            found = version(package)
        except PackageNotFoundError:  # pragma: no cover - imported above, so installed
            found = "0"
        if _parse(found) < _parse(minimum):
            raise DidNotEnable(f"driftwatch's LangGraph integration needs {package}>={minimum} (found {found}): "
                               "pip install 'driftwatch-agents[langgraph]'")
    _VERSIONS_OK.append(True)


# -- the active invocation -------------------------------------------------------------------------------

class _Invocation:
    """One watched graph run in progress: what the handler gathers for its call record."""

    __slots__ = ("agent", "handler", "input_tokens", "lock", "output", "output_tokens", "root", "stream", "tools")

    def __init__(self, handler: DriftwatchCallbackHandler, agent: str) -> None:
        self.handler = handler
        self.agent = agent
        self.stream = False  # a streamed run: its output comes from the root run's on_chain_end
        self.root: Any = None
        self.output: Any = None
        self.tools: list[str] = []
        self.input_tokens = 0
        self.output_tokens = 0
        self.lock = threading.Lock()


#: the innermost watched run in this context (LangGraph copies the context into its node threads)
_ACTIVE: contextvars.ContextVar[_Invocation | None] = contextvars.ContextVar("driftwatch_lg_run", default=None)
#: the agent whose DriftwatchMiddleware is observing the model call in progress
_MIDDLEWARE: contextvars.ContextVar[str | None] = contextvars.ContextVar("driftwatch_lg_mw", default=None)


# -- attribution: which node wrote which prompt --------------------------------------------------------

class _Writes:
    """Prompt values recently written into state by a node (value → node), per agent; bounded."""

    __slots__ = ("lock", "values")

    def __init__(self) -> None:
        self.values: OrderedDict[str, str] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, value: Any, node: str) -> None:
        if type(value) is str and self.values.get(value) == node:
            return  # a node writing back the prompt it wrote last time (a full-state return): nothing new
        texts: list[str] = []
        _texts(value, texts, 0)
        if not texts:
            return
        with self.lock:
            for text in texts:
                self.values[text] = node
                self.values.move_to_end(text)
            while len(self.values) > _WRITES_KEPT:
                self.values.popitem(last=False)

    def writer(self, text: str) -> str | None:
        """The node that wrote ``text`` (exactly, else the longest written value it contains)."""
        if not self.values:
            return None
        with self.lock:
            node = self.values.get(text)
            if node is not None:
                return node
            best = None
            for value, who in self.values.items():
                if value and value in text and (best is None or len(value) > len(best[0])):
                    best = (value, who)
        return best[1] if best is not None else None


_WRITES: dict[str, _Writes] = {}
_WRITES_LOCK = threading.Lock()


def _writes(agent: str) -> _Writes:
    w = _WRITES.get(agent)
    if w is None:
        with _WRITES_LOCK:
            w = _WRITES.setdefault(agent, _Writes())
    return w


#: names of the state-update mappers of ``StateGraph`` nodes (``CompiledStateGraph.attach_node``)
_STATE_MAPPERS = ("_get_updates",)


def _spy_mapper(mapper: Callable[[Any], Any], node: str, keys: frozenset[str], writes: _Writes,
                ) -> Callable[[Any], Any]:
    """``mapper`` (a node's ``(state key, value)`` update extractor) that also notes prompt writes."""

    def spy(value: Any) -> Any:
        updates = mapper(value)
        if updates:
            try:
                for key, written in updates:
                    if key in keys:
                        writes.add(written, node)
            except Exception as exc:  # noqa: BLE001  # never break the host
                get_runtime().error("langgraph", exc)
        return updates

    spy.__wrapped__ = mapper  # type: ignore[attr-defined]  # unwrapped when the graph is watched again
    spy.__name__ = getattr(mapper, "__name__", "spy")
    spy._driftwatch_spy = True  # type: ignore[attr-defined]  # marks ours
    return spy


def _unspied(mapper: Any) -> Any:
    return mapper.__wrapped__ if getattr(mapper, "_driftwatch_spy", False) else mapper


def _spied_nodes(graph: Any, agent: str, prompt_keys: Sequence[str]) -> dict[str, Any] | None:
    """The graph's nodes with prompt writes noted by their state writers, or ``None`` when that is not possible.

    Attribution (which node wrote a new prompt into state) then needs no chain callbacks: the watched
    graph's handler ignores chain events, which LangChain then skips dispatching (~15-20 µs per
    invoke on a 3-node graph). When no prompt key is a channel of the graph (no node can write one),
    the nodes are returned without spies. ``None`` — keep attributing through chain events — when a
    node runs a subgraph (its nodes are not ours to copy) or has no recognizable state writer. The
    nodes are copies: the original graph is untouched.
    """
    from langgraph.pregel._write import ChannelWrite, ChannelWriteTupleEntry

    nodes = getattr(graph, "nodes", None)
    channels = getattr(graph, "channels", None)
    if not isinstance(nodes, dict) or not isinstance(channels, dict):
        return None
    keys = frozenset(k for k in prompt_keys if k in channels)
    writes = _writes(agent)
    out: dict[str, Any] = {}
    for name, node in nodes.items():
        if getattr(node, "subgraphs", None):
            return None
        writers = getattr(node, "writers", None)
        if name == "__start__" or not isinstance(writers, list):  # the caller's input is not a node's write
            out[name] = node
            continue
        found = False
        new_writers = []
        for writer in writers:
            if type(writer) is not ChannelWrite:
                new_writers.append(writer)
                continue
            entries = []
            for entry in writer.writes:
                if type(entry) is ChannelWriteTupleEntry \
                        and getattr(_unspied(entry.mapper), "__name__", None) in _STATE_MAPPERS:
                    found = True
                    mapper = _unspied(entry.mapper)
                    if keys:
                        mapper = _spy_mapper(mapper, str(name), keys, writes)
                    entries.append(entry._replace(mapper=mapper))
                else:
                    entries.append(entry)
            new_writers.append(ChannelWrite(entries, tags=writer.tags))
        if not found and keys:
            return None
        out[name] = node.copy({"writers": new_writers})
    return out


def _texts(value: Any, out: list[str], depth: int) -> None:
    if isinstance(value, str):
        if value:
            out.append(value)
    elif depth < 3:
        content = getattr(value, "content", None)
        if content is not None and not isinstance(value, dict):
            _texts(content, out, depth + 1)
        elif isinstance(value, dict):
            for v in value.values():
                _texts(v, out, depth + 1)
        elif isinstance(value, list | tuple):
            for v in value:
                _texts(v, out, depth + 1)


# -- states of the three per-node components -----------------------------------------------------------

def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-able, process-independent rendering of settings (no reprs with memory addresses)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if depth > 8:
        return f"<{type(value).__qualname__}>"
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_jsonable(v, depth + 1) for v in value), key=repr)
    if isinstance(value, type) or callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', type(value).__qualname__)}"
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return _jsonable(dump(), depth + 1)
        except Exception:  # noqa: BLE001, S110  # fall back to the type's name below
            pass
    return f"<{type(value).__qualname__}>"


def _content_text(content: Any) -> str:
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
        spec["parameters"] = _jsonable(params)
    if fn is tool and "name" not in tool:  # a provider built-in ({"type": "web_search", ...})
        spec["spec"] = _jsonable(tool)
    return spec


def _tools_state(tools: Sequence[Any]) -> list[dict[str, Any]]:
    return sorted((_tool_spec(t) for t in tools), key=lambda s: s["name"])


def _hashable_key(value: Any) -> Any:
    """A cheap hashable stand-in for settings: hashable values as is, containers frozen, others by identity."""
    try:
        hash(value)
        return value
    except TypeError:
        pass
    if isinstance(value, dict):
        return ("d", tuple((k, _hashable_key(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("l", tuple(_hashable_key(v) for v in value))
    return ("i", id(value))


def _items_key(items: Iterable[tuple[str, Any]]) -> Any:
    key = tuple(items)
    try:
        hash(key)  # all values hashable (most models' settings): the items themselves, no Python loop
        return key
    except TypeError:
        pass
    out = []
    for k, v in key:
        try:
            hash(v)
            out.append((k, v))
        except TypeError:
            out.append((k, _hashable_key(v)))
    return tuple(out)


class _Slot:
    """Per (agent, node): its three trackers and the last cheap keys seen (skips the tracker call)."""

    __slots__ = ("params", "params_key", "system", "system_key", "tools", "tools_key", "tools_obj")

    def __init__(self, rt: Runtime, agent: str, node: str) -> None:
        self.system: Tracker = rt.tracker(agent, f"{node}.system_prompt")
        self.tools: Tracker = rt.tracker(agent, f"{node}.tools")
        self.params: Tracker = rt.tracker(agent, f"{node}.model_params")
        self.system_key: Any = None
        self.tools_key: Any = None
        self.tools_obj: Any = None
        self.params_key: Any = None


_SLOTS: dict[tuple[str, str], _Slot] = {}
_SLOTS_RT: list[Runtime | None] = [None]
_SLOTS_LOCK = threading.Lock()


def _slot(rt: Runtime, agent: str, node: str) -> _Slot:
    if _SLOTS_RT[0] is not rt:
        with _SLOTS_LOCK:
            if _SLOTS_RT[0] is not rt:  # configure() replaced the runtime: new trackers
                _SLOTS.clear()
                _SLOTS_RT[0] = rt
    key = (agent, node)
    slot = _SLOTS.get(key)
    if slot is None:
        with _SLOTS_LOCK:
            slot = _SLOTS.get(key)
            if slot is None:
                slot = _SLOTS[key] = _Slot(rt, agent, node)
    return slot


def _observe_request(rt: Runtime, agent: str, node: str, system: Sequence[str], tools: Sequence[Any] | None,
                     params_key: Any, params_state: Callable[[], Any],
                     normalize: Callable[[str], str] | None = None) -> None:
    """Compare one model request's prompt, tools and settings with the last ones (cheap keys first)."""
    slot = _slot(rt, agent, node)
    if normalize is None:
        key: Any = tuple(map(hash, system))
        text = None
    else:  # the user strips per-request parts (names, dates) of a templated prompt
        text = normalize("\n".join(system))
        key = hash(text)
    if key != slot.system_key:
        raw = "\n".join(system)
        writer = _writes(agent).writer(raw) if raw else None
        slot.system.observe(raw if text is None else text, key=key, kind="system_prompt",
                            source="agent" if writer else "runtime", node=writer)
        slot.system_key = key
    tools = tools or ()
    if tools is not slot.tools_obj or len(tools) != len(slot.tools_obj or ()):
        from driftwatch.revision import cheap_key

        tkey = cheap_key(_jsonable(list(tools))) if tools and isinstance(tools[0], dict) \
            else tuple((getattr(t, "name", None), hash(getattr(t, "description", None) or ""), id(t))
                       for t in tools)
        if tkey != slot.tools_key:
            slot.tools.observe(Lazy(lambda: _tools_state(tools)), key=tkey, kind="tools", source="runtime")
            slot.tools_key = tkey
        slot.tools_obj = tools
    if params_key != slot.params_key:
        slot.params.observe(Lazy(params_state), key=params_key, kind="model_params", source="runtime")
        slot.params_key = params_key


def _node_of(metadata: dict[str, Any] | None, default: str) -> str:
    if not metadata:
        return default
    node = metadata.get("langgraph_node")
    if node is None:
        return default
    ns = metadata.get("langgraph_checkpoint_ns") or ""
    if "|" in ns:  # a subgraph's node: name it by its path of node names (task ids stripped)
        return "/".join(seg.split(":", 1)[0] for seg in ns.split("|"))
    return str(node)


# -- the callback handler ------------------------------------------------------------------------------

class DriftwatchCallbackHandler(BaseCallbackHandler):
    """Sees each chat-model call of a watched graph (prompt, tools, settings) and its outcome.

    ``agent=None`` makes the process-wide handler of :func:`instrument`, which serves graphs run by the
    instrumented ``Pregel.stream``. A handler only acts on events of its own innermost watched run, so
    nested watched graphs, the global handler and :class:`DriftwatchMiddleware` never count twice.
    """

    run_inline = True
    raise_error = False

    def __init__(self, agent: str | None = None, *, prompt_keys: Sequence[str] = DEFAULT_PROMPT_KEYS,
                 normalize_prompt: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self.agent = agent
        self.prompt_keys = tuple(prompt_keys)
        self.normalize_prompt = _check_normalizer(normalize_prompt)
        self._nodes: dict[Any, str] = {}  # run id of a node run -> node name (for attribution)
        #: attribution comes from chain events (node runs' outputs); False when the watched graph's state
        #: writers note prompt writes themselves (see ``_spied_nodes``)
        self.chain_attribution = True

    @property
    def ignore_chain(self) -> bool:  # LangChain reads it for each chain event, per handler
        """Skip chain events unless they carry something: attribution, or a streamed run's output."""
        if self.chain_attribution:
            return False
        inv = _ACTIVE.get()
        return inv is None or not inv.stream or inv.handler is not self

    def _agent(self) -> tuple[str | None, _Invocation | None]:
        inv = _ACTIVE.get()
        if inv is not None:
            return (inv.agent, inv) if inv.handler is self else (None, None)
        return self.agent, None  # a thread that did not inherit the context: changes only

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any, parent_run_id: Any = None,
                       tags: Any = None, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        try:
            agent, inv = self._agent()
            if agent is None:
                return
            if inv is not None and inv.root is None:
                inv.root = run_id
                return
            if self.prompt_keys and metadata and self.chain_attribution:
                node = metadata.get("langgraph_node")
                if node is not None and kwargs.get("name") == node:
                    if len(self._nodes) > _NODE_RUNS_KEPT:  # runs that never ended (cancelled): forget them
                        self._nodes.clear()
                    self._nodes[run_id] = node
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("langgraph", exc)

    def on_chain_end(self, outputs: Any, *, run_id: Any, parent_run_id: Any = None, **kwargs: Any) -> None:
        try:
            node = self._nodes.pop(run_id, None) if self._nodes else None
            agent, inv = self._agent()
            if agent is None:
                return
            if inv is not None and run_id == inv.root:
                inv.output = outputs
                return
            if node is not None and isinstance(outputs, dict):
                for key in self.prompt_keys:
                    if key in outputs:
                        _writes(agent).add(outputs[key], node)
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("langgraph", exc)

    def on_chain_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
        if self._nodes:
            self._nodes.pop(run_id, None)

    def on_chat_model_start(self, serialized: Any, messages: list[list[Any]], *, run_id: Any,
                            parent_run_id: Any = None, tags: Any = None, metadata: dict[str, Any] | None = None,
                            **kwargs: Any) -> None:
        try:
            agent, _ = self._agent()
            if agent is None or _MIDDLEWARE.get() == agent:
                return
            rt = get_runtime()
            if not rt.enabled or is_suppressed():
                return
            system = [_content_text(m.content) for m in (messages[0] if messages else ())
                      if getattr(m, "type", None) == "system"]
            params = kwargs.get("invocation_params") or {}
            tools = params.get("tools")
            rest = {k: v for k, v in params.items() if k != "tools"} if "tools" in params else params
            _observe_request(rt, agent, _node_of(metadata, "model"), system, tools, _items_key(rest.items()),
                             lambda: _jsonable(rest), self.normalize_prompt)
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("langgraph", exc)

    def on_llm_end(self, response: Any, *, run_id: Any, parent_run_id: Any = None, **kwargs: Any) -> None:
        try:
            inv = _ACTIVE.get()
            if inv is None or inv.handler is not self:
                return
            names: list[str] = []
            tokens_in = tokens_out = 0
            for generations in response.generations:
                for gen in generations:
                    message = getattr(gen, "message", None)
                    if message is None:
                        continue
                    for call in getattr(message, "tool_calls", None) or ():
                        name = call.get("name") if isinstance(call, dict) else getattr(call, "name", None)
                        if name:
                            names.append(str(name))
                    usage = getattr(message, "usage_metadata", None)
                    if usage:
                        tokens_in += int(usage.get("input_tokens") or 0)
                        tokens_out += int(usage.get("output_tokens") or 0)
            if names or tokens_in or tokens_out:
                with inv.lock:
                    inv.tools.extend(names)
                    inv.input_tokens += tokens_in
                    inv.output_tokens += tokens_out
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("langgraph", exc)


# -- recording each graph run --------------------------------------------------------------------------

def _begin(handler: DriftwatchCallbackHandler, agent: str) -> tuple[CallScope, _Invocation] | None:
    scope = get_runtime().begin_call(agent, attach=False)  # current only while the graph runs (_invoke, steps)
    if scope is None:
        return None
    return scope, _Invocation(handler, agent)


def _end(scope: CallScope, inv: _Invocation, error: BaseException | None = None) -> None:
    try:
        if error is not None:
            scope.finish(error=error)
            return
        text = output_text(inv.output)
        scope.finish(output_chars=len(text) if text is not None else None, output_text=text,
                     tools=tuple(inv.tools), input_tokens=inv.input_tokens or None,
                     output_tokens=inv.output_tokens or None)
    except Exception as exc:  # noqa: BLE001  # never break the host
        scope.runtime.error("call", exc)


def _run_sync(stream: Iterator[Any], scope: CallScope, inv: _Invocation) -> Iterator[Any]:
    """Drive ``stream`` with the run marked active and its span current during each step."""
    try:
        while True:
            token = _ACTIVE.set(inv)
            span_token = _enter(scope)
            try:
                item = next(stream)
            except StopIteration:
                break
            finally:
                _exit(scope, span_token)
                _ACTIVE.reset(token)
            yield item
    except GeneratorExit:  # the consumer stopped early: the run ends here, without an error
        _close(stream)
        _end(scope, inv)
        raise
    except BaseException as exc:  # the graph's own error (or one thrown in by the consumer): passed on
        _close(stream)
        _end(scope, inv, exc)
        raise
    _end(scope, inv)


def _enter(scope: CallScope) -> Any:
    if scope.span is None:
        return None
    try:
        return Tracing.enter(scope.span)
    except Exception as exc:  # noqa: BLE001  # never break the host
        scope.runtime.error("tracing", exc)
        return None


def _exit(scope: CallScope, token: Any) -> None:
    if token is not None:
        try:
            Tracing.exit(token)
        except Exception as exc:  # noqa: BLE001  # never break the host
            scope.runtime.error("tracing", exc)


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


async def _run_async(stream: AsyncIterator[Any], scope: CallScope, inv: _Invocation) -> AsyncIterator[Any]:
    try:
        while True:
            token = _ACTIVE.set(inv)
            span_token = _enter(scope)
            try:
                item = await stream.__anext__()
            except StopAsyncIteration:
                break
            finally:
                _exit(scope, span_token)
                _ACTIVE.reset(token)
            yield item
    except GeneratorExit:
        await _aclose(stream)
        _end(scope, inv)
        raise
    except BaseException as exc:
        await _aclose(stream)
        _end(scope, inv, exc)
        raise
    _end(scope, inv)


async def _aclose(stream: Any) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _handler_of(graph: Any) -> DriftwatchCallbackHandler | None:
    callbacks = (graph.config or {}).get("callbacks")
    if callbacks is None:
        return None
    handlers = callbacks.handlers if isinstance(callbacks, BaseCallbackManager) else callbacks
    for h in handlers:
        if type(h) is DriftwatchCallbackHandler and h.agent is not None:
            return h
    return None


def _start(graph: Any, handler: DriftwatchCallbackHandler | None, agent: str | None,
           ) -> tuple[CallScope, _Invocation] | None:
    """The scope of a new recorded run, or ``None`` to run the graph untouched."""
    if handler is None or agent is None:
        return None
    outer = _ACTIVE.get()
    if outer is not None and (outer.agent == agent or handler.agent is None):
        return None  # part of a run already recorded (a subgraph, or invoke → stream)
    try:
        return _begin(handler, agent)
    except Exception as exc:  # noqa: BLE001  # never break the host
        get_runtime().error("call", exc)
        return None


Started = tuple[CallScope, _Invocation] | None


def _invoke(started: Started, sup: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``invoke`` as one recorded run: the run is active and its span current for the whole call."""
    if started is None:
        return sup(*args, **kwargs)
    scope, inv = started
    token = _ACTIVE.set(inv)
    span_token = _enter(scope)
    try:
        result = sup(*args, **kwargs)
    except BaseException as exc:
        _exit(scope, span_token)
        _ACTIVE.reset(token)
        _end(scope, inv, exc)
        raise
    _exit(scope, span_token)
    _ACTIVE.reset(token)
    if inv.output is None:
        inv.output = result
    _end(scope, inv)
    return result


async def _ainvoke(started: Started, sup: Callable[..., Any], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
    if started is None:
        return await sup(*args, **kwargs)
    scope, inv = started
    token = _ACTIVE.set(inv)
    span_token = _enter(scope)
    try:
        result = await sup(*args, **kwargs)
    except BaseException as exc:
        _exit(scope, span_token)
        _ACTIVE.reset(token)
        _end(scope, inv, exc)
        raise
    _exit(scope, span_token)
    _ACTIVE.reset(token)
    if inv.output is None:
        inv.output = result
    _end(scope, inv)
    return result


def _stream(started: Started, sup: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``stream`` as one recorded run (the run is active and its span current during each step)."""
    if started is None:
        return sup(*args, **kwargs)
    scope, inv = started
    inv.stream = True
    try:
        stream = sup(*args, **kwargs)
    except BaseException as exc:
        _end(scope, inv, exc)
        raise
    return _run_sync(stream, scope, inv)


def _astream(started: Started, sup: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if started is None:
        return sup(*args, **kwargs)
    scope, inv = started
    inv.stream = True
    try:
        stream = sup(*args, **kwargs)
    except BaseException as exc:
        _end(scope, inv, exc)
        raise
    return _run_async(stream, scope, inv)


def _watched_start(graph: Any) -> Started:
    handler = _handler_of(graph)
    return _start(graph, handler, handler.agent if handler is not None else None)


_SUBCLASSES: dict[type, type] = {}
_SUBCLASS_LOCK = threading.Lock()


def _watched_class(cls: type) -> type:
    """A subclass of the graph's class whose ``invoke``/``ainvoke``/``stream``/``astream`` record each run.

    One subclass per graph class; ``copy()``/``with_config()`` keep it (they build ``self.__class__``), and
    the run's agent comes from the handler in the copy's config, so copies stay watched.
    """
    if getattr(cls, "__driftwatch_watched__", False):
        return cls
    sub = _SUBCLASSES.get(cls)
    if sub is not None:
        return sub
    with _SUBCLASS_LOCK:
        sub = _SUBCLASSES.get(cls)
        if sub is not None:
            return sub

        def invoke(self: Any, *args: Any, **kwargs: Any) -> Any:
            return _invoke(_watched_start(self), super(sub, self).invoke, args, kwargs)  # type: ignore[arg-type]

        async def ainvoke(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await _ainvoke(_watched_start(self), super(sub, self).ainvoke,  # type: ignore[arg-type]
                                  args, kwargs)

        def stream(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            return _stream(_watched_start(self), super(sub, self).stream, args, kwargs)  # type: ignore[arg-type]

        def astream(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            return _astream(_watched_start(self), super(sub, self).astream, args, kwargs)  # type: ignore[arg-type]

        methods: dict[str, Any] = {"invoke": invoke, "ainvoke": ainvoke, "stream": stream, "astream": astream}
        for name, fn in methods.items():
            fn.__doc__ = getattr(cls, name).__doc__
        sub = type(cls.__name__, (cls,), {
            **methods, "__module__": cls.__module__, "__qualname__": cls.__qualname__,
            "__driftwatch_watched__": True, "__doc__": cls.__doc__,
        })
        _SUBCLASSES[cls] = sub
        return sub


def _with_handler(graph: Any, handler: DriftwatchCallbackHandler) -> Any:
    """A copy of ``graph`` of the watched subclass with ``handler`` added to its config's callbacks."""
    from langchain_core.runnables.config import merge_configs

    config = dict(graph.config or {})
    callbacks = config.get("callbacks")
    if isinstance(callbacks, list):  # re-watched: replace driftwatch's handler, keep the user's
        config["callbacks"] = [h for h in callbacks if type(h) is not DriftwatchCallbackHandler]
    elif isinstance(callbacks, BaseCallbackManager):
        callbacks = callbacks.copy()
        for h in list(callbacks.handlers):
            if type(h) is DriftwatchCallbackHandler:
                callbacks.remove_handler(h)
        config["callbacks"] = callbacks
    attrs = {k: v for k, v in graph.__dict__.items() if k != "__orig_class__"}
    attrs["config"] = merge_configs(config, {"callbacks": [handler]})
    if handler.agent is not None:
        try:
            nodes = _spied_nodes(graph, handler.agent, handler.prompt_keys)
        except Exception as exc:  # noqa: BLE001  # an unexpected graph shape: attribute through chain events
            get_runtime().error("langgraph", exc)
            nodes = None
        if nodes is not None:
            attrs["nodes"] = nodes
            handler.chain_attribution = False
    return _watched_class(type(graph))(**attrs)


# -- topology ------------------------------------------------------------------------------------------

def _name(obj: Any) -> str:
    for attr in ("name", "__name__"):
        value = getattr(obj, attr, None)
        if isinstance(value, str) and value:
            return value
    func = getattr(obj, "func", None) or getattr(obj, "afunc", None)
    if func is not None:
        return _name(func)
    return type(obj).__qualname__


def topology(graph: Any, _depth: int = 0) -> dict[str, Any]:
    """The shape of a compiled graph: nodes, edges, branches (and subgraphs), from its builder (~µs)."""
    builder = getattr(graph, "builder", None)
    nodes_attr = getattr(builder, "nodes", None)
    if builder is None or not isinstance(nodes_attr, dict) or not hasattr(builder, "edges"):
        return {"nodes": sorted(str(n) for n in getattr(graph, "nodes", {}) or {})}
    shape: dict[str, Any] = {
        "nodes": sorted(str(n) for n in nodes_attr),
        "edges": sorted([str(a), str(b)] for a, b in builder.edges),
    }
    waiting = getattr(builder, "waiting_edges", None)
    if waiting:
        shape["waiting_edges"] = sorted([sorted(str(s) for s in starts), str(end)] for starts, end in waiting)
    branches = getattr(builder, "branches", None) or {}
    if branches:
        shape["branches"] = {
            str(src): {str(name): sorted(str(e) for e in spec.ends.values()) if spec.ends else _name(spec.path)
                       for name, spec in specs.items()}
            for src, specs in branches.items() if specs
        }
    ends = {str(n): sorted(str(e) for e in spec.ends) for n, spec in nodes_attr.items()
            if getattr(spec, "ends", None)}
    if ends:
        shape["node_ends"] = ends
    if _depth < 4:
        subgraphs = {str(n): topology(spec.runnable, _depth + 1) for n, spec in nodes_attr.items()
                     if isinstance(getattr(spec, "runnable", None), Pregel)}
        if subgraphs:
            shape["subgraphs"] = subgraphs
    return shape


def _observe_topology(agent: str, graph: Any) -> None:
    try:
        shape = topology(graph)
        get_runtime().observe(agent, "graph", shape, kind="topology", source="runtime")
    except Exception as exc:  # noqa: BLE001  # never break the host
        get_runtime().error("langgraph", exc)


# -- stores --------------------------------------------------------------------------------------------

def _prefixes(namespaces: Any, arg: str) -> tuple[tuple[str, ...], ...]:
    if namespaces is None:
        return ((),)
    if isinstance(namespaces, str) or (isinstance(namespaces, tuple) and namespaces
                                       and all(isinstance(p, str) for p in namespaces)):
        namespaces = [namespaces]
    out = []
    for ns in namespaces:
        if isinstance(ns, str):
            ns = tuple(p for p in ns.split("/") if p)
        if not isinstance(ns, tuple | list) or not all(isinstance(p, str) for p in ns):
            raise TypeError(f"{arg}={namespaces!r}: expected namespace prefixes such as ('prompts',) or 'prompts'")
        out.append(tuple(ns))
    return tuple(out)


_STORES: weakref.WeakKeyDictionary[Any, list[tuple[str, tuple[tuple[str, ...], ...]]]] = \
    weakref.WeakKeyDictionary()
_STORE_PATCHES: dict[type, tuple[Any, Any]] = {}
_IN_STORE: contextvars.ContextVar[bool] = contextvars.ContextVar("driftwatch_lg_store", default=False)
_LOCK = threading.RLock()


def _record_puts(store: Any, ops: Sequence[Any]) -> None:
    watchers = _STORES.get(store)
    if not watchers:
        return
    rt = get_runtime()
    for op in ops:
        if type(op) is not PutOp and not isinstance(op, PutOp):
            continue
        ns = tuple(op.namespace)
        for agent, prefixes in watchers:
            if any(ns[:len(p)] == p for p in prefixes):
                component = f"store:{'/'.join(ns)}/{op.key}"
                value = op.value
                try:
                    rt.observe(agent, component, Lazy(lambda v=value: _jsonable(v)), kind="store", source="store")
                except Exception as exc:  # noqa: BLE001  # never break the host
                    rt.error("store", exc)


def _patch_store_class(cls: type) -> None:
    with _LOCK:
        if cls in _STORE_PATCHES:
            return
        orig_batch, orig_abatch = cls.__dict__.get("batch"), cls.__dict__.get("abatch")
        batch_impl, abatch_impl = cls.batch, cls.abatch  # type: ignore[attr-defined]  # BaseStore subclasses

        def batch(self: Any, ops: Iterable[Any]) -> Any:
            if _IN_STORE.get() or self not in _STORES:
                return batch_impl(self, ops)
            ops = list(ops)
            token = _IN_STORE.set(True)
            try:
                result = batch_impl(self, ops)
            finally:
                _IN_STORE.reset(token)
            try:
                _record_puts(self, ops)
            except Exception as exc:  # noqa: BLE001  # never break the host
                get_runtime().error("store", exc)
            return result

        async def abatch(self: Any, ops: Iterable[Any]) -> Any:
            if _IN_STORE.get() or self not in _STORES:
                return await abatch_impl(self, ops)
            ops = list(ops)
            token = _IN_STORE.set(True)
            try:
                result = await abatch_impl(self, ops)
            finally:
                _IN_STORE.reset(token)
            try:
                _record_puts(self, ops)
            except Exception as exc:  # noqa: BLE001  # never break the host
                get_runtime().error("store", exc)
            return result

        batch.__wrapped__ = batch_impl  # type: ignore[attr-defined]  # for introspection
        abatch.__wrapped__ = abatch_impl  # type: ignore[attr-defined]
        cls.batch = batch  # type: ignore[attr-defined]
        cls.abatch = abatch  # type: ignore[attr-defined]
        _STORE_PATCHES[cls] = (orig_batch, orig_abatch)


def _unpatch_stores() -> None:
    with _LOCK:
        for cls, (orig_batch, orig_abatch) in reversed(list(_STORE_PATCHES.items())):
            for name, orig in (("batch", orig_batch), ("abatch", orig_abatch)):
                if orig is None:
                    delattr(cls, name)
                else:
                    setattr(cls, name, orig)
        _STORE_PATCHES.clear()


def watch_store(store: Any, *, agent: str, namespaces: Any = None) -> Any:
    """Record writes to ``store`` under the ``namespaces`` prefixes (default: all) as ``store`` changes.

    With explicit prefixes, the items already under them become the baselines (read once, up to 1000
    per prefix), so the next write of one is a change; otherwise the first write of a key is its
    baseline. Each key is a component (``store:<namespace>/<key>``): watch prompt namespaces, not
    per-user memories, to keep the ``component`` label bounded. Returns ``store`` itself.
    """
    if not isinstance(store, BaseStore):
        raise TypeError(f"watch_store(store=...): expected a LangGraph BaseStore, got {type(store).__name__}")
    prefixes = _prefixes(namespaces, "store_namespaces")
    _patch_store_class(type(store))
    with _LOCK:
        watchers = _STORES.setdefault(store, [])
        watchers[:] = [w for w in watchers if w[0] != agent] + [(agent, prefixes)]
    rt = get_runtime()
    for prefix in prefixes:
        try:
            items = store.search(prefix, limit=1000) if prefix else []
        except Exception as exc:  # noqa: BLE001  # an async-only store: baselines come with the first write
            rt.error("store", exc)
            continue
        for item in items:
            rt.observe(agent, f"store:{'/'.join(item.namespace)}/{item.key}", _jsonable(item.value),
                       kind="store", source="store")
    return store


# -- LangMem prompt optimizers -------------------------------------------------------------------------

def _optimizer_name(obj: Any) -> str | None:
    """The LangMem optimizer class ``obj`` is (or derives from), e.g. ``GradientPromptOptimizer``."""
    for klass in type(obj).__mro__:
        if klass.__module__.startswith("langmem.") and klass.__name__.endswith("PromptOptimizer"):
            return klass.__name__
    return None


def _prompt_parts(value: Any, default: str) -> list[tuple[str, str]]:
    """``(component, prompt text)`` pairs of an optimizer's input prompt(s) or result."""
    if isinstance(value, str):
        return [(default, value)]
    if isinstance(value, dict) and isinstance(value.get("prompt"), str):
        return [(str(value.get("name") or default), value["prompt"])]
    if isinstance(value, list):
        out: list[tuple[str, str]] = []
        for v in value:
            out.extend(_prompt_parts(v, default))
        return out
    return []


def _watch_optimizer(opt: Any, agent: str, component: str, source: str) -> Any:
    """Wrap a LangMem optimizer's ``invoke``/``ainvoke`` (they emit no callbacks); returns ``opt``."""
    plain_invoke, plain_ainvoke = type(opt).invoke, type(opt).ainvoke

    def before(input: Any) -> tuple[Any, Any, str]:
        rt = get_runtime()
        if not rt.enabled or is_suppressed():
            return rt, None, component
        try:
            prompts = input.get("prompts", input.get("prompt")) if isinstance(input, dict) else None
            parts = _prompt_parts(prompts, component)
            for name, text in parts:
                rt.observe(agent, name, text, kind="system_prompt", source="runtime")
            return rt, rt.start_run(agent, source), parts[0][0] if len(parts) == 1 else component
        except Exception as exc:  # noqa: BLE001  # never break the host
            rt.error("langmem", exc)
            return rt, None, component

    def after(rt: Any, run: Any, single: str, result: Any, error: BaseException | None) -> None:
        if run is None:
            return
        try:
            if error is None:
                for name, text in _prompt_parts(result, single):
                    rt.observe(agent, name, text, kind="system_prompt", source=source, run_id=run.id)
            rt.end_run(run, error=error)
        except Exception as exc:  # noqa: BLE001  # never break the host
            rt.error("langmem", exc)

    def invoke(input: Any, config: Any = None, **kwargs: Any) -> Any:
        rt, run, name = before(input)
        try:
            result = plain_invoke(opt, input, config, **kwargs)
        except BaseException as exc:
            after(rt, run, name, None, exc)
            raise
        after(rt, run, name, result, None)
        return result

    async def ainvoke(input: Any, config: Any = None, **kwargs: Any) -> Any:
        rt, run, name = before(input)
        try:
            result = await plain_ainvoke(opt, input, config, **kwargs)
        except BaseException as exc:
            after(rt, run, name, None, exc)
            raise
        after(rt, run, name, result, None)
        return result

    opt.invoke = invoke
    opt.ainvoke = ainvoke
    opt.__driftwatch_agent__ = agent
    return opt


# -- watch_object: what driftwatch.watch calls -------------------------------------------------------------

def _check_normalizer(normalize: Any) -> Callable[[str], str] | None:
    if normalize is not None and not callable(normalize):
        raise TypeError(f"normalize_prompt={normalize!r}: expected a function str -> str (or None)")
    return normalize


def _check_prompt_keys(prompt_keys: Any) -> tuple[str, ...]:
    if isinstance(prompt_keys, str):
        prompt_keys = (prompt_keys,)
    if not isinstance(prompt_keys, Sequence) or not all(isinstance(k, str) and k for k in prompt_keys):
        raise TypeError(f"prompt_keys={prompt_keys!r}: expected state key names such as ('system_prompt',)")
    return tuple(prompt_keys)


def watch_object(obj: Any, *, agent: str, **options: Any) -> Any:
    """Instrument a LangGraph / LangChain object for ``agent`` (called by :func:`driftwatch.watch`).

    - a compiled graph (``StateGraph.compile()``, ``create_agent``): a copy of the same class that records
      each run and sees each model call (its config keeps the user's callbacks); its topology is
      fingerprinted now; with ``store_namespaces=``, its store's writes are watched too;
    - a ``BaseStore``: its writes under ``store_namespaces`` (default: all) are recorded; returned as is;
    - a LangMem prompt optimizer: each ``invoke``/``ainvoke`` records its new prompt; returned as is;
    - any other Runnable (a chat model, a chain): ``with_config`` with the handler attached (prompt,
      tools and settings changes of its model calls; calls are recorded only for graphs).
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"driftwatch.watch got unknown option(s) {', '.join(unknown)} for a LangGraph/LangChain "
                        f"object; expected {', '.join(_OPTIONS)}")
    _check_versions()
    prompt_keys = _check_prompt_keys(options.get("prompt_keys", DEFAULT_PROMPT_KEYS))
    normalize = _check_normalizer(options.get("normalize_prompt"))
    namespaces = options.get("store_namespaces")
    if isinstance(obj, type):
        raise TypeError(f"driftwatch.watch cannot watch the class {obj.__name__}: watch a compiled graph "
                        "(StateGraph(...).compile()), a store or a function that builds one")
    if isinstance(obj, Pregel):
        handler = DriftwatchCallbackHandler(agent, prompt_keys=prompt_keys, normalize_prompt=normalize)
        watched = _with_handler(obj, handler)
        _observe_topology(agent, obj)
        store = getattr(obj, "store", None)
        if namespaces is not None and isinstance(store, BaseStore):
            watch_store(store, agent=agent, namespaces=namespaces)
        return watched
    if isinstance(obj, BaseStore):
        return watch_store(obj, agent=agent, namespaces=namespaces)
    optimizer = _optimizer_name(obj)
    if optimizer is not None:
        component = options.get("component") or "prompt"
        if not isinstance(component, str):
            raise TypeError(f"component={component!r}: expected a component name such as 'system_prompt'")
        return _watch_optimizer(obj, agent, component, optimizer)
    if hasattr(obj, "compile") and hasattr(obj, "add_node"):
        raise TypeError(f"driftwatch.watch got an uncompiled {type(obj).__name__}: watch the compiled graph, "
                        "driftwatch.watch(builder.compile(), agent=...)")
    if isinstance(obj, Runnable):
        return obj.with_config(callbacks=[DriftwatchCallbackHandler(agent, prompt_keys=prompt_keys,
                                                                    normalize_prompt=normalize)])
    raise TypeError(f"driftwatch.watch cannot watch a {type(obj).__name__}: expected a compiled LangGraph graph, "
                    "a LangGraph store, a LangMem prompt optimizer or a LangChain Runnable")


# -- create_agent middleware ---------------------------------------------------------------------------

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
    key = (id(model), _items_key(settings.items()), _hashable_key(request.tool_choice), id(fmt))

    def state() -> dict[str, Any]:
        out: dict[str, Any] = {"model": _model_name(model), "class": type(model).__qualname__,
                               "settings": _jsonable(settings)}
        if request.tool_choice is not None:
            out["tool_choice"] = _jsonable(request.tool_choice)
        if fmt is not None:
            schema = getattr(fmt, "schema", fmt)
            out["response_format"] = _jsonable(schema)
        return out

    return key, state


def _observe_model_request(agent: str, request: Any, normalize: Callable[[str], str] | None = None) -> None:
    rt = get_runtime()
    if not rt.enabled or is_suppressed():
        return
    try:
        from langgraph.config import get_config

        node = _node_of((get_config() or {}).get("metadata"), "model")
    except Exception:  # noqa: BLE001  # outside a graph run: the create_agent model node's name
        node = "model"
    system = []
    if request.system_message is not None:
        system.append(_content_text(request.system_message.content))
    system.extend(_content_text(m.content) for m in request.messages if getattr(m, "type", None) == "system")
    key, state = _request_params(request)
    _observe_request(rt, agent, node, system, list(request.tools or ()), key, state, normalize)


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
            self.normalize_prompt = _check_normalizer(normalize_prompt)

        @property
        def name(self) -> str:
            return "DriftwatchMiddleware"

        def _see(self, request: Any) -> None:
            try:
                _observe_model_request(self.agent, request, self.normalize_prompt)
            except Exception as exc:  # noqa: BLE001  # never break the host
                get_runtime().error("langgraph", exc)

        def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
            self._see(request)
            token = _MIDDLEWARE.set(self.agent)
            try:
                return handler(request)
            finally:
                _MIDDLEWARE.reset(token)

        async def awrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
            self._see(request)
            token = _MIDDLEWARE.set(self.agent)
            try:
                return await handler(request)
            finally:
                _MIDDLEWARE.reset(token)

else:  # pragma: no cover - the `langgraph` extra installs langchain

    class DriftwatchMiddleware:  # type: ignore[no-redef]  # stands in when langchain is missing
        """Needs ``langchain`` (``create_agent``): pip install 'driftwatch-agents[langgraph]'."""

        def __init__(self, agent: str, **options: Any) -> None:
            raise DidNotEnable("DriftwatchMiddleware needs langchain>=1.0: pip install 'driftwatch-agents[langgraph]'")


# -- instrument(): every graph in the process ------------------------------------------------------------

_GLOBAL: DriftwatchCallbackHandler | None = None
_PATCHES: list[tuple[Any, str, Any, Any]] = []  # (owner, name, original, ours)
_SEEN: weakref.WeakSet[Any] = weakref.WeakSet()
_GLOBAL_OPTIONS: dict[str, Any] = {}


def is_instrumented() -> bool:
    return bool(_PATCHES)


def _first_sight(graph: Any, agent: str) -> None:
    """Topology (and store) of a graph seen for the first time by :func:`instrument`."""
    try:
        if graph in _SEEN:
            return
        _SEEN.add(graph)
    except TypeError:  # not weak-referenceable or unhashable: skip topology
        return
    _observe_topology(agent, graph)
    namespaces = _GLOBAL_OPTIONS.get("store_namespaces")
    store = getattr(graph, "store", None)
    if namespaces is not None and isinstance(store, BaseStore):
        try:
            watch_store(store, agent=agent, namespaces=namespaces)
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("store", exc)


def _instrumented_start(graph: Any) -> Started:
    handler = _GLOBAL
    if handler is None or _ACTIVE.get() is not None or _handler_of(graph) is not None:
        return None
    agent = getattr(graph, "name", None) or "LangGraph"
    _first_sight(graph, agent)
    return _start(graph, handler, agent)


def instrument(*, prompt_keys: Sequence[str] = DEFAULT_PROMPT_KEYS, store_namespaces: Any = None,
               normalize_prompt: Callable[[str], str] | None = None) -> None:
    """Watch every LangGraph graph in the process (agent name = the graph's ``name``); idempotent.

    Adds driftwatch's handler to every LangChain callback manager (as OpenInference does), records
    each top-level ``Pregel`` run (``invoke``/``ainvoke``/``stream``/``astream``), fingerprints each
    graph's topology on its first run and, with ``store_namespaces``, watches each graph's store. Graphs watched with
    :func:`driftwatch.watch` keep their own agent name. :func:`uninstrument` undoes every patch.
    Every LangChain run in the process then carries one more callback handler (on a 3-node graph,
    LangChain's own cost of any handler is ~1.06x; see ``benchmarks/bench_langgraph.py``).
    """
    global _GLOBAL
    _check_versions()
    keys = _check_prompt_keys(prompt_keys)
    normalize = _check_normalizer(normalize_prompt)
    if store_namespaces is not None:
        _prefixes(store_namespaces, "store_namespaces")
    with _LOCK:
        _GLOBAL_OPTIONS["store_namespaces"] = store_namespaces
        if _PATCHES:
            if _GLOBAL is not None:
                _GLOBAL.prompt_keys = keys
                _GLOBAL.normalize_prompt = normalize
            return
        handler = _GLOBAL = DriftwatchCallbackHandler(None, prompt_keys=keys, normalize_prompt=normalize)
        orig_init = BaseCallbackManager.__init__

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807  # it replaces __init__
            orig_init(self, *args, **kwargs)
            try:
                if _GLOBAL is not handler or type(self).__module__.startswith("langgraph."):
                    return  # uninstrumented (left in place under a later wrapper), or a graph-lifecycle manager
                if handler not in self.inheritable_handlers:
                    self.add_handler(handler, True)
            except Exception as exc:  # noqa: BLE001  # never break the host
                get_runtime().error("langgraph", exc)

        originals = {name: Pregel.__dict__[name] for name in ("invoke", "ainvoke", "stream", "astream")}

        def invoke(self: Any, *args: Any, **kwargs: Any) -> Any:
            return _invoke(_instrumented_start(self), originals["invoke"].__get__(self), args, kwargs)

        async def ainvoke(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await _ainvoke(_instrumented_start(self), originals["ainvoke"].__get__(self), args, kwargs)

        def stream(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            return _stream(_instrumented_start(self), originals["stream"].__get__(self), args, kwargs)

        def astream(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            return _astream(_instrumented_start(self), originals["astream"].__get__(self), args, kwargs)

        patches: list[tuple[Any, str, Any]] = [(BaseCallbackManager, "__init__", __init__)]
        for name, fn in (("invoke", invoke), ("ainvoke", ainvoke), ("stream", stream), ("astream", astream)):
            fn.__doc__ = originals[name].__doc__
            patches.append((Pregel, name, fn))
        for owner, name, new in patches:
            _PATCHES.append((owner, name, owner.__dict__[name], new))
            setattr(owner, name, new)


def uninstrument() -> None:
    """Undo :func:`instrument` and the store patches, in reverse order; idempotent.

    A patch that another instrumentor (OpenInference, OpenLLMetry) has wrapped since is left in place,
    inert, so that their wrapper keeps working; stores watched with :func:`driftwatch.watch` stop being
    watched too.
    """
    global _GLOBAL
    with _LOCK:
        _GLOBAL = None  # first: every patch of ours passes straight through from here on
        while _PATCHES:
            owner, name, orig, ours = _PATCHES.pop()
            if owner.__dict__.get(name) is ours:
                setattr(owner, name, orig)
        _GLOBAL_OPTIONS.clear()
        _unpatch_stores()
        _STORES.clear()
