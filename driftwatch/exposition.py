"""Exposition: serving ``/metrics`` for Prometheus, on loopback unless told otherwise."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client import start_http_server as _start

if TYPE_CHECKING:
    from driftwatch.runtime import Runtime

__all__ = ["start_http_server"]


def _registry(runtime: Runtime | None) -> Any:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    if runtime is not None and runtime.metrics is not None and runtime.metrics.registry is not None:
        return runtime.metrics.registry
    return REGISTRY


def start_http_server(port: int = 9464, addr: str = "127.0.0.1", *, runtime: Runtime | None = None) -> Any:
    """Serve ``/metrics`` from a daemon thread; returns the server (``.shutdown()`` then ``.server_close()``).

    Binds to ``127.0.0.1`` by default: pass ``addr="0.0.0.0"`` to expose it beyond the host.
    ``port=0`` picks a free port (read it from ``server.server_port``). In prometheus_client
    multiprocess mode it serves the aggregate of every process.
    """
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"start_http_server(port={port!r}): expected a port number from 0 to 65535")
    if runtime is None:
        from driftwatch.runtime import get_runtime

        runtime = get_runtime()
    try:
        server, _thread = _start(port, addr, registry=_registry(runtime))
    except OSError as exc:
        raise OSError(f"cannot serve /metrics on {addr}:{port}: {exc.strerror or exc}") from None
    runtime.http_server = server
    return server
