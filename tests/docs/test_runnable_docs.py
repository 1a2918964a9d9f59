"""Every code block of README.md and docs/*.md marked runnable, and every example, runs in a venv with only the
extras its text names.

The marker is an HTML comment on the line just before a fenced ``python`` block (invisible when rendered)::

    <!-- runnable: extras=dspy -->            a venv with `pip install -e '.[dspy]'`
    <!-- runnable: extras= -->                the base install (no extra)
    <!-- runnable: extras=dspy | extras=all -->   run once in each

A marked block runs as a script, as it is (no mocking: where a block would call a hosted model, the doc's
block itself uses an offline fake, e.g. DSPy's ``DummyLM``), in an empty working directory, with the
packages of ``constraints.txt``. Venvs are built once per extras set and checkout (an editable install, so
they follow the code) and cached under ``$DRIFTWATCH_DOC_VENVS`` (default: ``<tmp>/driftwatch-doc-venvs``);
the key includes ``setup.cfg`` and ``constraints.txt``, so a dependency change builds a new one.

Each ``examples/*.py`` says what to install in its docstring (``Needs:   pip install 'driftwatch-agents[dspy]'``)
and runs as its ``Run it:`` line shows, with the defaults, in an empty working directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.minimums import lowest_run

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(lowest_run(), reason="its venvs install constraints.txt, the newest versions, "
                                                      "whatever runs it: the main run covers it")]

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- runnable:(?P<spec>.*)-->\s*$")
EXTRAS = re.compile(r"^extras=(?P<extras>[a-z0-9_,-]*)$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the marker, 1-based
    extras: str  # "" (base install), "dspy", "dspy,langgraph" ...
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}[{self.extras or 'base'}]"


def parse(page: Path) -> list[Block]:
    """The marked blocks of a page (a marker not followed by a python fence, or a bad spec, is an error)."""
    lines = page.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            continue
        where = f"{page.relative_to(ROOT)}:{i + 1}"
        if i + 1 >= len(lines) or lines[i + 1].strip() != "```python":
            raise ValueError(f"{where}: a runnable marker must be followed by a ```python fence")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"{where}: unclosed code block")
        code = "\n".join(lines[i + 2:end]) + "\n"
        for part in m.group("spec").split("|"):
            spec = EXTRAS.match(part.strip())
            if spec is None:
                raise ValueError(f"{where}: expected 'extras=a,b' (or 'extras=' for none), got {part.strip()!r}")
            extras = ",".join(sorted(filter(None, spec.group("extras").split(","))))
            out.append(Block(str(page.relative_to(ROOT)), i + 1, extras, code))
    return out


BLOCKS = [b for page in PAGES for b in parse(page)]

EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
NEEDS = re.compile(r"^Needs: +pip install (?:'driftwatch-agents\[(?P<extras>[a-z0-9_,-]+)\]'|driftwatch-agents)$", re.M)


def example_block(path: Path) -> Block:
    """An example as a block: its documented extras, its code (run as a file, so ``__file__`` is its own)."""
    m = NEEDS.search(path.read_text())
    if m is None:
        raise ValueError(f"{path.relative_to(ROOT)}: its docstring must say what to install "
                         "(Needs:   pip install 'driftwatch-agents[extra]')")
    extras = ",".join(sorted(filter(None, (m.group("extras") or "").split(","))))
    return Block(str(path.relative_to(ROOT)), 1, extras, "")

#: blocks that call MIPROv2 and are known to fail today, by (page, extras) -> reason
KNOWN_FAILURES = {
    ("README.md", "dspy"): "issue 12 item 3: MIPROv2 needs optuna, which the dspy extra does not install",
    ("README.md", "all"): "issue 12 item 3: MIPROv2 needs optuna, which the all extra does not install",
    ("examples/dspy_mipro.py", "dspy"): "issue 12 item 3: MIPROv2 needs optuna, which the dspy extra does not "
                                        "install",
}


def _params() -> list[object]:
    out = []
    for b in BLOCKS:
        reason = KNOWN_FAILURES.get((b.page, b.extras)) if "MIPROv2" in b.code else None
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(b, id=b.id, marks=marks))
    return out


def _cache_root() -> Path:
    return Path(os.environ.get("DRIFTWATCH_DOC_VENVS") or Path(tempfile.gettempdir()) / "driftwatch-doc-venvs")


def venv_for(extras: str) -> Path:
    """A venv with this checkout installed (editable) with ``extras``, built on first use and then reused."""
    key = hashlib.sha256()
    for part in (str(ROOT), extras, sys.version, (ROOT / "setup.cfg").read_text(),
                 (ROOT / "constraints.txt").read_text()):
        key.update(part.encode())
    target = _cache_root() / f"{extras.replace(',', '+') or 'base'}-{key.hexdigest()[:12]}"
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(building)], check=True, timeout=300)
    spec = f"{ROOT}[{extras}]" if extras else str(ROOT)
    pip = [str(building / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    proc = subprocess.run([*pip, "-c", str(ROOT / "constraints.txt"), "-e", spec],
                          capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        raise RuntimeError(f"pip install -e '{spec}' failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    (building / ".complete").write_text(extras + "\n")
    try:
        building.rename(target)
    except OSError:  # another process built it meanwhile: use theirs
        shutil.rmtree(building, ignore_errors=True)
    return target  # a venv's scripts name the path it was built at; `bin/python` and `python -m` do not care


def test_the_readme_marks_its_examples_runnable() -> None:
    """The quickstart, the MIPROv2 example and the LangGraph / middleware example are marked (positive control
    for the parametrized test: a page whose markers are lost would otherwise run nothing)."""
    readme = [b for b in BLOCKS if b.page == "README.md"]
    assert any("driftwatch.track(" in b.code and b.extras == "" for b in readme)
    assert {b.extras for b in readme if "MIPROv2" in b.code} == {"dspy", "all"}
    assert any("DriftwatchMiddleware(" in b.code and "StateGraph" in b.code and b.extras == "langgraph"
               for b in readme)


def _run(venv: Path, script: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTWATCH_", "OTEL_", "PYTHON"))}
    return subprocess.run([str(venv / "bin" / "python"), str(script)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("block", _params())
def test_runnable_block_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(block.code)
    proc = _run(venv_for(block.extras), script, tmp_path)
    assert proc.returncode == 0, f"{block.id} exited {proc.returncode}:\n{proc.stderr[-3000:]}"


def _example_params() -> list[object]:
    out = []
    for path in EXAMPLES:
        block = example_block(path)
        reason = KNOWN_FAILURES.get((block.page, block.extras))
        out.append(pytest.param(path, id=block.id, marks=[pytest.mark.xfail(strict=True, reason=reason)]
                                if reason else []))
    return out


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", _example_params())
def test_example_runs_with_the_extras_it_names(path: Path, tmp_path: Path) -> None:
    block = example_block(path)
    proc = _run(venv_for(block.extras), path, tmp_path)
    assert proc.returncode == 0, f"{block.id} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
