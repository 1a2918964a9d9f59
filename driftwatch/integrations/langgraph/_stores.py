"""LangGraph stores: writes (``BaseStore.batch``/``abatch``, through which every write passes) under watched
namespace prefixes are ``store`` changes, one component per key (``store:<namespace>/<key>``)."""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from langgraph.store.base import BaseStore, PutOp

from driftwatch.integrations._common import Patches, jsonable
from driftwatch.runtime import get_runtime
from driftwatch.tracker import Lazy

__all__ = ["namespace_prefixes", "unwatch_stores", "watch_store"]

#: the patched ``batch``/``abatch`` of store classes with a watched store
_PATCHES = Patches()
#: watched store -> [(agent, namespace prefixes)]
_STORES: weakref.WeakKeyDictionary[Any, list[tuple[str, tuple[tuple[str, ...], ...]]]] = \
    weakref.WeakKeyDictionary()
_IN_STORE: contextvars.ContextVar[bool] = contextvars.ContextVar("driftwatch_lg_store", default=False)


def namespace_prefixes(namespaces: Any, arg: str) -> tuple[tuple[str, ...], ...]:
    """``namespaces`` (a prefix, ``"a/b"`` or a list of them; ``None``: all) as tuples; ``TypeError`` naming ``arg``."""
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
                    rt.observe(agent, component, Lazy(lambda v=value: jsonable(v)), kind="store", source="store")
                except Exception as exc:  # noqa: BLE001  # never break the host
                    rt.error("store", exc)


def _make_batch(batch_impl: Any) -> Any:
    gen = _PATCHES.generation

    def batch(self: Any, ops: Iterable[Any]) -> Any:
        if _PATCHES.generation != gen or _IN_STORE.get() or self not in _STORES:
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

    batch.__wrapped__ = batch_impl  # type: ignore[attr-defined]  # for introspection
    return batch


def _make_abatch(abatch_impl: Any) -> Any:
    gen = _PATCHES.generation

    async def abatch(self: Any, ops: Iterable[Any]) -> Any:
        if _PATCHES.generation != gen or _IN_STORE.get() or self not in _STORES:
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

    abatch.__wrapped__ = abatch_impl  # type: ignore[attr-defined]  # for introspection
    return abatch


def _patch_store_class(cls: type) -> None:
    with _PATCHES.lock:
        if not _PATCHES.patched(cls, "batch"):
            _PATCHES.patch(cls, "batch", _make_batch)
            _PATCHES.patch(cls, "abatch", _make_abatch)


def unwatch_stores() -> None:
    """Stop watching every store, and undo the store classes' patches."""
    with _PATCHES.lock:
        _PATCHES.undo()
        _STORES.clear()


def watch_store(store: Any, *, agent: str, namespaces: Any = None) -> Any:
    """Record writes to ``store`` under the ``namespaces`` prefixes (default: all) as ``store`` changes.

    With explicit prefixes, the items already under them become the baselines (read once, up to 1000
    per prefix), so the next write of one is a change; otherwise the first write of a key is its
    baseline. Each key is a component (``store:<namespace>/<key>``): watch prompt namespaces, not
    per-user memories, to keep the ``component`` label bounded. Returns ``store`` itself.
    """
    if not isinstance(store, BaseStore):
        raise TypeError(f"watch_store(store=...): expected a LangGraph BaseStore, got {type(store).__name__}")
    prefixes = namespace_prefixes(namespaces, "store_namespaces")
    _patch_store_class(type(store))
    with _PATCHES.lock:
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
            rt.observe(agent, f"store:{'/'.join(item.namespace)}/{item.key}", jsonable(item.value),
                       kind="store", source="store")
    return store
