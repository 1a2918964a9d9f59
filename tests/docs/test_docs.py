"""docs/: generated pages are up to date, every setting and metric is documented, links and names are real."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from driftwatch.cli import build_parser
from driftwatch.config import _ENV, ENV_PREFIX, Settings
from driftwatch.metrics import CATALOGUE

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(DOCS.glob("*.md"))


def test_generated_pages_are_up_to_date() -> None:
    """`python docs/build.py --check` passes: metrics.md and the settings table match the code."""
    proc = subprocess.run([sys.executable, str(DOCS / "build.py"), "--check"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_every_setting_and_variable_is_documented() -> None:
    """Each Settings field has a row with a description, and each DRIFTWATCH_* variable is named in it."""
    table = (DOCS / "configuration.md").read_text()
    for f in dataclasses.fields(Settings):
        row = re.search(rf"^\| `{f.name}` \|.*\| ([^|]+) \|$", table, re.M)
        assert row and row.group(1).strip(), f.name
        if f.name in _ENV:
            assert f"`{ENV_PREFIX}{f.name.upper()}`" in row.group(0)


def test_every_metric_is_documented_with_its_labels() -> None:
    """metrics.md has one row per catalogue metric, with exactly its labels."""
    page = (DOCS / "metrics.md").read_text()
    for s in CATALOGUE:
        row = re.search(rf"^\| `{s.name}` \| {s.type} \| ([^|]+) \|", page, re.M)
        assert row, s.name
        assert re.findall(r"`(\w+)`", row.group(1)) == list(s.labels)


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page: Path) -> None:
    """Every relative link points at an existing page, and every #anchor at a heading of that page."""
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        dest = DOCS / path if path else page
        assert dest.exists(), f"{page.name}: {target}"
        if anchor:
            headings = {_slug(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)}
            assert anchor in headings, f"{page.name}: {target}"


def test_commands_and_variables_named_in_the_docs_exist() -> None:
    """Each `driftwatch <command>` and DRIFTWATCH_* variable the hand-written docs mention is real."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")  # argparse's subparsers action
    commands = set(sub.choices)
    variables = {ENV_PREFIX + name.upper() for name in _ENV}
    text = "\n".join(p.read_text() for p in PAGES if p.name != "metrics.md")
    # the generated settings table quotes config.py's comments: those are checked where they are written
    text = re.sub(r"<!-- settings:begin -->.*?<!-- settings:end -->", "", text, flags=re.S)
    code = "\n".join(re.findall(r"```\w*\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text))
    named = set(re.findall(r"^\s*driftwatch ([a-z]\w*)", code, re.M))
    assert {"history", "show", "report"} <= named
    assert named <= commands
    assert set(re.findall(r"\bDRIFTWATCH_[A-Z_]+\b", text)) - {"DRIFTWATCH_"} <= variables
