"""Limits on the names a model or a caller controls: agents, their components, tool names and score metrics.

Every distinct name costs memory (drift monitors, trackers, call windows, caches) and Prometheus series. A
:class:`NameTable` admits names up to hard limits; past a limit a name *folds* into :data:`OTHER` (one
``other`` value per label), and the fold is reported through ``on_fold(what, name)`` (the runtime counts
``driftwatch_dropped_total{what}`` and logs the first of each kind).

- **agents** (``max_agents`` per process): an admitted agent gets its own series and state. When the table
  is full, a new agent takes the place of the agent seen least recently if that one has been idle for at
  least ``idle_s`` and ``evictable(name)`` agrees (the runtime refuses while a drift alarm is latched); the
  runtime then evicts it (``on_evict(name)``: drift state, trackers, call window, caches, series). Otherwise
  the newcomer folds into ``other``.
- **components** (``max_components`` per agent), **tools** (``max_tools`` per agent), **score metrics**
  (``max_metrics`` per agent): the first ones seen are kept for as long as the agent is; later ones fold.
- a change's **source** (``track(source=…)`` takes any text): the first :data:`MAX_LABEL_VALUES` per process
  label ``driftwatch_changes_total``; later ones fold (the ledger, spans and audit log keep them as given).

Names are also made safe to store and export (:func:`clean_name`): lone surrogates become ``\\udcff``
escapes, and a name longer than :data:`MAX_NAME_CHARS` is cut and suffixed with a hash of the whole.

Pure bookkeeping (core): the runtime owns the table and does the evicting; the table takes its callbacks
and its clock as arguments.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["MAX_LABEL_VALUES", "MAX_NAME_CHARS", "OTHER", "AgentNames", "NameTable", "clean_name"]

#: the label value every name past a limit folds into
OTHER = "other"
#: names (agents, components, tools, metrics) longer than this are cut and suffixed with a hash
MAX_NAME_CHARS = 200
#: distinct change sources per process with series of their own (optimizers, ``runtime``, ``manual``, ``guard`` …)
MAX_LABEL_VALUES = 50

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_name(name: str) -> str:
    """``name`` as it can be stored and exported: lone surrogates as ``\\udcff`` escapes; longer than
    :data:`MAX_NAME_CHARS`: cut, with ``…`` and 8 hex digits of the whole name's blake2b (distinct names stay
    distinct). Most names come back as they are."""
    if len(name) <= MAX_NAME_CHARS and (name.isascii() or _SURROGATE.search(name) is None):
        return name
    if _SURROGATE.search(name) is not None:
        name = name.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(name) > MAX_NAME_CHARS:
        digest = hashlib.blake2b(name.encode("utf-8"), digest_size=4).hexdigest()
        name = f"{name[:MAX_NAME_CHARS - 9]}…{digest}"
    return name


class AgentNames:
    """One admitted agent: its clean name and the components, tools and score metrics it may use."""

    __slots__ = ("components", "metrics", "name", "seen", "tools")

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.seen = now
        #: admitted component names (clean)
        self.components: set[str] = set()
        #: tool name as reported -> its label (admitted ones only)
        self.tools: dict[str, str] = {}
        #: score metric as reported -> its label (admitted ones only)
        self.metrics: dict[str, str] = {}


def _ignore_fold(what: str, name: str) -> None:
    """The default ``on_fold``: nothing to count into."""


def _always(name: str) -> bool:
    return True


def _nothing(name: str) -> None:
    """The default ``on_evict``."""


class NameTable:
    """The admitted agents of one runtime and the names each may use (see the module docstring; the limits are
    :class:`~driftwatch.config.Settings`' ``max_agents``, ``max_components``, ``max_tools``, ``max_score_metrics``
    and ``agent_idle_s``).

    ``on_fold(what, name)``: a name folded into ``other`` (``what``: ``agent``, ``component``, ``tool``,
    ``metric``) or shortened (``name``). ``evictable(agent)`` and ``on_evict(agent)``: see :meth:`admit`.
    Admitting and evicting are not locked here: the runtime calls :meth:`admit`, :meth:`component` and
    :meth:`forget` under its lock; :meth:`get`, :meth:`tools` and :meth:`metric` are safe without one.
    """

    def __init__(self, *, max_agents: int, max_components: int, max_tools: int, max_metrics: int, idle_s: float,
                 on_fold: Callable[[str, str], None] = _ignore_fold,
                 evictable: Callable[[str], bool] = _always, on_evict: Callable[[str], None] = _nothing,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_agents = max_agents
        self.max_components = max_components
        self.max_tools = max_tools
        self.max_metrics = max_metrics
        self.idle_s = idle_s
        self.on_fold = on_fold
        self.evictable = evictable
        self.on_evict = on_evict
        self.clock = clock
        self._agents: dict[str, AgentNames] = {}
        self._other = AgentNames(OTHER, 0.0)  # the tools and metrics of the folded agents
        self._no_idle_before = float("-inf")  # no agent can be idle enough before this time
        self._labels: dict[str, dict[str, str]] = {"source": {}}  # per process, never evicted

    def __len__(self) -> int:
        return len(self._agents)

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def names(self) -> list[str]:
        """The admitted agents (a copy)."""
        return list(self._agents)

    # -- agents -----------------------------------------------------------------------------------------
    def get(self, name: str) -> AgentNames | None:
        """The admitted agent ``name`` (``None`` when it is not), marked as seen now. O(1)."""
        entry = self._agents.get(name)
        if entry is not None:
            entry.seen = self.clock()
        return entry

    def admit(self, name: str, *, count: bool = True) -> tuple[AgentNames | None, bool]:
        """``(entry, new)``: the agent's entry (admitted now when there is room, or when an idle agent can make
        room: ``on_evict`` is called for it first) — or ``(None, False)`` when ``name`` folds into ``other``
        (reported to ``on_fold`` unless ``count`` is false: one operation counts its fold once). ``new``: admitted
        by this call."""
        entry = self.get(name)
        if entry is not None:
            return entry, False
        clean = clean_name(name)
        if clean != name:
            entry = self.get(clean)
            if entry is not None:
                return entry, False
        now = self.clock()
        if len(self._agents) >= self.max_agents and not self._make_room(now):
            if count:
                self.on_fold("agent", clean)
            return None, False
        if clean != name:
            self.on_fold("name", clean)
        entry = self._agents[clean] = AgentNames(clean, now)
        return entry, True

    def _make_room(self, now: float) -> bool:
        """Evict the agent seen least recently if it has been idle for ``idle_s`` (and may be evicted)."""
        if now < self._no_idle_before:
            return False
        for entry in sorted(self._agents.values(), key=lambda e: e.seen):
            if now - entry.seen < self.idle_s:
                break
            if self.evictable(entry.name):
                self.forget(entry.name)
                self.on_evict(entry.name)
                return True
        # nobody can go yet: no need to look again before the least recent agent (of those left) is idle enough
        oldest = min(self._agents.values(), key=lambda e: e.seen, default=None)
        self._no_idle_before = (oldest.seen + self.idle_s) if oldest is not None and now - oldest.seen < self.idle_s \
            else now + min(self.idle_s, 1.0)
        return False

    def forget(self, name: str) -> None:
        """Drop the agent's entry (its component, tool and metric names go with it)."""
        self._agents.pop(name, None)

    # -- per-agent names --------------------------------------------------------------------------------
    def component(self, entry: AgentNames, component: str) -> bool:
        """Whether the agent may keep state and series for the (clean) ``component``; admits it if there is
        room (call under the runtime's lock)."""
        components = entry.components
        if component in components:
            return True
        if len(components) >= self.max_components:
            self.on_fold("component", component)
            return False
        components.add(component)
        return True

    def tools(self, entry: AgentNames | None, tools: Iterable[str]) -> tuple[str, ...]:
        """The labels of a call's tools: admitted names as they are, the rest folded (``entry`` ``None``: an
        agent folded into ``other``)."""
        known = (entry or self._other).tools
        out = []
        for t in tools:
            label = known.get(t)
            out.append(self._admit_name(known, t, self.max_tools, "tool") if label is None else label)
        return tuple(out)

    def metric(self, entry: AgentNames | None, metric: str) -> str:
        """The label of a score metric of the agent (folded past ``max_metrics``)."""
        known = (entry or self._other).metrics
        label = known.get(metric)
        return self._admit_name(known, metric, self.max_metrics, "metric") if label is None else label

    def label(self, what: str, value: str) -> str:
        """The label of a change's ``source`` (``what``): folded past :data:`MAX_LABEL_VALUES` distinct values
        per process."""
        known = self._labels[what]
        label = known.get(value)
        return self._admit_name(known, value, MAX_LABEL_VALUES, what) if label is None else label

    def _admit_name(self, known: dict[str, str], name: Any, limit: int, what: str) -> str:
        if not isinstance(name, str):
            name = str(name)
            if name in known:
                return known[name]
        if len(known) >= limit:
            self.on_fold(what, name)
            return OTHER
        label = clean_name(name)
        if label != name:
            self.on_fold("name", label)
        known[name] = label
        return label
