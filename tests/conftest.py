"""Fixtures shared by the whole suite."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from driftwatch.testing import Captured, capture


@pytest.fixture
def cap() -> Iterator[Captured]:
    """An isolated driftwatch runtime: fresh registry, in-memory spans, in-memory ledger."""
    with capture() as c:
        yield c


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
