"""Exposition: serving ``/metrics`` for Prometheus, on loopback unless told otherwise.

The public :func:`driftwatch.start_http_server` serves the registry of the process's runtime; this module
serves whichever registry it is given, and :func:`follow` points a running server at another one (what
:func:`driftwatch.configure` does, so that ``/metrics`` keeps serving the new runtime's metrics).

**The scrape hand-over.** prometheus_client answers on threads of its own (one accepts connections, one more per
request). A thread that wakes while the host runs must take the interpreter lock back before it can do anything, and
beside a host that releases the lock often and briefly (DSPy on ``DummyLM``: three releases a program call) it waits
for as long as the host runs: CPython wakes it at every release, it loses the race, and its 5 ms wait for a forced
switch starts over (the same starvation :mod:`driftwatch.call_batch` describes for driftwatch's own threads). A
scrape then took about a second. So the host lends the lock to scrapes: :func:`yield_to_scrapes`, which the
runtime's call path runs at most once per :data:`SCRAPE_CHECK_S` (on the host's thread: see
:meth:`driftwatch.runtime.Runtime.record_call`), looks whether a server made here has a connection waiting on its
listening socket (a zero-timeout ``select``), one being accepted or a request under way, and if so waits, off the
lock, until the requests are answered, at most :data:`SCRAPE_HANDOVER_S`. A hand-over that runs out (a collector
that blocks, a client that connects and sends nothing) leaves that server alone for :data:`SCRAPE_BACKOFF_S`, and
the requests it waited for are not waited for again (they go on at the interpreter's pace): beyond the time the
scrapes take to be answered, a host loses at most one bound per :data:`SCRAPE_BACKOFF_S` per server, whatever the
clients do.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client import start_http_server as _start

__all__ = ["SCRAPE_BACKOFF_S", "SCRAPE_CHECK_S", "SCRAPE_HANDOVER_S", "follow", "start_http_server",
           "yield_to_scrapes"]

#: seconds between two looks for a scrape by the host's calls (one ``select`` of each listening socket): the most
#: a scrape waits for the host to notice it (a look: 1.5 µs alone; amid a busy DSPy host's work, with the turns of
#: the threads its ``select`` lets take the lock, ~2 ms a second, 0.2% of its time)
SCRAPE_CHECK_S = 0.02
#: seconds a host call waits, at most, for the scrapes it found to be answered (an answer beside an idle host takes
#: 2–7 ms; one hand-over per 15 s scrape interval is at most 0.3% of a busy host's time)
SCRAPE_HANDOVER_S = 0.05
#: seconds a server is left alone after a hand-over to it ran out (at most 5% of a host's time for a stuck server)
SCRAPE_BACKOFF_S = 1.0


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
    if all(hasattr(server, name) for name in _WRAPPED) and hasattr(server, "socket"):
        _Scrapes(server)  # (otherwise no hand-over: it answers at the interpreter's pace)
    return server


def follow(server: Any, registry: CollectorRegistry | None) -> None:
    """Serve ``registry`` from now on from a server made by :func:`start_http_server` (in multiprocess mode it
    keeps serving the aggregate of every process)."""
    target = getattr(server, "driftwatch_target", None)
    if target is None:
        raise ValueError("follow(server=...): not a server made by driftwatch's start_http_server")
    target.registry = _registry(registry)


class _Scrapes:
    """The requests of one server made by :func:`start_http_server`: accepted and not answered yet.

    Wraps the server's ``get_request`` (on its accepting thread: a connection being accepted counts from before
    ``accept``, then as a request under way, so no look falls between the two) and ``shutdown_request`` (on the
    request's thread, once answered, and on every path that drops a request), on the instance; ``shutdown`` and
    ``server_close`` take the server out of the hand-over."""

    __slots__ = ("accepting", "cond", "held", "quiet_until", "requests", "server")

    def __init__(self, server: Any) -> None:
        self.server = server
        self.requests: set[Any] = set()  # under way
        self.held: set[Any] = set()  # under way, and held a host for a whole hand-over: not waited for again
        self.cond = threading.Condition(threading.Lock())  # notified each time a request is answered
        self.quiet_until = 0.0  # time.monotonic() before which the server is left alone (a hand-over ran out)
        self.accepting = 0  # connections being accepted (between the listening socket and ``requests``)
        accept, answered = server.get_request, server.shutdown_request
        shutdown, close = server.shutdown, server.server_close

        def get_request() -> Any:
            with self.cond:
                self.accepting += 1
            try:
                request = accept()
            except BaseException:
                with self.cond:
                    self.accepting -= 1
                    self.cond.notify_all()  # an accept that failed: nothing to wait for
                raise
            with self.cond:
                self.accepting -= 1
                self.requests.add(request[0])  # under way until shutdown_request (the server calls it on every path)
            return request

        def shutdown_request(request: Any) -> None:
            try:
                answered(request)
            finally:
                with self.cond:
                    self.requests.discard(request)
                    self.held.discard(request)
                    self.cond.notify_all()

        def stopped(stop: Callable[[], None]) -> Callable[[], None]:
            def wrapper() -> None:
                _forget(self)
                stop()
            return wrapper

        server.get_request = get_request
        server.shutdown_request = shutdown_request
        server.shutdown = stopped(shutdown)
        server.server_close = stopped(close)
        _SERVING.append(self)

    def waiting(self, now: float) -> tuple[bool, bool]:
        """(a request under way not held before, a connection waiting to be accepted)."""
        if now < self.quiet_until:
            return False, False
        requests = self.requests
        busy = self.accepting > 0 or (bool(requests) and not requests <= self.held)
        sock = self.server.socket
        if sock.fileno() < 0:  # closed behind our back
            _forget(self)
            return False, False
        return busy, bool(select.select((sock,), (), (), 0)[0])

    def hand_over(self, deadline: float) -> None:
        """Wait off the interpreter lock, until ``deadline`` at most, while a request is under way or a connection
        waits (the caller holds ``cond``)."""
        while True:
            now = time.monotonic()
            busy, pending = self.waiting(now)
            if not busy and not pending:
                return
            if now >= deadline:
                self.held |= self.requests  # they go on at the interpreter's pace
                self.quiet_until = now + SCRAPE_BACKOFF_S
                return
            self.cond.wait(deadline - now)


#: the servers made by :func:`start_http_server` and not stopped
_SERVING: list[_Scrapes] = []


#: the server's methods :class:`_Scrapes` wraps (socketserver's)
_WRAPPED = ("get_request", "shutdown_request", "shutdown", "server_close")


def _forget(scrapes: _Scrapes) -> None:
    with contextlib.suppress(ValueError):
        _SERVING.remove(scrapes)


def yield_to_scrapes(on_error: Callable[[str, BaseException], None] | None = None) -> float:
    """Let the ``/metrics`` scrapes waiting for the interpreter lock run: when a server made by
    :func:`start_http_server` has a connection waiting or a request under way, wait (off the lock) until they are
    answered, at most :data:`SCRAPE_HANDOVER_S` in all. Returns the seconds waited. For the host's own threads only
    (on a server's thread it would wait for itself). Never raises: an error goes to ``on_error(stage, exc)``, stage
    ``http_server`` (the runtime passes its error counter; ``None``: dropped)."""
    if not _SERVING:
        return 0.0
    started = time.monotonic()
    try:
        deadline = started + SCRAPE_HANDOVER_S
        for scrapes in tuple(_SERVING):
            with scrapes.cond:
                scrapes.hand_over(deadline)
    except Exception as exc:  # noqa: BLE001  # never break the host
        if on_error is not None:
            with contextlib.suppress(Exception):  # the error path itself must never raise into the host
                on_error("http_server", exc)
    return time.monotonic() - started


def _after_fork_in_child() -> None:
    _SERVING.clear()  # the parent's servers: their threads did not survive the fork, their sockets are the parent's


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
