"""Fixtures shared by the whole suite."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftwatch.testing import Captured, capture
from tests.helpers.pg_server import PostgresServer
from tests.helpers.servers import WebhookReceiver


@pytest.fixture
def cap() -> Iterator[Captured]:
    """An isolated driftwatch runtime: fresh registry, in-memory spans, in-memory ledger."""
    with capture() as c:
        yield c


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookReceiver]:
    """A webhook receiver on a free loopback port (what PagerDuty/Slack/a bot would be to Alertmanager)."""
    r = WebhookReceiver()
    yield r
    r.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session (started on first use, ~1 s; see tests/helpers/pg_server.py).
    Fails (never skips) when the server binaries are missing: `make test` installs them."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


_databases = itertools.count()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return postgres.create_database(f"dw{next(_databases)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh ledger location for each backend: an SQLite file, then a PostgreSQL database URL."""
    if request.param == "sqlite":
        return str(tmp_path / "dw.db")
    return request.getfixturevalue("pg_url")


_ROOT_LEDGER = Path(__file__).resolve().parents[1] / "driftwatch.db"
_ROOT_LEDGER_EXISTED = _ROOT_LEDGER.exists()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test opened the default ledger in the checkout (a test without an isolated runtime)."""
    if not _ROOT_LEDGER_EXISTED and _ROOT_LEDGER.exists():
        session.config.get_terminal_writer().line(
            f"FAILED: a test created {_ROOT_LEDGER} (use the `cap` fixture or driftwatch.testing.capture())", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
