"""Fixtures for the LangGraph integration tests (graphs and models are in ``lg_graphs.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from driftwatch.testing import capture


@pytest.fixture(autouse=True)
def _isolated_runtime(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test without ``cap`` still gets an isolated runtime, so that watching a graph never opens the
    default ledger (``./driftwatch.db``) in the checkout."""
    if "cap" in request.fixturenames:
        yield
        return
    with capture():
        yield
