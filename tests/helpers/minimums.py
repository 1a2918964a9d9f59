"""The minimum versions setup.cfg allows: each ``>=`` bound of ``install_requires`` and of the user-facing extras.

``constraints-lowest.txt`` pins exactly these (``tests/core/test_packaging.py`` checks it) so that
``.venv-lowest`` runs the tests on them. Run as a script, it prints them as ``name==version`` lines:
``make constraints-lowest`` installs those and freezes the result into ``constraints-lowest.txt``.
Standard library only (the Makefile runs it with the system Python).
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: extras that are tools of this repository, not something a user installs for a feature
TOOL_EXTRAS = ("test", "dev")
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(.*)$")


def normalize(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


def requirement_sets(root: Path = ROOT) -> dict[str, list[str]]:
    """``install_requires`` and each extra of setup.cfg, as lists of requirement strings."""
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    sets = {"install_requires": _lines(cfg["options"]["install_requires"])}
    sets.update({name: _lines(value) for name, value in cfg["options.extras_require"].items()})
    return sets


def minimum(requirement: str) -> tuple[str, str] | None:
    """``(normalized name, version)`` of a requirement's ``>=`` bound, or ``None`` when it has none."""
    m = _REQUIREMENT.match(requirement)
    if m is None:
        return None
    bound = re.search(r">=\s*([\w.!+]+)", m.group(2))
    return (normalize(m.group(1)), bound.group(1)) if bound else None


def minimums(root: Path = ROOT) -> dict[str, str]:
    """Each package's minimum over ``install_requires`` and the user-facing extras (a ValueError if two differ)."""
    found: dict[str, str] = {}
    for name, requirements in requirement_sets(root).items():
        if name in TOOL_EXTRAS:
            continue
        for requirement in requirements:
            pair = minimum(requirement)
            if pair is None:
                continue
            package, version = pair
            if found.setdefault(package, version) != version:
                raise ValueError(f"setup.cfg: {package} has two minimums ({found[package]} and {version})")
    return found


def lowest_run() -> bool:
    """Whether these tests run in .venv-lowest (``make test-lowest``)."""
    return Path(sys.prefix).name == ".venv-lowest"


if __name__ == "__main__":
    for package, version in sorted(minimums().items()):
        print(f"{package}=={version}")
