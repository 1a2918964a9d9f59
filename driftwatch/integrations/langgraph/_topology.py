"""Topology: the shape of a compiled graph (nodes, edges, branches, subgraphs), read from its builder
(~µs, unlike ``get_graph()``), recorded as component ``graph`` (kind ``topology``)."""

from __future__ import annotations

from typing import Any

from langgraph.pregel import Pregel

from driftwatch.runtime import get_runtime

__all__ = ["observe_topology", "topology"]


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


def observe_topology(agent: str, graph: Any) -> None:
    try:
        shape = topology(graph)
        get_runtime().observe(agent, "graph", shape, kind="topology", source="runtime")
    except Exception as exc:  # noqa: BLE001  # never break the host
        get_runtime().error("langgraph", exc)
