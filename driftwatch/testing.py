"""Helpers for testing code that uses driftwatch (the ones driftwatch's own tests use).

>>> from driftwatch.testing import capture
>>> with capture() as cap:
...     run_my_agent()
>>> cap.changes()                                   # from an in-memory SQLite ledger
>>> cap.value("driftwatch_calls_total", agent="bot", status="ok")
>>> [s.name for s in cap.spans()]                    # finished spans, in-memory exporter
>>> cap.audit                                        # audit events as dicts

Inside the block a fresh runtime is installed: a fresh Prometheus registry, an OpenTelemetry SDK
tracer provider with an in-memory exporter (its span ids come from :func:`driftwatch.tracing.id_generator`, so a
program under test that seeds :mod:`random` draws the same numbers as without driftwatch), an in-memory ledger
(or the one you name), and audit
events collected in a list. Ledger writes are waited for (up to :data:`CAPTURE_WAIT_S`), and a read sees
every write made before it. Agent options set before (``driftwatch.configure_agent``) apply inside the
block too; options set inside it stay there. The previous runtime is put back on exit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from driftwatch.change import Change
from driftwatch.config import Settings
from driftwatch.ledger import Ledger
from driftwatch.runtime import Runtime, current_runtime, set_runtime
from driftwatch.tracing import id_generator

__all__ = ["CAPTURE_WAIT_S", "Captured", "ListLogger", "capture"]

#: how long a write inside :func:`capture` may wait for the ledger (unless ``ledger_wait_s=`` or
#: ``DRIFTWATCH_LEDGER_WAIT_S`` says otherwise): a test's ledger is fast, and a busy test machine must not turn
#: its writes asynchronous. Pass ``ledger_wait_s=0.05`` (the default of a real process) to test the bound.
CAPTURE_WAIT_S = 5.0


class ListLogger:
    """A structlog-style logger that keeps each event as a dict."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def _log(self, level: str, event: str, **kw: Any) -> None:
        self.events.append({"event": event, "level": level, **kw})

    def info(self, event: str, **kw: Any) -> None:
        self._log("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._log("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._log("error", event, **kw)


@dataclass
class Captured:
    """What :func:`capture` collected."""

    runtime: Runtime
    registry: CollectorRegistry
    exporter: Any
    audit_logger: ListLogger
    provider: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ledger(self) -> Ledger:
        self.runtime.flush_calls()  # a read sees every call made before it (their alarms, call windows)
        return self.runtime.ledger

    @property
    def audit(self) -> list[dict[str, Any]]:
        return self.audit_logger.events

    def changes(self, **filters: Any) -> list[Change]:
        return self.ledger.changes(**filters)

    def spans(self, name: str | None = None) -> list[Any]:
        self.runtime.flush_calls()  # the alarms of the calls made before it
        self.provider.force_flush()
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def value(self, name: str, **labels: str) -> float:
        """A sample's value (0.0 when the series does not exist yet)."""
        v = self.registry.get_sample_value(name, labels)
        return 0.0 if v is None or math.isnan(v) else v

    def metrics_text(self) -> str:
        return generate_latest(self.registry).decode()


@contextmanager
def capture(**settings: Any) -> Iterator[Captured]:
    """Install an isolated runtime for the block; ``settings`` as for :func:`driftwatch.configure`."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    registry = settings.pop("registry", None) or CollectorRegistry()
    provider = settings.pop("tracer_provider", None)
    exporter = InMemorySpanExporter()
    if provider is None:
        provider = TracerProvider(id_generator=id_generator())
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    logger = ListLogger()
    settings.setdefault("audit_logger", logger)
    settings.setdefault("ledger", ":memory:")
    if not os.environ.get("DRIFTWATCH_LEDGER_WAIT_S", "").strip():
        settings.setdefault("ledger_wait_s", CAPTURE_WAIT_S)
    previous = current_runtime()
    runtime = Runtime(Settings.from_env(registry=registry, tracer_provider=provider, **settings),
                      agent_options=previous.all_agent_options() if previous is not None else None)
    runtime.ledger.start()  # opened in the background, as configure() does
    old = set_runtime(runtime)
    try:
        yield Captured(runtime, registry, exporter, logger, provider)
    finally:
        set_runtime(old)
        runtime.close()
