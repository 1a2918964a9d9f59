"""Exposition: serving ``/metrics`` for Prometheus, on loopback unless told otherwise.

The public :func:`driftwatch.start_http_server` serves the registry of the process's runtime; this module
serves whichever registry it is given, and :func:`follow` points a running server at another one (what
:func:`driftwatch.configure` does, so that ``/metrics`` keeps serving the new runtime's metrics).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client import start_http_server as _start

__all__ = ["follow", "start_http_server"]


class _Following:
    """What a server serves: the registry it currently follows (swapped by :func:`follow`)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Any:
        return self.registry.collect()

    def restricted_registry(self, names: Any) -> Any:  # ``/metrics?name[]=…``
        return self.registry.restricted_registry(names)


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
    target = _Following(_registry(registry))
    try:
        server, _thread = _start(port, addr, registry=target)
    except OSError as exc:
        raise OSError(f"cannot serve /metrics on {addr}:{port}: {exc.strerror or exc}") from None
    server.driftwatch_target = target
    return server


def follow(server: Any, registry: CollectorRegistry | None) -> None:
    """Serve ``registry`` from now on from a server made by :func:`start_http_server` (in multiprocess mode it
    keeps serving the aggregate of every process)."""
    target = getattr(server, "driftwatch_target", None)
    if target is None:
        raise ValueError("follow(server=...): not a server made by driftwatch's start_http_server")
    target.registry = _registry(registry)
