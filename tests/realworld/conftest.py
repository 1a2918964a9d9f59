"""Programs driftwatch was not written alongside, each run once bare and once watched per session.

Every program here is adapted from a published source (named in its module's docstring) to fake models
only. ``outcome(name)`` runs a program's scenario through :func:`tests.realworld.harness.run_both` on first
use and keeps the :class:`~tests.realworld.harness.Outcome` for the session, so that the many tests that
look at one run (outputs, changes, metrics, spans) do not each pay for it.

A test that documents a defect of today's driftwatch asserts the correct behaviour and is marked
``xfail(strict=True, reason="issue 12 item N: ...")``: when the defect is fixed it passes, strict xfail
fails the suite, and the mark must come off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.version import Version

from tests.realworld.harness import Outcome, run_both, unpatch
from tests.realworld.programs import PROGRAMS

_OUTCOMES: dict[str, Outcome] = {}


def _skip_unless_installed(name: str) -> None:
    for distribution, minimum in PROGRAMS[name].needs:
        try:
            found = version(distribution)
        except PackageNotFoundError:
            pytest.skip(f"the {name} program needs {distribution}>={minimum}, which is not installed")
        if Version(found) < Version(minimum):
            pytest.skip(f"the {name} program needs {distribution}>={minimum} (found {found})")


def outcome_of(name: str) -> Outcome:
    _skip_unless_installed(name)
    if name not in _OUTCOMES:
        _OUTCOMES[name] = run_both(PROGRAMS[name].scenario)
    return _OUTCOMES[name]


@pytest.fixture
def outcome() -> Callable[[str], Outcome]:
    """``outcome(name)``: the session's bare + watched run of program ``name``."""
    return outcome_of


@pytest.fixture(autouse=True)
def _no_patches_left() -> Iterator[None]:
    """Every test starts and ends with driftwatch's integrations unpatched (as the other suites expect)."""
    unpatch()
    yield
    unpatch()
