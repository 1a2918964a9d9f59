"""The callback handler: each chat-model call of a watched run (prompt, tools, settings, per call site), the
tool calls and tokens of its answer, and node outputs for attribution when the state writers cannot tell."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from driftwatch.integrations._common import jsonable
from driftwatch.integrations.langgraph import _guard as guard
from driftwatch.integrations.langgraph._attribution import writes_of
from driftwatch.integrations.langgraph._requests import SKIP, content_text, items_key, node_of, observe_request
from driftwatch.integrations.langgraph._sites import TOOL_SELECTION, call_site, model_of
from driftwatch.runtime import get_runtime, is_suppressed

__all__ = ["ACTIVE", "DEFAULT_PROMPT_KEYS", "MIDDLEWARE", "DriftwatchCallbackHandler", "Invocation",
           "check_normalizer", "check_prompt_keys"]

#: state keys that hold prompts, unless ``prompt_keys=`` says otherwise
DEFAULT_PROMPT_KEYS: tuple[str, ...] = ("system_prompt",)
_NODE_RUNS_KEPT = 10_000  # node runs in progress remembered per handler


class Invocation:
    """One watched graph run in progress: what the handler (and :class:`DriftwatchMiddleware`) gather for its
    call record.

    Made once per run, so only what differs per run is set here: the rest are class defaults, replaced on the
    instance when a run has something (the sets through :meth:`own`, made on first use).
    """

    #: a streamed run: its output comes from the root run's on_chain_end
    stream = False
    #: the run carries no handler: its chat-model events come from the class-level hooks (``_hooks``)
    hooked = False
    root: Any = None
    output: Any = None
    #: the agent's tool calls (a new tuple for each answer that has some, under :attr:`lock`)
    tools: tuple[str, ...] = ()
    input_tokens = 0
    output_tokens = 0
    #: guards the totals above (held for a few additions: one lock for every run)
    lock = threading.Lock()
    #: tool names bound for structured output (never agent tools), and tools offered by middleware
    structured: frozenset[str] | set[str] = frozenset()
    offered: frozenset[str] | set[str] = frozenset()
    #: run ids of helper model calls in progress (their tool calls are not the agent's)
    helper_runs: frozenset[Any] | set[Any] = frozenset()
    #: node tasks (checkpoint namespaces) in which a per-request tool selection ran
    selections: frozenset[str] | set[str] = frozenset()
    #: the agent's own model: provider and model name of its first own model call (read only when ``traced``)
    provider: str | None = None
    model: str | None = None
    #: the run has a span (tracing is live): only then is its model looked up (a span attribute)
    traced = False

    def __init__(self, handler: DriftwatchCallbackHandler, agent: str, registry: frozenset[str] | None = None) -> None:
        self.handler = handler
        self.agent = agent
        #: the agent's tool registry (names its ToolNodes run), None when the graph runs its tools itself
        self.registry = registry

    def own(self, name: str) -> set[Any]:
        """The run's own set ``name`` (``structured``, ``offered``, ``helper_runs``, ``selections``), made on first
        use (atomically: parallel branches may ask at once)."""
        return self.__dict__.setdefault(name, set())  # type: ignore[no-any-return]

    def counts(self, tool: str) -> bool:
        """Whether a tool call of the agent's own model call is an agent tool call."""
        if tool in self.structured:
            return False
        return self.registry is None or tool in self.registry or tool in self.offered

    def selected(self, metadata: dict[str, Any] | None) -> bool:
        """Whether a per-request tool selection ran in the node task of this model call."""
        return bool(self.selections) and bool(metadata) and metadata.get("langgraph_checkpoint_ns") in self.selections


#: the innermost watched run in this context (LangGraph copies the context into its node threads)
ACTIVE: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar("driftwatch_lg_run", default=None)
#: the agent whose DriftwatchMiddleware is observing the model call in progress
MIDDLEWARE: contextvars.ContextVar[str | None] = contextvars.ContextVar("driftwatch_lg_mw", default=None)


def check_normalizer(normalize: Any) -> Callable[[str], str] | None:
    if normalize is not None and not callable(normalize):
        raise TypeError(f"normalize_prompt={normalize!r}: expected a function str -> str (or None)")
    return normalize


def check_prompt_keys(prompt_keys: Any) -> tuple[str, ...]:
    if isinstance(prompt_keys, str):
        prompt_keys = (prompt_keys,)
    if not isinstance(prompt_keys, Sequence) or not all(isinstance(k, str) and k for k in prompt_keys):
        raise TypeError(f"prompt_keys={prompt_keys!r}: expected state key names such as ('system_prompt',)")
    return tuple(prompt_keys)


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
        self.normalize_prompt = check_normalizer(normalize_prompt)
        self._nodes: dict[Any, str] = {}  # run id of a node run -> node name (for attribution)
        #: attribution comes from chain events (node runs' outputs); False when the watched graph's state
        #: writers note prompt writes themselves (see ``spied_nodes``)
        self.chain_attribution = True
        #: (node table, tool registry) of the last graph run with this handler (``_runs``: looked up per table)
        self.registry_memo: tuple[Any, frozenset[str] | None] | None = None

    @property
    def ignore_chain(self) -> bool:  # LangChain reads it for each chain event, per handler
        """Skip chain events unless they carry something: attribution, or a streamed run's output."""
        if self.chain_attribution:
            return False
        inv = ACTIVE.get()
        return inv is None or not inv.stream or inv.handler is not self

    def _agent(self) -> tuple[str | None, Invocation | None]:
        inv = ACTIVE.get()
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
                        writes_of(agent).add(outputs[key], node)
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("langgraph", exc)

    def on_chain_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
        if self._nodes:
            self._nodes.pop(run_id, None)

    def on_chat_model_start(self, serialized: Any, messages: list[list[Any]], *, run_id: Any,
                            parent_run_id: Any = None, tags: Any = None, metadata: dict[str, Any] | None = None,
                            **kwargs: Any) -> None:
        try:
            inv = ACTIVE.get()
            if inv is None:
                agent = self.agent  # a thread that did not inherit the context: changes only
                if agent is None:
                    return
            elif inv.handler is not self:
                return
            else:
                agent = inv.agent
            self.model_call(agent, inv, messages, run_id, metadata, kwargs)
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("langgraph", exc)

    def model_call(self, agent: str, inv: Invocation | None, messages: list[list[Any]], run_id: Any,
                   metadata: dict[str, Any] | None, kwargs: dict[str, Any]) -> None:
        """One chat-model request of ``agent`` (``messages``, ``metadata`` and ``kwargs`` as
        ``on_chat_model_start`` gets them; ``_hooks`` calls this directly): compared with the call site's last
        one, enforced when the guard pinned its prompt. The hot path of a model call (cheap keys only)."""
        rt = get_runtime()
        if not rt.enabled or is_suppressed():
            return
        params = kwargs.get("invocation_params") or {}
        site, helper, source = call_site(node_of(metadata, "model"), metadata, kwargs.get("name"),
                                         kwargs.get("options"))
        if inv is not None:
            if helper:
                self._note_helper(inv, run_id, metadata, source)
            elif inv.traced and inv.model is None:  # the agent's model (a span attribute)
                inv.provider, inv.model = model_of(metadata, params)
        if MIDDLEWARE.get() == agent:
            return  # DriftwatchMiddleware observes this request (the final one)
        system = []
        for m in messages[0] if messages else ():
            if getattr(m, "type", None) == "system":
                content = m.content
                system.append(content if type(content) is str else content_text(content))
        if "tools" in params:
            tools = params["tools"]
            if not helper and inv is not None and inv.selected(metadata):
                tools = SKIP  # chosen for this request by a tool selector: not the agent's tool set
            rest = {k: v for k, v in params.items() if k != "tools"}
        else:
            tools, rest = None, params
        serial = rt.guard.tick(agent)
        if serial:
            guard.refresh(rt, agent, site, serial)  # the guard pins per call site (its components' prefix)
        observe_request(rt, agent, site, system, tools, items_key(rest.items()), lambda: jsonable(rest),
                        self.normalize_prompt)
        guard.enforce_messages(rt, agent, site, messages)  # a pinned prompt is what the model receives (one pinned
        # by this very observation too)

    @staticmethod
    def _note_helper(inv: Invocation, run_id: Any, metadata: dict[str, Any] | None, source: str | None) -> None:
        """What a helper model call tells the run's record: its tool calls do not count; a tool selection's
        request it narrows keeps its tools out of the comparison."""
        inv.own("helper_runs").add(run_id)
        if source == TOOL_SELECTION and metadata:
            ns = metadata.get("langgraph_checkpoint_ns")
            if isinstance(ns, str):
                inv.own("selections").add(ns)

    def on_llm_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
        inv = ACTIVE.get()
        if inv is not None and inv.helper_runs:
            inv.helper_runs.discard(run_id)

    def on_llm_end(self, response: Any, *, run_id: Any, parent_run_id: Any = None, **kwargs: Any) -> None:
        try:
            inv = ACTIVE.get()
            if inv is None or inv.handler is not self:
                return
            self.model_end(inv, response, run_id)
        except Exception as exc:  # noqa: BLE001  # never break the host
            get_runtime().error("langgraph", exc)

    @staticmethod
    def model_end(inv: Invocation, response: Any, run_id: Any) -> None:
        """A model call of the run ``inv`` answered (``_hooks`` calls this directly): the tool calls of the agent's
        own calls, and token usage."""
        helper = bool(inv.helper_runs) and run_id in inv.helper_runs
        if helper:
            inv.helper_runs.discard(run_id)
        names: list[str] = []
        tokens_in = tokens_out = 0
        for generations in response.generations:
            for gen in generations:
                message = getattr(gen, "message", None)
                if message is None:
                    continue
                for call in () if helper else getattr(message, "tool_calls", None) or ():
                    name = call.get("name") if isinstance(call, dict) else getattr(call, "name", None)
                    if name and inv.counts(str(name)):
                        names.append(str(name))
                usage = getattr(message, "usage_metadata", None)
                if usage:
                    tokens_in += int(usage.get("input_tokens") or 0)
                    tokens_out += int(usage.get("output_tokens") or 0)
        if names or tokens_in or tokens_out:
            with inv.lock:
                if names:
                    inv.tools = (*inv.tools, *names)
                inv.input_tokens += tokens_in
                inv.output_tokens += tokens_out
