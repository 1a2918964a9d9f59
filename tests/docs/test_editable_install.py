"""`make demo` (and `make venv`) install the checkout editable without setuptools' "Editable installation"
warning block (issue 12 item 9): the Makefile quiets it, and the quieting works on the real build backend."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()
BLOCK = "Editable installation"


def _quiet_env() -> dict[str, str]:
    m = re.search(r"^QUIET_EDITABLE := (\w+)=\"([^\"]*)\"$", MAKEFILE, re.M)
    assert m, "the Makefile defines QUIET_EDITABLE"
    return {m.group(1): m.group(2)}


def test_every_editable_install_line_is_quieted() -> None:
    """make venv (and so make demo), the lowest- and latest-version venvs and the re-pinning all install quietly."""
    lines = [ln.strip() for ln in MAKEFILE.splitlines() if "pip install" in ln and " -e " in ln]
    assert len(lines) >= 2  # the venv of `make demo` and at least one more
    assert all(line.startswith("$(QUIET_EDITABLE) ") for line in lines), lines


def _build_editable(tmp_path: Path, extra_env: dict[str, str]) -> str:
    """Build the editable wheel of a copy of the checkout with setuptools' backend; its stderr."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "__pycache__",
                                                              ".pytest_cache", ".ruff_cache", "tests", "benchmarks"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"} | extra_env
    proc = subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
                           "b.build_editable(sys.argv[1])", str(tmp_path / "dist")],
                          cwd=src, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list((tmp_path / "dist").glob("*.whl"))
    return proc.stderr


@pytest.mark.slow
def test_the_quieting_silences_the_warning_block(tmp_path: Path) -> None:
    """With the Makefile's setting the backend prints no warning block; without it, it does (the control)."""
    assert BLOCK in _build_editable(tmp_path / "plain", {})
    assert BLOCK not in _build_editable(tmp_path / "quiet", _quiet_env())
