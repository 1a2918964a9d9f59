"""The tests' own layout (docs/architecture.md, "Where new code goes"): folders mirror the package, shared
helpers live in ``tests/helpers/``, and no test imports from a ``conftest.py`` or from another test file."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "driftwatch"
#: folders that are not a module of the package, each for a reason
NOT_A_MODULE = {
    "helpers": "what tests share: servers, test programs and graphs, scripts subprocess tests run",
    "system": "end-to-end tests across processes and servers",
    "realworld": "programs we did not write, watched as they are",
    "faults": "fault injection across the package",
    "docs": "docs/ and packaging",
    "examples": "examples/, each run as documented",
    "grafana": "the monitoring assets in grafana/ and integrations/",
}


def _modules() -> set[str]:
    """The package's top-level modules and subpackages, by name."""
    return {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}


def _test_sources() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def _imported(tree: ast.Module) -> list[str]:
    """Every module name an import statement in ``tree`` names (``from a import b`` gives ``a`` and ``a.b``)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return names


def _bad_import(name: str) -> bool:
    """A conftest or test module of this suite: under ``tests.``, or a bare sibling (``from test_x import``)."""
    parts = name.split(".")
    return (parts[0] == "tests" or len(parts) == 1) and (parts[-1] == "conftest" or parts[-1].startswith("test_"))


def test_the_check_catches_imports_from_conftest_and_test_files() -> None:
    """Control: the import check flags both kinds, in every import form, and passes helpers."""
    code = ("from tests.conftest import free_port\nimport tests.report.test_report_browser\n"
            "from tests.system import conftest\nfrom test_report import PROMPTS\n"
            "from tests.helpers.servers import free_port\nfrom driftwatch.testing import test_mode\n")
    flagged = [n for n in _imported(ast.parse(code)) if _bad_import(n)]
    assert flagged == ["tests.conftest", "tests.report.test_report_browser", "tests.system.conftest",
                       "test_report"]


def test_no_test_imports_from_conftest_or_another_test_file() -> None:
    """Helpers come from tests/helpers/; fixtures reach tests through pytest, never through an import."""
    bad = [f"{p.relative_to(TESTS)}: {name}" for p in _test_sources()
           for name in _imported(ast.parse(p.read_text(), str(p))) if _bad_import(name)]
    assert bad == []


def test_test_folders_mirror_the_package() -> None:
    """Each folder under tests/ is named for a module of the package or is one of a short list (no audiences)."""
    modules = _modules()
    assert {"cli", "ledger", "drift", "integrations", "runtime", "report"} <= modules  # the check sees the package
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert sorted(folders - modules - set(NOT_A_MODULE)) == []


def test_shared_modules_live_in_helpers() -> None:
    """A module under tests/ that is neither a test file nor a conftest.py is a helper: it lives in tests/helpers/
    (tests/realworld/ keeps the programs it watches and their harness beside them)."""
    stray = [str(p.relative_to(TESTS)) for p in _test_sources()
             if not p.name.startswith("test_") and p.name not in ("conftest.py", "__init__.py")
             and p.relative_to(TESTS).parts[0] not in ("helpers", "realworld")]
    assert stray == []
