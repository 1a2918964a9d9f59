"""The CLI's entry points list every command, and its modules import only what they share."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from driftwatch.cli import build_parser

COMMANDS = {"history", "show", "report", "accept", "reset", "freeze", "unfreeze", "rollback", "approve", "reject",
            "guard", "demo", "stack"}
CLI_DIR = Path(__file__).resolve().parents[2] / "driftwatch" / "cli"
_SCRIPT = Path(sys.executable).with_name("driftwatch")  # the console script setup.cfg installs


def _commands(parser: object) -> set[str]:
    sub = next(a for a in parser._actions if a.dest == "command")  # type: ignore[attr-defined]  # argparse's subparsers action
    return set(sub.choices)


def test_the_parser_has_every_command() -> None:
    """build_parser() registers each command group: history, show, report, accept, reset, the guard's, demo, stack."""
    assert _commands(build_parser()) == COMMANDS


@pytest.mark.parametrize("entry", ["python -m driftwatch", "python -m driftwatch.cli", "driftwatch"])
def test_each_entry_point_lists_every_command(entry: str) -> None:
    """`python -m driftwatch --help`, `python -m driftwatch.cli --help` and the console script name every command."""
    if entry == "driftwatch":
        if not _SCRIPT.exists():
            pytest.skip("the console script is not installed next to this interpreter")
        argv = [str(_SCRIPT)]
    else:
        argv = [sys.executable, "-m", entry.split()[-1]]
    proc = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    listed = set(re.findall(r"^ {4}([a-z]+)\b", proc.stdout, re.M))  # a command's line, not a wrapped help line
    assert listed == COMMANDS


def _imports(source: str) -> list[tuple[str, str]]:
    """(module, name) of each ``from module import name`` in ``source``; ``import module`` gives (module, "")."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            out += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(alias.name, "") for alias in node.names]
    return out


def _violations(source: str) -> list[str]:
    """Imports a command module must not make: from the package init, private names, private modules of
    other packages (``driftwatch.cli._common`` is the package's own)."""
    bad = []
    for module, name in _imports(source):
        from_init = module == "driftwatch.cli" or (module == "driftwatch" and name == "cli")
        private_name = name.startswith("_")
        private_module = module.startswith("driftwatch.") and module != "driftwatch.cli._common" \
            and any(part.startswith("_") for part in module.split("."))
        if from_init or private_name or private_module:
            bad.append(f"from {module} import {name}")
    return bad


def test_the_checker_catches_imports_back_into_the_package() -> None:
    """Positive control: the rule below flags imports from the package init, of private names and of another
    package's private modules, and passes the shared module and public names."""
    assert _violations("from driftwatch.cli import CLIError\nfrom driftwatch.cli import _common\n"
                       "from driftwatch.report import _fmt_time\nfrom driftwatch.cli.history import _entries\n"
                       "from driftwatch.integrations._common import jsonable\n") == [
        "from driftwatch.cli import CLIError", "from driftwatch.cli import _common",
        "from driftwatch.report import _fmt_time", "from driftwatch.cli.history import _entries",
        "from driftwatch.integrations._common import jsonable"]
    assert _violations("from driftwatch.cli._common import CLIError\nfrom driftwatch.report import build_report\n") \
        == []


@pytest.mark.parametrize("path", sorted(p for p in CLI_DIR.glob("*.py") if p.name not in ("__init__.py",
                                                                                          "__main__.py")),
                         ids=lambda p: p.name)
def test_command_modules_import_nothing_back_from_the_package(path: Path) -> None:
    """No command module imports from driftwatch.cli's __init__, nor another module's private names."""
    assert _violations(path.read_text()) == []
