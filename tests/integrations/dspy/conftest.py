"""Fixtures for the DSPy integration tests (programs and the test LM are in ``dspy_programs.py``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import dspy
import pytest

from driftwatch.integrations import dspy as dw_dspy
from tests.helpers.dspy_programs import PromptLM


@pytest.fixture
def lm() -> Iterator[PromptLM]:
    """A fresh PromptLM configured as DSPy's LM."""
    model = PromptLM()
    dspy.configure(lm=model)
    yield model


@pytest.fixture(autouse=True)
def _unpatch() -> Iterator[None]:
    """Every test starts and ends with DSPy unpatched."""
    dw_dspy.uninstrument()
    yield
    dw_dspy.uninstrument()


@pytest.fixture
def quiet_optimizers() -> Iterator[None]:
    """The optimizers log progress at INFO/WARNING; keep the test output readable."""
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)
