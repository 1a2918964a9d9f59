"""The scopes a hook holds while driftwatch watches something of the host's: one watched call
(:class:`CallScope`, made by :meth:`Runtime.begin_call <driftwatch.runtime.Runtime.begin_call>`) and one
optimizer run (:class:`RunScope`, made by :meth:`Runtime.begin_run <driftwatch.runtime.Runtime.begin_run>`),
and :func:`suppressed`, the block in which hooks stand aside while driftwatch itself acts on a watched object.

A scope holds its span and start time, and hands what it learnt to its runtime when it ends; no method
raises into the host (errors are counted by the runtime).
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from driftwatch.change import new_id
from driftwatch.limits import OTHER, clean_name
from driftwatch.observation import Call, OptimizerRun
from driftwatch.tracing import GEN_AI_AGENT_VERSION, Tracing, current_ids, end_call_span

if TYPE_CHECKING:
    from driftwatch.runtime import Runtime

__all__ = ["CallScope", "RunScope", "is_suppressed", "suppressed", "would_trace"]


#: set while driftwatch itself acts on a watched object (restore, replay): hooks stand aside
_SUPPRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("driftwatch_suppress", default=False)


@contextmanager
def suppressed() -> Iterator[None]:
    """Within this block, driftwatch's hooks observe nothing (used when driftwatch edits a program)."""
    token = _SUPPRESS.set(True)
    try:
        yield
    finally:
        _SUPPRESS.reset(token)


def is_suppressed() -> bool:
    return _SUPPRESS.get()


def would_trace(tracing: Tracing | None) -> bool:
    """Whether a call's span can record (:meth:`Tracing.live`): otherwise no span is made, nor anything for one."""
    return tracing is not None and (tracing.bound or tracing.live())


class CallScope:
    """One watched call in progress: its start time and span. Made by :meth:`Runtime.begin_call`.

    ``version``: the agent version that serves the call when the hook knows it (a DSPy program instance's
    own revision); otherwise the span carries the agent's version (:meth:`Runtime.agent_version`) as it is
    when the call ends, so that components first seen during the call count. ``attributes``: GenAI span
    attributes known at the start (provider, model, conversation id); :meth:`finish` adds those learnt
    during the call.
    """

    __slots__ = ("agent", "label", "recording", "runtime", "span", "started_version", "t0", "token", "version")

    def __init__(self, runtime: Runtime, agent: str, attach: bool = True, version: str | None = None,
                 attributes: Mapping[str, Any] | None = None) -> None:
        self.runtime = runtime
        entry = runtime.names.get(agent) or runtime.agent_names(agent)  # inlined: the admitted agent, per call
        #: the agent's name (made safe to store); ``label``: its metric label (``other`` past the agent limit)
        self.agent = agent = entry.name if entry is not None else clean_name(agent)
        self.label = agent if entry is not None else OTHER
        self.span: Any = None
        self.token: Any = None
        self.recording = False  # the span records: only then are its attributes and exemplar computed
        self.version = self.started_version = version  # the version on the span: read only with one
        tracing = runtime.tracing
        if tracing is not None and (tracing.bound or tracing.live()):  # would_trace
            if version is None:
                self.started_version = runtime.versions.get(agent)  # agent_version, without the call
            try:
                self.span, self.token, self.recording = tracing.start_call(agent, self.started_version, attach,
                                                                           attributes)  # positional: per call
            except Exception as exc:  # noqa: BLE001  # never break the host: counted below
                runtime.error("tracing", exc)
        self.t0 = time.perf_counter()

    def enter(self) -> Any:
        """Re-activate the call's span (a generator resuming, a graph step); returns a token for :meth:`exit`."""
        if self.span is None:
            return None
        try:
            return Tracing.enter(self.span)
        except Exception as exc:  # noqa: BLE001  # never break the host
            self.runtime.error("tracing", exc)
            return None

    def exit(self, token: Any) -> None:
        if token is not None:
            try:
                Tracing.exit(token)
            except Exception as exc:  # noqa: BLE001  # never break the host
                self.runtime.error("tracing", exc)

    def finish(self, *, error: BaseException | None = None, output_chars: int | None = None,
               output_text: str | None = None, input_tokens: int | None = None,
               output_tokens: int | None = None, tools: tuple[str, ...] = (), record: bool = True,
               factory: str | None = None, attributes: dict[str, Any] | None = None,
               span_attributes: dict[str, Any] | None = None) -> None:
        """End the span and record the call (``record=False``: end the span only). ``attributes`` go on the
        :class:`~driftwatch.observation.Call`, ``span_attributes`` (GenAI attributes learnt during the call)
        on the span."""
        duration = time.perf_counter() - self.t0
        rt = self.runtime
        trace_id = span_id = None
        span = self.span
        if span is not None:
            try:
                if self.token is not None:
                    token, self.token = self.token, None
                    Tracing.exit(token)
                recording = self.recording
                if recording:  # nothing is computed for a span that does not record
                    # exemplars (the call's trace id on its metrics), rate-limited: Prometheus keeps one exemplar
                    # per series per scrape anyway
                    if record and rt.metrics is not None and rt.metrics.exemplar_due(self.label, error is not None):
                        ctx = span.get_span_context()
                        if ctx.is_valid:
                            trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
                    # the version that served the call: a change during the call (or the first call's components)
                    # moved it since the start
                    version = self.version if self.version is not None else rt.versions.get(self.agent)
                    if version is not None and version != self.started_version:
                        span_attributes = {**(span_attributes or {}), GEN_AI_AGENT_VERSION: version}
                # Tracing.end_call, its arguments positional (keywords cost more than the rest of its usual path)
                end_call_span(span, recording, error, output_chars, input_tokens, output_tokens, factory,
                              span_attributes, rt.settings.capture_content, rt.redact)
            except Exception as exc:  # noqa: BLE001  # never break the host
                rt.error("tracing", exc)
        if not record:
            rt.end_spans()  # no call for a batch: its span is made now
            return
        # positional, in Call's field order (agent, duration_s, error, error_type, output_chars, output_text,
        # input_tokens, output_tokens, tools, trace_id, span_id, timestamp, attributes): half the keywords' cost
        rt.record_call(Call(
            self.label, duration, error is not None, type(error).__qualname__ if error is not None else None,
            output_chars, output_text, input_tokens, output_tokens, tools, trace_id, span_id, time.time(),
            attributes or {},
        ))


class RunScope:
    """One optimizer run in progress: its record (:attr:`run`) and its ``driftwatch.optimizer.compile``
    span, current from :meth:`Runtime.begin_run` until :meth:`finish`. Made by :meth:`Runtime.begin_run`.

    Candidates may be reported from worker threads; no method raises into the optimizer (errors are
    counted).
    """

    __slots__ = ("lock", "run", "runtime", "span", "token")

    def __init__(self, runtime: Runtime, agent: str, optimizer: str, attributes: dict[str, Any]) -> None:
        self.runtime = runtime
        entry = runtime.safe("limits", runtime.agent_names, agent)
        agent = entry.name if entry is not None else clean_name(agent)
        self.run = run = OptimizerRun(id=new_id(), agent=agent, optimizer=optimizer, started_at=time.time(),
                                      attributes=attributes)
        self.span: Any = None
        self.token: Any = None
        self.lock = threading.Lock()
        if runtime.tracing is not None:
            try:
                self.span = runtime.tracing.start_run(run)
                self.token = Tracing.enter(self.span)
            except Exception as exc:  # noqa: BLE001  # never break the host: counted
                runtime.error("tracing", exc)
        run.trace_id = current_ids()[0]  # the compile span's trace (the caller's when it does not record)
        snapshot = replace(run, attributes=dict(run.attributes))
        with runtime.ledger.host_call():
            runtime.ledger.record_run(snapshot)

    # a run's span is re-activated (a worker, a resumed coroutine) the way a call's is
    enter = CallScope.enter
    exit = CallScope.exit

    def candidate(self, score: float | None, revision_id: str | None = None, **attributes: Any) -> None:
        """Record a candidate the run evaluated: its score (0–1; ``None`` when it has none or it is not
        finite), the revision it would put in place (a revision id the ledger holds, or ``None``) and
        JSON-able attributes (``stage`` …)."""
        try:
            value = None if score is None else float(score)
            if value is not None and not math.isfinite(value):
                value = None
            run = self.run
            with self.lock:
                index = run.candidates
                run.candidates += 1
                if value is not None and (run.best_score is None or value > run.best_score):
                    run.best_score = value
            with self.runtime.ledger.host_call():  # not under the lock: other workers never wait for this write
                self.runtime.ledger.record_candidate(run.id, index, value, revision_id, attributes)
        except Exception as exc:  # noqa: BLE001  # never break the optimizer: counted
            self.runtime.error("run", exc)

    def finish(self, *, error: BaseException | None = None) -> None:
        """End the run (``ok``, or ``failed`` with ``error``): ledger, metrics, audit log, then its span.
        Only the first call counts."""
        run, rt = self.run, self.runtime
        with self.lock:
            if run.outcome != "running":
                return
            run.ended_at = time.time()
            run.outcome = "failed" if error is not None else "ok"
            run.error_type = type(error).__qualname__ if error is not None else None
            snapshot = replace(run, attributes=dict(run.attributes))
        with rt.ledger.host_call():
            rt.ledger.record_run(snapshot)
        if rt.metrics is not None:
            counted = snapshot if run.agent in rt.names else replace(snapshot, agent=OTHER)
            rt.safe("metrics", rt.metrics.on_run, counted)
        if rt.audit is not None:
            rt.safe("audit", rt.audit.on_run, snapshot)
        if self.span is not None:
            token, self.token = self.token, None
            self.exit(token)  # guarded: a detach from another context is counted, and the span still ends
            try:
                Tracing.end_run(self.span, snapshot, error, capture_content=rt.settings.capture_content,
                                redact=rt.redact)
            except Exception as exc:  # noqa: BLE001  # never break the host
                rt.error("tracing", exc)
