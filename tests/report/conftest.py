"""Fixtures for the newcomer-path tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.sample import run_sample_agent


@pytest.fixture(scope="session")
def sample_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger file with two prompt rewrites, one optimizer run, one drift alarm and 600 calls in windows."""
    path = tmp_path_factory.mktemp("sample") / "sample.db"
    run_sample_agent(str(path), pause_s=0.001)
    return path
