"""The host lends the interpreter lock to ``/metrics`` scrapes (driftwatch/exposition.py, "The scrape hand-over").

Reproduction (docs/reliability.md): beside a host thread that keeps the lock busy and releases it often and briefly
(DSPy on ``DummyLM``), prometheus_client's server threads waited for the lock for as long as the host ran: a scrape
took about a second. Now the host's calls look for a scrape waiting or under way, at most once per
``SCRAPE_CHECK_S``, and wait for it off the lock, at most ``SCRAPE_HANDOVER_S``.

These tests pin the mechanism with real servers and real HTTP requests: the host waits for a scrape under way (and
for one just connected) until it is answered, returns at once when none is, is held at most the bound by a scrape
that does not finish, and never raises. What it saves depends on the scheduler (an idle core for the server thread
to lose the race on), so it is measured, not asserted: ``docs/reliability.md`` gives the figures.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from driftwatch import exposition
from driftwatch.config import Settings
from driftwatch.observation import Call
from driftwatch.runtime import Runtime


class _Blocking:
    """A collector that waits for ``release`` on the scrape's thread (``entered`` is set when it starts)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.entered.set()
        self.release.wait(60)
        yield GaugeMetricFamily("blocking_collector_done", "the blocking collector returned", value=1.0)


class _Watched(threading.Condition):
    """The hand-over's condition, telling when a host thread waits on it (``waiting``)."""

    def __init__(self) -> None:
        super().__init__(threading.Lock())
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def _scrapes(server: Any) -> exposition._Scrapes:
    return next(s for s in exposition._SERVING if s.server is server)


def _until(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.005)


def _scrape_in_background(port: int) -> tuple[threading.Thread, dict[str, str]]:
    got: dict[str, str] = {}

    def scrape() -> None:
        got["body"] = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60).read().decode()

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    return thread, got


@pytest.fixture
def blocked() -> Iterator[tuple[Any, _Blocking]]:
    """A driftwatch server whose registry holds a blocking collector (released at the end)."""
    registry = CollectorRegistry()
    collector = _Blocking()
    registry.register(collector)
    server = exposition.start_http_server(0, registry=registry)
    try:
        yield server, collector
    finally:
        collector.release.set()
        server.shutdown()
        server.server_close()


def test_a_host_call_waits_for_a_scrape_under_way_until_it_is_answered(monkeypatch) -> None:
    """A scrape is under way (its collector waits) when the host's call looks for one: the call returns only once
    the scrape is answered. The collector is released only after the call has started waiting (the bound is raised
    so that a loaded machine's scheduler cannot decide the test)."""
    monkeypatch.setattr(exposition, "SCRAPE_HANDOVER_S", 30.0)
    registry = CollectorRegistry()
    collector = _Blocking()
    registry.register(collector)
    rt = Runtime(Settings.from_env(ledger=":memory:", registry=registry, tracing=False, audit=False, drift=False))
    try:
        assert rt._scrapes_due == float("inf")  # no server: one comparison a call, no look
        server = rt.start_http_server(0, "127.0.0.1")
        scrapes = _scrapes(server)
        scrapes.cond = watched = _Watched()
        thread, got = _scrape_in_background(server.server_port)
        assert collector.entered.wait(30)
        assert scrapes.requests, "control: the scrape is under way before the host's call"
        threading.Thread(target=lambda: watched.waiting.wait(30) and collector.release.set(), daemon=True).start()
        rt.record_call(Call("bot", 0.01, output_chars=3))
        assert collector.release.is_set() and not scrapes.requests, "the call returned before the scrape was answered"
        thread.join(30)
        assert "blocking_collector_done 1.0" in got["body"]
        assert 0.0 < rt._scrapes_due < float("inf")  # the next look, SCRAPE_CHECK_S after this one
    finally:
        collector.release.set()
        rt.close()
    assert rt._scrapes_due == float("inf") and all(s.server is not server for s in exposition._SERVING)


def test_a_scrape_just_connected_is_answered_before_the_hand_over_returns(monkeypatch) -> None:
    """A request sent on a connection the server may not even have accepted yet (it waits on the listening socket):
    the hand-over returns once it is answered, so the answer is there to read at once (the bound is raised so that
    a loaded machine's scheduler cannot decide the test)."""
    monkeypatch.setattr(exposition, "SCRAPE_HANDOVER_S", 30.0)
    server = exposition.start_http_server(0, registry=CollectorRegistry())
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=30) as conn:
            conn.sendall(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            waited = exposition.yield_to_scrapes()
            assert not _scrapes(server).requests
            conn.settimeout(0)  # nothing left to wait for: the server has written the answer and closed its side
            head = conn.recv(64)
        assert head.startswith(b"HTTP/1.0 200"), head
        assert waited < exposition.SCRAPE_HANDOVER_S  # returned when answered, not at the bound
    finally:
        server.shutdown()
        server.server_close()


def test_with_no_scrape_waiting_the_hand_over_returns_at_once(monkeypatch) -> None:
    """No server: nothing is looked at. An idle server: one look at its socket, no wait (the bound is raised so that
    a wait would show)."""
    monkeypatch.setattr(exposition, "SCRAPE_HANDOVER_S", 30.0)
    monkeypatch.setattr(exposition, "_SERVING", [])
    assert exposition.yield_to_scrapes() == 0.0
    server = exposition.start_http_server(0, registry=CollectorRegistry())
    try:
        assert len(exposition._SERVING) == 1 and exposition._SERVING[0].server is server
        urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=30).read()  # served before
        _until(lambda: not _scrapes(server).requests, "the scrape answered")
        started = time.perf_counter()
        for _ in range(100):
            exposition.yield_to_scrapes()
        assert time.perf_counter() - started < 10.0  # a single wait would take the raised bound (30 s)
    finally:
        server.shutdown()
        server.server_close()
    assert exposition._SERVING == []  # a server shut down is not looked at again


def test_a_scrape_that_does_not_finish_holds_the_host_for_the_bound_once(blocked, monkeypatch) -> None:
    """A collector that never returns holds the host's call for ``SCRAPE_HANDOVER_S``; later calls do not wait for
    that request again (it goes on at the interpreter's pace), nor, for ``SCRAPE_BACKOFF_S``, for the server's next
    requests (a client flooding it with requests that do not finish costs a host one bound per backoff)."""
    monkeypatch.setattr(exposition, "SCRAPE_BACKOFF_S", 60.0)
    server, collector = blocked
    scrapes = _scrapes(server)
    thread, got = _scrape_in_background(server.server_port)
    assert collector.entered.wait(30)
    started = time.perf_counter()
    first = exposition.yield_to_scrapes()
    elapsed = time.perf_counter() - started
    assert exposition.SCRAPE_HANDOVER_S * 0.95 <= first <= elapsed < 5.0, f"the call waited {elapsed:.4f} s"
    assert scrapes.requests and scrapes.requests <= scrapes.held
    other, _ = _scrape_in_background(server.server_port)  # a second request, blocked by the same collector
    _until(lambda: len(scrapes.requests) == 2, "the second request under way")
    started = time.perf_counter()
    for _ in range(20):
        exposition.yield_to_scrapes()
    rest = time.perf_counter() - started
    assert rest < 10 * exposition.SCRAPE_HANDOVER_S, f"20 later calls took {rest:.3f} s: they waited again"
    collector.release.set()
    thread.join(30)
    other.join(30)
    assert "blocking_collector_done 1.0" in got["body"]
    _until(lambda: not scrapes.requests and not scrapes.held, "the requests forgotten once answered")


def test_a_failing_look_is_counted_and_never_raised(monkeypatch) -> None:
    """The look at the listening socket fails: the host's call returns its own result, the error is counted under
    ``http_server``, and the next look (``SCRAPE_CHECK_S`` later) is tried again."""
    def broken(*args: Any) -> Any:
        raise OSError("select failed")

    rt = Runtime(Settings.from_env(ledger=":memory:", registry=CollectorRegistry(), tracing=False, audit=False,
                                   drift=False))
    try:
        rt.start_http_server(0, "127.0.0.1")
        monkeypatch.setattr(exposition, "select", SimpleNamespace(select=broken))
        rt.record_call(Call("bot", 0.01, output_chars=3))
        assert rt.error_counts == {"http_server": 1}
        errors: list[tuple[str, BaseException]] = []
        assert exposition.yield_to_scrapes(lambda stage, exc: errors.append((stage, exc))) >= 0.0
        assert [(stage, str(exc)) for stage, exc in errors] == [("http_server", "select failed")]
    finally:
        rt.close()
