"""The layout's one-way doors (docs/architecture.md), checked on the source with ``ast``.

Every module of the package has a room; a room imports only from the rooms it may import from (function-level
imports and ``TYPE_CHECKING`` blocks included); private names stay in their package; framework imports stay in
the integrations and the demo; only the sinks and the ledger talk to Prometheus, OpenTelemetry and databases.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "driftwatch"
DOC = ROOT / "docs" / "architecture.md"

#: each room's modules, as paths under driftwatch/ (a trailing "/" is a package; the longest match wins)
ROOMS: dict[str, tuple[str, ...]] = {
    "apps": ("cli/", "__main__.py", "demo/", "stack/", "report.py", "scripted.py", "integrations/scripted_dspy.py",
             "integrations/scripted_langchain.py"),
    "hooks": ("__init__.py", "drift/__init__.py", "decorator.py", "integrations/"),
    "runtime": ("runtime.py", "scopes.py", "guard_host.py", "call_batch.py"),
    "core": ("observation.py", "change.py", "revision.py", "alarm.py", "tracker.py", "signals.py", "options.py",
             "windows.py", "config.py", "redaction.py", "limits.py", "files.py", "ledger/", "drift/", "guardrails/"),
    "sinks": ("metrics.py", "promql.py", "tracing.py", "deferred_span.py", "audit.py", "exposition.py"),
    "support": ("_version.py", "prometheus_api.py"),
    "testing": ("testing.py",),
}
#: the rooms each room may import from (its own included)
MAY_IMPORT: dict[str, frozenset[str]] = {
    "apps": frozenset(ROOMS),
    "hooks": frozenset({"hooks", "runtime", "core", "sinks", "support"}),
    "runtime": frozenset({"runtime", "core", "sinks", "support"}),
    "sinks": frozenset({"sinks", "core", "support"}),
    "core": frozenset({"core", "support"}),
    "support": frozenset({"core", "support"}),
    "testing": frozenset({"testing", "runtime", "core", "sinks", "support"}),
}
#: top-level packages of the frameworks we integrate: imported only in these places
FRAMEWORKS = re.compile(r"^(dspy|gepa|langgraph|langchain|langchain_[a-z_]+|langmem)$")
FRAMEWORK_ROOMS = ("integrations/", "demo/")
#: libraries only their owners import (outside the apps and driftwatch.testing)
OWNERS: dict[str, tuple[str, ...]] = {
    "prometheus_client": ("metrics.py", "exposition.py"),
    "opentelemetry": ("tracing.py", "deferred_span.py"),
    "sqlite3": ("ledger/",),
    "psycopg": ("ledger/",),
}
#: private modules that are fine to import from anywhere (a private module holding one public name)
SHARED_PRIVATE_MODULES = frozenset({"driftwatch._version"})


# -- the source, parsed ---------------------------------------------------------------------------------

def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _match(path: str, prefixes: tuple[str, ...]) -> int:
    """Length of the longest prefix that names ``path`` (0: none)."""
    best = 0
    for p in prefixes:
        if (path == p or (p.endswith("/") and path.startswith(p))) and len(p) > best:
            best = len(p)
    return best


def room_of(path: str) -> str | None:
    scored = [(_match(path, prefixes), room) for room, prefixes in ROOMS.items()]
    length, room = max(scored)
    return room if length else None


def unit_of(path: str) -> str:
    """What may share private names: a subpackage of driftwatch (``integrations/``), or one top-level module."""
    return path.split("/", 1)[0] + "/" if "/" in path else path


def module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["driftwatch", *parts])


def file_of(name: str) -> str | None:
    """The path under driftwatch/ of a dotted driftwatch module name (``None``: not a module)."""
    parts = name.split(".")[1:]
    if not parts:
        return "__init__.py"
    base = PACKAGE.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return rel(base.with_suffix(".py"))
    if (base / "__init__.py").is_file():
        return rel(base / "__init__.py")
    return None


@cache
def tree(path: str) -> ast.Module:
    return ast.parse((PACKAGE / path).read_text(), filename=path)


def imports(path: str, source: ast.Module) -> Iterator[tuple[str, str | None]]:
    """(module, imported name or None) of every import in the file, at any depth."""
    package = module_name(path) if path.endswith("__init__.py") else module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(source):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                yield module, alias.name


def targets(module: str, name: str | None) -> list[str]:
    """The driftwatch files an import reaches: the module, or the submodule it names."""
    if name is not None and file_of(f"{module}.{name}") is not None:
        return [file_of(f"{module}.{name}")]  # type: ignore[list-item]  # checked just above
    found = file_of(module)
    return [found] if found is not None else []


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@cache
def private_definitions() -> dict[str, frozenset[str]]:
    """Per unit, the private names its modules define (functions, classes, attributes, slots, assignments)."""
    out: dict[str, set[str]] = {}
    for p in modules():
        path = rel(p)
        names = out.setdefault(unit_of(path), set())
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__"
                                                      for t in node.targets):
                names.update(c.value for c in ast.walk(node.value)
                             if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return {unit: frozenset(n for n in names if _private(n)) for unit, names in out.items()}


# -- the checks -----------------------------------------------------------------------------------------

def room_violations(path: str, source: ast.Module) -> Iterator[str]:
    room = room_of(path)
    if room is None:  # reported by test_every_module_has_a_room
        return
    for module, name in imports(path, source):
        for target in targets(module, name) if module.split(".")[0] == "driftwatch" else []:
            other = room_of(target)
            if other is not None and other not in MAY_IMPORT[room]:
                yield f"{path} imports {module_name(target)} ({room} may not import {other})"


def private_violations(path: str, source: ast.Module) -> Iterator[str]:
    unit = unit_of(path)
    for module, name in imports(path, source):
        if module.split(".")[0] != "driftwatch":
            continue
        for target in targets(module, name):
            if unit_of(target) == unit or module_name(target) in SHARED_PRIVATE_MODULES:
                continue
            if any(_private(part) for part in module_name(target).split(".")):
                yield f"{path} imports private module {module_name(target)}"
            elif name is not None and _private(name) and module_name(target) == module:
                yield f"{path} imports private name {module}.{name}"
    own = private_definitions().get(unit, frozenset())
    elsewhere = {n for u, names in private_definitions().items() if u != unit for n in names}
    for node in ast.walk(source):
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own \
                and node.attr in elsewhere:
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            yield f"{path} uses private attribute {ast.unparse(node)}"


def framework_violations(path: str, source: ast.Module) -> Iterator[str]:
    if _match(path, FRAMEWORK_ROOMS):
        return
    for module, _name in imports(path, source):
        top = module.split(".")[0]
        if FRAMEWORKS.match(top):
            yield f"{path} imports {top} (frameworks only in integrations/ and demo/)"


def owner_violations(path: str, source: ast.Module) -> Iterator[str]:
    if room_of(path) in ("apps", "testing"):
        return
    for module, _name in imports(path, source):
        top = module.split(".")[0]
        owners = OWNERS.get(top)
        if owners is not None and not _match(path, owners):
            yield f"{path} imports {top} (only {', '.join(owners)} may)"


CHECKS = (room_violations, private_violations, framework_violations, owner_violations)


def violations(path: str, source: ast.Module) -> set[str]:
    return {v for check in CHECKS for v in check(path, source)}


@cache
def all_violations() -> frozenset[str]:
    return frozenset(v for p in modules() for v in violations(rel(p), tree(rel(p))))


# -- tests ----------------------------------------------------------------------------------------------

def test_every_module_has_a_room():
    """A new module is placed in a room (here and in docs/architecture.md) before it can be imported."""
    assert [rel(p) for p in modules() if room_of(rel(p)) is None] == []


def test_imports_follow_the_one_way_doors():
    """No room imports a room it may not; no private names across packages; frameworks and I/O libraries
    only where they belong."""
    assert sorted(all_violations()) == []


def test_the_checks_catch_what_they_claim():
    """Positive control: each check reports a planted violation (so an empty result above means something)."""
    planted = {
        "signals.py": "from driftwatch.runtime import get_runtime\n",
        "tracing.py": "def f(rt):\n    from driftwatch.drift.engine import _EXPORT_S\n    return rt._submit\n",
        "metrics.py": "import dspy\nimport sqlite3\n",
        "tracker.py": "from driftwatch.integrations import adapter_for\nfrom driftwatch.ledger import _sql\n",
    }
    found = {v for path, source in planted.items() for v in violations(path, ast.parse(source))}
    assert found == {
        "signals.py imports driftwatch.runtime (core may not import runtime)",
        "tracing.py imports private name driftwatch.drift.engine._EXPORT_S",
        "tracing.py uses private attribute rt._submit",
        "metrics.py imports dspy (frameworks only in integrations/ and demo/)",
        "metrics.py imports sqlite3 (only ledger/ may)",
        "tracker.py imports driftwatch.integrations (core may not import hooks)",
        "tracker.py imports private module driftwatch.ledger._sql",
    }


def _doc_rooms() -> dict[str, set[str]]:
    rows: dict[str, set[str]] = {}
    in_table = False
    for line in DOC.read_text().splitlines():
        if line.startswith("| room |"):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        if in_table and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = {m.removeprefix("driftwatch/") for m in re.findall(r"`(\w[\w/]*(?:\.py|/))`", cells[1])}
    return rows


def test_the_room_table_matches_docs_architecture():
    """docs/architecture.md lists the same rooms and modules as ROOMS here."""
    assert _doc_rooms() == {room: set(prefixes) for room, prefixes in ROOMS.items()}

