"""The hot path's shortcuts (issue 15) give what the long way gave: settings keys, the run record's sets, the
conversation id from every place a ``thread_id`` can come from, and the tool registry of each graph run with a
shared handler."""

from __future__ import annotations

from typing import Any

import pytest

import driftwatch
from driftwatch.integrations.langgraph._handler import DriftwatchCallbackHandler, Invocation
from driftwatch.integrations.langgraph._hooks import INSTALLED, hooks_installed
from driftwatch.integrations.langgraph._requests import _ATOMIC, hashable_key, items_key
from driftwatch.integrations.langgraph._runs import _end, _start
from driftwatch.testing import Captured
from tests.helpers.lg_graphs import reflect_graph

P0 = "You are a helpful support agent."


def _reference_hashable_key(value: Any) -> Any:
    """``hashable_key`` as it was before its list shortcut (the reference)."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if kind is dict:
        return ("d", tuple((k, _reference_hashable_key(v)) for k, v in value.items()))
    if kind is list or kind is tuple:
        return ("l", tuple([v if type(v) in _ATOMIC else _reference_hashable_key(v) for v in value]))
    try:
        hash(value)
        return value
    except TypeError:
        pass
    if isinstance(value, dict):
        return ("d", tuple((k, _reference_hashable_key(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("l", tuple(_reference_hashable_key(v) for v in value))
    return ("i", id(value))


def _reference_items_key(items: Any) -> Any:
    key = tuple(items)
    for _name, value in key:
        if type(value) not in _ATOMIC:
            return tuple([(k, v) if type(v) in _ATOMIC else (k, _reference_hashable_key(v)) for k, v in key])
    return key


class _Unhashable:
    __hash__ = None  # type: ignore[assignment]


class _MyList(list):  # type: ignore[type-arg]
    pass


_OBJ = _Unhashable()
SETTINGS: list[dict[str, Any]] = [
    {},
    {"model": "gpt-x", "temperature": 0.2, "stream": False, "stop": None, "n": 1, "raw": b"x"},
    {"responses": ["Happy to help."], "_type": "fake-list-chat-model", "stop": None},
    {"stop": ["\n", "END"], "logit_bias": {"1": 2}, "extra": ({"a": [1, 2]}, 3)},
    {"nested": [[1, 2], ["a"], []], "flags": (True, 1, 1.0)},
    {"obj": _OBJ, "objs": [_OBJ, 1], "sub": _MyList([1, [2]]), "frozen": frozenset({1})},
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_settings_keys_are_those_of_the_long_way(settings: dict[str, Any]) -> None:
    """The same key, item for item and type for type, as the per-item loops made (1 and True and 1.0 stay apart
    only where they did before: the key compares as it did)."""
    assert items_key(settings.items()) == _reference_items_key(settings.items())
    for value in settings.values():
        assert hashable_key(value) == _reference_hashable_key(value)
        assert type(hashable_key(value)) is type(_reference_hashable_key(value))


def test_a_list_edited_in_place_moves_the_key() -> None:
    """The key freezes a list's items: editing the model's list in place shows (a settings change is seen)."""
    responses = ["a"]
    before = items_key({"responses": responses}.items())
    responses[0] = "b"
    assert items_key({"responses": responses}.items()) != before
    assert items_key({"responses": ["b"]}.items()) == items_key({"responses": responses}.items())


def test_a_run_s_sets_are_its_own() -> None:
    """Class defaults are empty and never written: each run makes its own set on first use."""
    handler = DriftwatchCallbackHandler("sets")
    a, b = Invocation(handler, "sets"), Invocation(handler, "sets")
    assert not a.offered and not a.helper_runs and a.tools == () and a.registry is None
    a.own("offered").add("search")
    a.own("helper_runs").add("run-1")
    assert a.own("offered") is a.offered and a.counts("search")
    assert not b.offered and not b.helper_runs and not Invocation.offered and not Invocation.helper_runs
    assert "offered" not in b.__dict__


def test_the_conversation_id_comes_from_every_config(sampled_conversation: list[Any]) -> None:
    """``thread_id`` from a keyword config, a positional config, the graph's own config; none without one."""
    cap, graph = sampled_conversation
    state = {"system_prompt": P0, "question": "hi"}
    graph.invoke(state)
    graph.invoke(state, config={"configurable": {"thread_id": "kw"}})
    graph.invoke(state, {"configurable": {"thread_id": 7}})
    graph.with_config(configurable={"thread_id": "own"}).invoke(state)
    graph.invoke(state, config=None)
    ids = [s.attributes.get("gen_ai.conversation.id") for s in cap.spans("invoke_agent convo-ids")]
    assert ids == [None, "kw", "7", "own", None]


@pytest.fixture
def sampled_conversation(cap: Captured) -> list[Any]:
    return [cap, driftwatch.watch(reflect_graph(), agent="convo-ids")]


class _Graph:
    def __init__(self, nodes: dict[str, Any]) -> None:
        self.nodes = nodes
        self.config = None


class _ToolNode:
    def __init__(self, *names: str) -> None:
        self.bound = self
        self.tools_by_name = {n: object() for n in names}


def test_one_handler_running_two_graphs_gets_each_graph_s_tool_registry(cap: Captured) -> None:
    """The registry is remembered per node table: a handler serving another graph looks that one's up."""
    handler = DriftwatchCallbackHandler("shared")
    first, second = _Graph({"tools": _ToolNode("search")}), _Graph({"tools": _ToolNode("lookup", "book")})
    copy = _Graph(first.nodes)  # a copy (with_config) shares the table
    registries = []
    for graph in (first, copy, second, first, _Graph({})):
        started = _start(handler, "shared", graph, (), {})
        assert started is not None
        registries.append(started[1].registry)
        _end(*started)
    assert registries == [frozenset({"search"}), frozenset({"search"}), frozenset({"lookup", "book"}),
                          frozenset({"search"}), None]
    assert cap.value("driftwatch_calls_total", agent="shared", status="ok") == 5.0


def test_the_hooks_flag_follows_the_hooks(cap: Captured) -> None:
    """``INSTALLED`` (read per hooked run) says what ``hooks_installed()`` says, through uninstrument and back."""
    from driftwatch.integrations import langgraph as lg

    graph = driftwatch.watch(reflect_graph(), agent="flag")
    graph.invoke({"system_prompt": P0, "question": "hi"})
    assert INSTALLED[0] is True and hooks_installed()
    lg.uninstrument()
    assert INSTALLED[0] is False and not hooks_installed()
    graph.invoke({"system_prompt": P0, "question": "rewrite"})
    assert INSTALLED[0] is True and hooks_installed()
    assert [(c.source, c.node) for c in cap.changes() if c.kind == "system_prompt"] == [("agent", "reflect")]
