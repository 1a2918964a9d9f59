"""Exposition: serving ``/metrics`` for Prometheus, on loopback unless told otherwise.

The public :func:`driftwatch.start_http_server` serves the registry of the process's runtime; this module
serves whichever registry it is given.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client import start_http_server as _start

__all__ = ["start_http_server"]


def _registry(registry: CollectorRegistry | None) -> Any:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        aggregate = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregate)
        return aggregate
    return REGISTRY if registry is None else registry


def start_http_server(port: int = 9464, addr: str = "127.0.0.1", *, registry: CollectorRegistry | None = None) -> Any:
    """Serve ``registry`` (default: prometheus_client's ``REGISTRY``) on ``/metrics`` from a daemon thread;
    returns the server (``.shutdown()`` then ``.server_close()``).

    Binds to ``127.0.0.1`` by default: pass ``addr="0.0.0.0"`` to expose it beyond the host.
    ``port=0`` picks a free port (read it from ``server.server_port``). In prometheus_client
    multiprocess mode it serves the aggregate of every process.
    """
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"start_http_server(port={port!r}): expected a port number from 0 to 65535")
    try:
        server, _thread = _start(port, addr, registry=_registry(registry))
    except OSError as exc:
        raise OSError(f"cannot serve /metrics on {addr}:{port}: {exc.strerror or exc}") from None
    return server
