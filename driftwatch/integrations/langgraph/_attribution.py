"""Run attribution: which node wrote a prompt into state.

A watched graph's nodes are copies whose state writers note the prompt values a node writes
(:func:`spied_nodes`); otherwise the handler notes them from node runs' chain events. Either way the
values land in :func:`writes_of` (per agent, bounded), which the handler asks when a model call shows a
new system prompt.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from driftwatch.runtime import get_runtime

__all__ = ["Writes", "spied_nodes", "writes_of"]

_WRITES_KEPT = 64  # prompt values remembered per agent for attribution


class Writes:
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


_WRITES: dict[str, Writes] = {}
_WRITES_LOCK = threading.Lock()


def writes_of(agent: str) -> Writes:
    w = _WRITES.get(agent)
    if w is None:
        with _WRITES_LOCK:
            w = _WRITES.setdefault(agent, Writes())
    return w


#: names of the state-update mappers of ``StateGraph`` nodes (``CompiledStateGraph.attach_node``)
_STATE_MAPPERS = ("_get_updates",)


def _spy_mapper(mapper: Callable[[Any], Any], node: str, keys: frozenset[str], writes: Writes,
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


def spied_nodes(graph: Any, agent: str, prompt_keys: Sequence[str]) -> dict[str, Any] | None:
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
    writes = writes_of(agent)
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
