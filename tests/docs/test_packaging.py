"""Packaging promises: the extras match the integrations' minimum versions; the public surface is typed."""

from __future__ import annotations

import configparser
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

import driftwatch
from driftwatch.integrations import MINIMUM_VERSIONS
from tests.helpers.minimums import lowest_run, minimums, normalize

ROOT = Path(__file__).resolve().parents[2]


def _extras() -> dict[str, list[str]]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {k: [line.strip() for line in v.splitlines() if line.strip() and not line.strip().startswith("#")]
            for k, v in cfg["options.extras_require"].items()}


def _minimum(requirements: list[str], name: str) -> str | None:
    for req in requirements:
        m = re.match(rf"^{re.escape(name)}\s*>=\s*([\w.]+)", req)
        if m:
            return m.group(1)
    return None


def test_extras_declare_the_integrations_minimum_versions() -> None:
    """Each framework's minimum in MINIMUM_VERSIONS equals its minimum in the setup.cfg extra and in `all`."""
    extras = _extras()
    owner = {"dspy": "dspy", "langgraph": "langgraph", "langchain-core": "langgraph"}
    for package, minimum in MINIMUM_VERSIONS.items():
        assert _minimum(extras[owner[package]], package) == minimum, package
        assert _minimum(extras["all"], package) == minimum, package


def _lowest_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints-lowest.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.strip().partition("==")
            pins[normalize(name)] = pinned
    return pins


def test_constraints_lowest_pins_every_minimum() -> None:
    """constraints-lowest.txt (what .venv-lowest installs) pins each `>=` minimum of setup.cfg exactly."""
    declared = minimums()
    assert {"dspy", "langgraph", "langchain-core", "langchain", "opentelemetry-sdk", "psycopg"} <= set(declared)
    pins = _lowest_pins()
    for package, minimum in declared.items():
        assert package in pins, f"constraints-lowest.txt does not pin {package}: run make constraints-lowest"
        assert Version(pins[package]) == Version(minimum), \
            f"constraints-lowest.txt pins {package}=={pins[package]}, setup.cfg's minimum is {minimum}: " \
            "run make constraints-lowest"


@pytest.mark.skipif(not lowest_run(), reason="checks the lowest-versions run (make test-lowest)")
def test_the_lowest_run_runs_on_the_minimums() -> None:
    """In .venv-lowest every package with a minimum is installed at exactly that minimum."""
    for package, minimum in minimums().items():
        assert Version(version(package)) == Version(minimum), package


def test_public_surface_is_declared_and_typed() -> None:
    """Every name in driftwatch.__all__ exists, and the package ships py.typed."""
    for name in driftwatch.__all__:
        assert hasattr(driftwatch, name), name
    assert (ROOT / "driftwatch" / "py.typed").exists()


def test_the_wheel_ships_the_alert_rules_for_driftwatch_stack(tmp_path: Path) -> None:
    """A built wheel holds the package with its subpackages, py.typed, and the two rule files `driftwatch stack`
    falls back to."""
    import subprocess
    import sys
    import zipfile

    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("driftwatch_agents-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "driftwatch/py.typed" in names
    for package in ("cli", "demo", "stack"):
        assert f"driftwatch/{package}/__init__.py" in names, package
    for rule in ("driftwatch_rules.yaml", "driftwatch_alerts.yaml"):
        assert any(n.endswith(f".data/data/share/driftwatch/alerts/{rule}") for n in names), rule
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/"))]
