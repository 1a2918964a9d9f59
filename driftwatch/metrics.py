"""The Prometheus metric catalogue and the sink that feeds it.

Every metric driftwatch exports is declared once, in :data:`CATALOGUE`. Dashboards, alert rules,
docs and tests read this table; a test fails when any of them names a metric or label that is not
here. Names follow ``../shared/BRIEF.md`` §2: prefix ``driftwatch_``, base units, bounded labels
only (never prompt text, trace ids or user ids as label values; trace ids travel as exemplars).

The sink works with the default registry, an injected :class:`~prometheus_client.CollectorRegistry`,
and prometheus_client's multiprocess mode (no ``Info`` metrics: every value is a plain counter, gauge or
histogram). The three per-call metrics (calls, call duration, output size) are summed in plain numbers on the
call path and exposed by a collector of ours (:class:`CallSeries`), with the same families, samples and
exemplars prometheus_client's objects would give; in multiprocess mode they are prometheus_client's objects.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Exemplar, Metric
from prometheus_client.utils import floatToGoString

from driftwatch._version import __version__

if TYPE_CHECKING:
    from driftwatch.change import Change
    from driftwatch.observation import Call, OptimizerRun

__all__ = ["CALL_METRICS", "CATALOGUE", "METRIC_NAMES", "CallSeries", "MetricSpec", "Metrics", "spec"]

MAGNITUDE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
UNIT_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CHARS_BUCKETS = (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536)
#: a watched call's metrics carry its trace id as an exemplar at most this often per agent (errors always)
EXEMPLAR_INTERVAL_S = 1.0


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric: its exposed name, type, labels, help text and buckets."""

    name: str
    type: str  # "counter" | "gauge" | "histogram"
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()
    #: how gauges aggregate across processes in prometheus_client multiprocess mode
    multiprocess_mode: str = "max"


CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec("driftwatch_changes_total", "counter", ("agent", "component", "kind", "source"),
               "Self-modifications of prompts and scaffolding recorded."),
    MetricSpec("driftwatch_change_magnitude", "histogram", ("agent", "kind"),
               "Normalized edit distance (0-1) of each recorded change.", MAGNITUDE_BUCKETS),
    MetricSpec("driftwatch_last_change_timestamp_seconds", "gauge", ("agent", "component"),
               "Unix time of the last recorded change of a component."),
    MetricSpec("driftwatch_revision_info", "gauge", ("agent", "component", "revision"),
               "The current revision of each component (value 1).", multiprocess_mode="livemax"),
    MetricSpec("driftwatch_optimizer_runs_total", "counter", ("agent", "optimizer", "outcome"),
               "Optimizer (compile) runs, by outcome."),
    MetricSpec("driftwatch_optimizer_candidates_total", "counter", ("agent", "optimizer"),
               "Candidate programs evaluated by optimizer runs."),
    MetricSpec("driftwatch_optimizer_best_score", "gauge", ("agent", "optimizer"),
               "Best candidate score of the last optimizer run."),
    MetricSpec("driftwatch_calls_total", "counter", ("agent", "status"),
               "Watched agent calls, by status (ok/error)."),
    MetricSpec("driftwatch_call_duration_seconds", "histogram", ("agent",),
               "Duration of watched agent calls.", DURATION_BUCKETS),
    MetricSpec("driftwatch_output_chars", "histogram", ("agent",),
               "Size of each watched call's output, in characters.", CHARS_BUCKETS),
    MetricSpec("driftwatch_tokens_total", "counter", ("agent", "type"),
               "Tokens reported by the language model, by type (input/output)."),
    MetricSpec("driftwatch_tool_calls_total", "counter", ("agent", "tool"),
               "Tool calls made by watched agents, by tool name."),
    MetricSpec("driftwatch_refusals_total", "counter", ("agent",),
               "Watched calls whose answer was a refusal."),
    MetricSpec("driftwatch_format_failures_total", "counter", ("agent",),
               "Watched calls whose output failed the declared format check."),
    MetricSpec("driftwatch_score", "histogram", ("agent", "metric"),
               "Evaluation or feedback scores (0-1).", UNIT_BUCKETS),
    MetricSpec("driftwatch_drift_score", "gauge", ("agent", "signal"),
               "Drift statistic divided by its alarm threshold (1.0 = alarm)."),
    MetricSpec("driftwatch_drift_alarm", "gauge", ("agent", "signal"),
               "1 while a drift alarm is latched (until the reference is reset), else 0."),
    MetricSpec("driftwatch_reference_calls", "gauge", ("agent",),
               "Calls in the current drift reference (below the target size: warming up)."),
    MetricSpec("driftwatch_guard_actions_total", "counter", ("agent", "action"),
               "Guard actions applied in this process: changes blocked or held, approvals, rejections, rollbacks, "
               "freezes, rolled-back behaviour confirmed."),
    MetricSpec("driftwatch_held_changes", "gauge", ("agent",),
               "Changes held for approval (driftwatch approve / reject), as this process knows them."),
    MetricSpec("driftwatch_guard_frozen", "gauge", ("agent",),
               "1 while the agent's self-tuning is frozen (driftwatch freeze), else 0."),
    MetricSpec("driftwatch_internal_errors_total", "counter", ("stage",),
               "Errors inside driftwatch, caught and counted instead of reaching the host."),
    MetricSpec("driftwatch_dropped_total", "counter", ("what",),
               "Names past a limit counted as 'other' (what: agent, component, tool, metric, source), or made "
               "safe to store and export (what: name)."),
    MetricSpec("driftwatch_state_substitutions_total", "counter", ("reason",),
               "Values of a recorded state that JSON cannot hold, recorded as a stand-in (reason: non_finite, "
               "big_int, bytes, surrogate, key, cycle, depth, function, object, unreadable)."),
    MetricSpec("driftwatch_build_info", "gauge", ("version",),
               "driftwatch build information (value 1)."),
)

METRIC_NAMES: frozenset[str] = frozenset(s.name for s in CATALOGUE)
_BY_NAME = {s.name: s for s in CATALOGUE}


def spec(name: str) -> MetricSpec:
    """The catalogue entry for an exposed metric name (``KeyError`` when it is not ours)."""
    return _BY_NAME[name]


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _build(s: MetricSpec, registry: CollectorRegistry | None) -> Any:
    if s.type == "counter":
        return Counter(s.name.removesuffix("_total"), s.help, s.labels, registry=registry)
    if s.type == "histogram":
        return Histogram(s.name, s.help, s.labels, buckets=s.buckets, registry=registry)
    return Gauge(s.name, s.help, s.labels, registry=registry, multiprocess_mode=s.multiprocess_mode)


#: the per-call metrics :class:`CallSeries` sums on the call path (the others are prometheus_client's objects)
CALL_METRICS = ("driftwatch_calls_total", "driftwatch_call_duration_seconds", "driftwatch_output_chars")
_INF = float("inf")
_DURATION_BOUNDS = (*DURATION_BUCKETS, _INF)
_CHARS_BOUNDS = (*CHARS_BUCKETS, _INF)
_DURATION_LE = tuple(floatToGoString(b) for b in _DURATION_BOUNDS)
_CHARS_LE = tuple(floatToGoString(b) for b in _CHARS_BOUNDS)


def _created_enabled() -> bool:
    """Whether prometheus_client exports ``_created`` series (``disable_created_metrics()`` turns them off)."""
    import prometheus_client.metrics as pm

    return bool(getattr(pm, "_use_created", True))  # its module flag; present since 0.17, on when absent


class _AgentCalls:
    """One agent's call metrics as plain numbers, changed only under :attr:`lock` (a thread switch can fall
    between the read and the write of ``x += 1``, so the lock is what keeps every increment)."""

    __slots__ = ("chars", "chars_sum", "created", "duration", "duration_exemplars", "duration_sum", "error",
                 "error_exemplar", "lock", "ok", "ok_exemplar")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created = time.time()
        self.ok = 0.0
        self.error = 0.0
        self.ok_exemplar: Exemplar | None = None
        self.error_exemplar: Exemplar | None = None
        self.duration = [0.0] * len(_DURATION_BOUNDS)  # per bucket, not cumulative (summed at collect)
        self.duration_sum = 0.0
        self.duration_exemplars: list[Exemplar | None] = [None] * len(_DURATION_BOUNDS)
        self.chars = [0.0] * len(_CHARS_BOUNDS)
        self.chars_sum = 0.0


class CallSeries:
    """The collector of ``driftwatch_calls_total``, ``driftwatch_call_duration_seconds`` and
    ``driftwatch_output_chars``: one lock and a few additions per call instead of prometheus_client's three
    metric calls (a lock per value, label and exemplar checks, a linear bucket search). Its samples are the
    ones prometheus_client's Counter and Histogram children give: ``_total``/``_created`` per status, cumulative
    ``_bucket`` (with its exemplar), ``_count``, ``_sum``, ``_created`` per agent."""

    def __init__(self) -> None:
        self.agents: dict[str, _AgentCalls] = {}
        self._lock = threading.Lock()

    def agent(self, agent: str) -> _AgentCalls:
        """The agent's sums, made (with zero series) on first use."""
        with self._lock:
            a = self.agents.get(agent)
            if a is None:
                a = self.agents[agent] = _AgentCalls()
            return a

    def forget(self, agent: str) -> None:
        with self._lock:
            self.agents.pop(agent, None)

    def describe(self) -> list[Metric]:
        return [Metric(_BY_NAME[name].name.removesuffix("_total"), _BY_NAME[name].help, _BY_NAME[name].type)
                for name in CALL_METRICS]

    def collect(self) -> Iterator[Metric]:
        calls, duration, chars = self.describe()
        created = _created_enabled()
        with self._lock:
            agents = list(self.agents.items())
        for agent, a in agents:
            with a.lock:
                ok, error, ok_ex, error_ex = a.ok, a.error, a.ok_exemplar, a.error_exemplar
                d, d_sum, d_ex = list(a.duration), a.duration_sum, list(a.duration_exemplars)
                c, c_sum = list(a.chars), a.chars_sum
            for status, value, ex in (("ok", ok, ok_ex), ("error", error, error_ex)):
                labels = {"agent": agent, "status": status}
                calls.add_sample("driftwatch_calls_total", labels, value, None, ex)
                if created:
                    calls.add_sample("driftwatch_calls_created", labels, a.created)
            _histogram(duration, agent, _DURATION_LE, d, d_sum, d_ex, a.created if created else None)
            _histogram(chars, agent, _CHARS_LE, c, c_sum, None, a.created if created else None)
        yield calls
        yield duration
        yield chars


def _histogram(family: Metric, agent: str, les: tuple[str, ...], counts: list[float], total: float,
               exemplars: list[Exemplar | None] | None, created: float | None) -> None:
    """Add one agent's histogram samples, in prometheus_client's order and form."""
    name = family.name
    acc = 0.0
    for i, le in enumerate(les):
        acc += counts[i]
        family.add_sample(name + "_bucket", {"agent": agent, "le": le}, acc, None,
                          exemplars[i] if exemplars is not None else None)
    family.add_sample(name + "_count", {"agent": agent}, acc)
    family.add_sample(name + "_sum", {"agent": agent}, total)
    if created is not None:
        family.add_sample(name + "_created", {"agent": agent}, created)


class _BeforeCollect:
    """Registered on the registry before driftwatch's metrics: a scrape (any collect of the registry) first runs
    the flush hooks (:meth:`Metrics.before_collect`: a runtime processing the calls it kept for a batch). Exports
    nothing."""

    def __init__(self) -> None:
        self.hooks: list[weakref.WeakMethod[Callable[[], None]]] = []
        self.lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            hooks = list(self.hooks)
        for ref in hooks:
            hook = ref()
            if hook is not None:
                with contextlib.suppress(Exception):  # the hook counts its own errors; a scrape goes on
                    hook()
        return iter(())


_BY_REGISTRY: dict[int, Metrics] = {}
_BY_REGISTRY_LOCK = threading.Lock()


class Metrics:
    """The Prometheus sink: every catalogue metric, registered on one registry. Every Prometheus value
    driftwatch exports is written here.

    Label children used on the hot path (per-agent call metrics) are cached, so a watched call
    costs a dict lookup and a few atomic adds.
    """

    stage = "metrics"

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None) -> Metrics:
        """The one sink of a registry (``None``: prometheus_client's ``REGISTRY``), made on first use:
        configuring twice must not register the metrics twice."""
        registry = REGISTRY if registry is None else registry
        with _BY_REGISTRY_LOCK:
            metrics = _BY_REGISTRY.get(id(registry))
            if metrics is None or metrics.registry is not registry:
                metrics = cls(registry)
                _BY_REGISTRY[id(registry)] = metrics
            return metrics

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.registry = registry
        self.multiprocess = _multiprocess()
        self._before_collect = _BeforeCollect()
        if registry is not None:
            registry.register(self._before_collect)
        #: the per-call metrics' collector (``None`` in multiprocess mode: prometheus_client's objects there)
        self.call_series: CallSeries | None = None if self.multiprocess else CallSeries()
        m: dict[str, Any] = {s.name: _build(s, registry) for s in CATALOGUE
                             if self.call_series is None or s.name not in CALL_METRICS}
        if self.call_series is not None:
            if registry is not None:
                registry.register(self.call_series)
            m.update(dict.fromkeys(CALL_METRICS, self.call_series))
        self._m = m
        self.changes = m["driftwatch_changes_total"]
        self.change_magnitude = m["driftwatch_change_magnitude"]
        self.last_change = m["driftwatch_last_change_timestamp_seconds"]
        self.revision_info = m["driftwatch_revision_info"]
        self.optimizer_runs = m["driftwatch_optimizer_runs_total"]
        self.optimizer_candidates = m["driftwatch_optimizer_candidates_total"]
        self.optimizer_best_score = m["driftwatch_optimizer_best_score"]
        self.calls = m["driftwatch_calls_total"]
        self.call_duration = m["driftwatch_call_duration_seconds"]
        self.output_chars = m["driftwatch_output_chars"]
        self.tokens = m["driftwatch_tokens_total"]
        self.tool_calls = m["driftwatch_tool_calls_total"]
        self.refusals = m["driftwatch_refusals_total"]
        self.format_failures = m["driftwatch_format_failures_total"]
        self.score = m["driftwatch_score"]
        self.drift_score = m["driftwatch_drift_score"]
        self.drift_alarm = m["driftwatch_drift_alarm"]
        self.reference_calls = m["driftwatch_reference_calls"]
        self.internal_errors = m["driftwatch_internal_errors_total"]
        self.guard_actions = m["driftwatch_guard_actions_total"]
        self.held_changes = m["driftwatch_held_changes"]
        self.guard_frozen = m["driftwatch_guard_frozen"]
        self.dropped_names = m["driftwatch_dropped_total"]
        self.substitutions = m["driftwatch_state_substitutions_total"]
        #: the catalogue metrics with an ``agent`` label (an evicted agent's series are removed from them)
        self._per_agent = tuple(m[s.name] for s in CATALOGUE if "agent" in s.labels
                                and (self.call_series is None or s.name not in CALL_METRICS))
        m["driftwatch_build_info"].labels(version=__version__).set(1)
        #: per agent: its sums in :attr:`call_series`, or (multiprocess mode) its four cached children
        self._agent_children: dict[str, Any] = {}
        self._revision_labels: dict[tuple[str, str], str] = {}
        self._next_exemplar: dict[str, float] = {}
        self._drift_signals: dict[str, frozenset[str]] = {}  # agent -> signals whose drift gauges are set
        self.exemplar_interval_s = EXEMPLAR_INTERVAL_S

    def metric(self, name: str) -> Any:
        """The prometheus_client object behind an exposed catalogue name (:attr:`call_series` for
        :data:`CALL_METRICS` outside multiprocess mode)."""
        return self._m[name]

    # -- observations ---------------------------------------------------------------------------

    def _exemplar(self, trace_id: str | None, span_id: str | None) -> dict[str, str] | None:
        if trace_id is None or self.multiprocess:
            return None
        return {"trace_id": trace_id, "span_id": span_id or ""}

    def before_collect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` (a bound method, held weakly) at the start of every collect of the registry."""
        with self._before_collect.lock:
            hooks = self._before_collect.hooks
            hooks[:] = [ref for ref in hooks if ref() is not None]
            hooks.append(weakref.WeakMethod(hook))

    def exemplar_due(self, agent: str, error: bool = False) -> bool:
        """Whether a call of ``agent`` ending now should carry its trace id as an exemplar.

        Prometheus keeps only the latest exemplar of a series per scrape, and prometheus_client
        validates each one it is given, so a call gets one at most every :data:`EXEMPLAR_INTERVAL_S`
        per agent; failed calls always do (the trace an on-call wants). Never in multiprocess mode.
        """
        if self.multiprocess:
            return False
        if error:
            return True
        now = time.monotonic()
        if now < self._next_exemplar.get(agent, 0.0):
            return False
        self._next_exemplar[agent] = now + self.exemplar_interval_s  # a race at worst lets two through
        return True

    def on_change(self, change: Change) -> None:
        """Count a change (``driftwatch_revision_info`` follows :meth:`set_revision`, which the runtime calls for
        every component with series of its own)."""
        ex = self._exemplar(change.trace_id, change.span_id)
        self.changes.labels(change.agent, change.component, change.kind, change.source).inc(exemplar=ex)
        self.change_magnitude.labels(change.agent, change.kind).observe(change.magnitude, exemplar=ex)
        self.last_change.labels(change.agent, change.component).set(change.timestamp)

    def set_revision(self, agent: str, component: str, revision_id: str) -> None:
        """Point ``driftwatch_revision_info`` at the component's current revision (short id)."""
        key = (agent, component)
        short = revision_id[:12]
        old = self._revision_labels.get(key)
        if old == short:
            return
        if old is not None:
            if self.multiprocess:  # files of other processes cannot be edited: zero our own value
                self.revision_info.labels(agent, component, old).set(0)
            else:
                self.revision_info.remove(agent, component, old)
        self.revision_info.labels(agent, component, short).set(1)
        self._revision_labels[key] = short

    def on_call(self, call: Call) -> None:
        a = self._agent_children.get(call.agent)
        if a is None:
            a = self._agent_calls(call.agent)
        if self.call_series is None:
            self._on_call_children(a, call)
        else:  # the hot path: one lock, a few additions
            d = call.duration_s
            n = call.output_chars
            i = bisect_left(_DURATION_BOUNDS, d)
            with a.lock:
                if call.error:
                    a.error += 1
                else:
                    a.ok += 1
                a.duration_sum += d
                if d == d:  # NaN falls in no bucket (as in prometheus_client)
                    a.duration[i] += 1
                if n is not None:
                    a.chars_sum += n
                    if n == n:
                        a.chars[bisect_left(_CHARS_BOUNDS, n)] += 1
            if call.trace_id is not None:
                self._call_exemplar(a, call, i)
        if call.input_tokens:
            self.tokens.labels(call.agent, "input").inc(call.input_tokens)
        if call.output_tokens:
            self.tokens.labels(call.agent, "output").inc(call.output_tokens)
        for tool in call.tools:
            self.tool_calls.labels(call.agent, tool).inc()
        if call.refused:
            self.refusals.labels(call.agent).inc()
        if call.format_ok is False:
            self.format_failures.labels(call.agent).inc()

    def on_calls(self, calls: list[Call], on_error: Callable[[str, BaseException], None]) -> None:
        """The calls of one agent (``calls[0].agent``), as :meth:`on_call` counts each: summed in a local loop,
        then added under the agent's lock once, and each counter (tokens, tools, refusals, format failures)
        incremented once by its sum. A call that raises is reported to ``on_error("metrics", exc)`` and not
        counted; the others are."""
        if len(calls) == 1 or self.call_series is None:  # one call (cheaper on its own), or multiprocess mode
            for call in calls:
                try:
                    self.on_call(call)
                except Exception as exc:  # noqa: BLE001  # counted; the batch's other calls go on
                    on_error("metrics", exc)
            return
        agent = calls[0].agent
        a = self._agent_children.get(agent)
        if a is None:
            a = self._agent_calls(agent)
        ok = error = refusals = formats = in_tokens = out_tokens = 0
        d_sum = c_sum = 0.0
        d_at: list[int] = []
        c_at: list[int] = []
        tools: dict[str, int] = {}
        exemplars: list[tuple[Call, int]] = []
        for call in calls:
            try:
                d = call.duration_s
                n = call.output_chars
                i = bisect_left(_DURATION_BOUNDS, d)
                j = -1 if n is None or n != n else bisect_left(_CHARS_BOUNDS, n)
                t_in, t_out = call.input_tokens, call.output_tokens
                if (t_in and t_in < 0) or (t_out and t_out < 0):
                    raise ValueError("Counters can only be incremented by non-negative amounts.")
                d_sum += d
                if n is not None:
                    c_sum += n
                    if j >= 0:
                        c_at.append(j)
            except Exception as exc:  # noqa: BLE001  # counted; the batch's other calls go on
                on_error("metrics", exc)
                continue
            if d == d:  # NaN falls in no bucket (as in prometheus_client)
                d_at.append(i)
            if call.error:
                error += 1
            else:
                ok += 1
            if t_in:
                in_tokens += t_in
            if t_out:
                out_tokens += t_out
            for tool in call.tools:
                tools[tool] = tools.get(tool, 0) + 1
            if call.refused:
                refusals += 1
            if call.format_ok is False:
                formats += 1
            if call.trace_id is not None:
                exemplars.append((call, i))
        with a.lock:
            a.ok += ok
            a.error += error
            a.duration_sum += d_sum
            duration = a.duration
            for i in d_at:
                duration[i] += 1
            a.chars_sum += c_sum
            chars = a.chars
            for j in c_at:
                chars[j] += 1
        for call, i in exemplars:
            self._call_exemplar(a, call, i)
        if in_tokens:
            self.tokens.labels(agent, "input").inc(in_tokens)
        if out_tokens:
            self.tokens.labels(agent, "output").inc(out_tokens)
        for tool, count in tools.items():
            self.tool_calls.labels(agent, tool).inc(count)
        if refusals:
            self.refusals.labels(agent).inc(refusals)
        if formats:
            self.format_failures.labels(agent).inc(formats)

    def _agent_calls(self, agent: str) -> Any:
        """Start the agent's call series (zero in every status): its sums, or its prometheus_client children."""
        if self.call_series is not None:
            a: Any = self.call_series.agent(agent)
        else:
            a = (self.calls.labels(agent, "ok"), self.calls.labels(agent, "error"),
                 self.call_duration.labels(agent), self.output_chars.labels(agent))
        self._agent_children[agent] = a
        return a

    def _on_call_children(self, children: tuple[Any, Any, Any, Any], call: Call) -> None:
        """A call on prometheus_client's objects (multiprocess mode)."""
        ok, err, duration, chars = children
        ex = self._exemplar(call.trace_id, call.span_id)
        (err if call.error else ok).inc(exemplar=ex)
        duration.observe(call.duration_s, exemplar=ex)
        if call.output_chars is not None:
            chars.observe(call.output_chars)

    def _call_exemplar(self, a: _AgentCalls, call: Call, bucket: int) -> None:
        """Put the call's trace id on its status's counter and its duration bucket (what ``inc``/``observe``
        with an exemplar do)."""
        labels = {"trace_id": call.trace_id or "", "span_id": call.span_id or ""}
        now = time.time()
        with a.lock:
            if call.error:
                a.error_exemplar = Exemplar(labels, 1, now)
            else:
                a.ok_exemplar = Exemplar(labels, 1, now)
            if call.duration_s == call.duration_s:
                a.duration_exemplars[bucket] = Exemplar(labels, call.duration_s, now)

    def on_signals(self, agent: str, *, refused: bool | None, format_ok: bool | None) -> None:
        """Count per-call signals a hook reported on its own (``Runtime.record_signals``)."""
        if refused:
            self.refusals.labels(agent).inc()
        if format_ok is False:
            self.format_failures.labels(agent).inc()

    def on_score(self, agent: str, metric: str, value: float) -> None:
        self.score.labels(agent, metric).observe(value)

    def on_run(self, run: OptimizerRun) -> None:
        self.optimizer_runs.labels(run.agent, run.optimizer, run.outcome).inc()
        if run.candidates:
            self.optimizer_candidates.labels(run.agent, run.optimizer).inc(run.candidates)
        if run.best_score is not None:
            self.optimizer_best_score.labels(run.agent, run.optimizer).set(run.best_score)

    def set_drift(self, agent: str, scores: Mapping[str, float], alarmed: Collection[str],
                  reference_calls: int) -> None:
        """Set an agent's drift gauges: each signal's score (statistic / threshold) and alarm (1 while
        latched), and the size of its reference. A signal set before and missing from ``scores`` now reads
        score 0 (its alarm stays 1 while latched)."""
        alarmed = frozenset(alarmed)
        gone = self._drift_signals.get(agent, frozenset()) - scores.keys()
        for signal in gone:
            self.drift_score.labels(agent, signal).set(0.0)
            self.drift_alarm.labels(agent, signal).set(1.0 if signal in alarmed else 0.0)
        for signal, value in scores.items():
            self.drift_score.labels(agent, signal).set(value)
            self.drift_alarm.labels(agent, signal).set(1.0 if signal in alarmed else 0.0)
        for signal in alarmed - scores.keys():
            self.drift_alarm.labels(agent, signal).set(1.0)
        self._drift_signals[agent] = frozenset(scores.keys()) | alarmed
        self.reference_calls.labels(agent).set(reference_calls)

    def on_guard(self, agent: str, action: str) -> None:
        """Count one guard action (:data:`driftwatch.guardrails.records.ACTIONS`)."""
        self.guard_actions.labels(agent, action).inc()

    def set_guard(self, agent: str, frozen: bool, held: int) -> None:
        """Set an agent's guard gauges: frozen (0/1) and the number of changes held for approval."""
        self.guard_frozen.labels(agent).set(1.0 if frozen else 0.0)
        self.held_changes.labels(agent).set(held)

    def internal_error(self, stage: str) -> None:
        self.internal_errors.labels(stage).inc()

    def dropped(self, what: str) -> None:
        """A name past its limit counted as ``other`` (or made safe): ``driftwatch_dropped_total{what}``."""
        self.dropped_names.labels(what).inc()

    def substituted(self, reasons: Mapping[str, int]) -> None:
        """Stand-ins used in a recorded state, by reason: ``driftwatch_state_substitutions_total{reason}``."""
        for reason, n in reasons.items():
            self.substitutions.labels(reason).inc(n)

    def agents(self) -> set[str]:
        """The agents this sink holds per-agent caches for (a copy)."""
        return {*self._agent_children, *self._next_exemplar, *self._drift_signals}

    def forget_agent(self, agent: str) -> None:
        """Drop an evicted agent: its cached children and exemplar timer, and every series with its ``agent``
        label (in multiprocess mode other processes' files cannot be edited: the series stay until restart)."""
        self._agent_children.pop(agent, None)
        if self.call_series is not None:
            self.call_series.forget(agent)
        self._next_exemplar.pop(agent, None)
        self._drift_signals.pop(agent, None)
        for key in [k for k in self._revision_labels if k[0] == agent]:
            del self._revision_labels[key]
        if self.multiprocess:
            return
        for metric in self._per_agent:
            metric.remove_by_labels({"agent": agent})
