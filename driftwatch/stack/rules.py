"""The shipped recording and alert rules, found in the source tree or the installed data files, and
rewritten to run at test or demo speed (every group evaluated each second, every alert's ``for: 0s``)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from driftwatch.stack.servers import StackError

__all__ = ["RULE_NAMES", "check_rules", "default_rules_dir", "fast_rules", "rule_files"]

#: the rule files ``grafana/alerts`` ships
RULE_NAMES = ("driftwatch_rules.yaml", "driftwatch_alerts.yaml")


def default_rules_dir() -> Path:
    """``grafana/alerts`` of the source tree (a checkout or an editable install), else the copy a wheel
    installs under ``<prefix>/share/driftwatch/alerts`` (setup.cfg ``data_files``)."""
    source = Path(__file__).resolve().parents[2] / "grafana" / "alerts"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "driftwatch" / "alerts"


def check_rules(rules_dir: Path) -> list[Path]:
    """The shipped rule files in ``rules_dir`` (a one-line :class:`StackError` when one is missing)."""
    paths = [rules_dir / name for name in RULE_NAMES]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise StackError(f"--rules {rules_dir}: no {missing[0].name} there (a source checkout has grafana/alerts/); "
                         "pass --rules DIR")
    return paths


def rule_files(rules_dir: Path, dest: Path, *, shipped_timing: bool) -> list[Path]:
    """The shipped rule files copied to ``dest``: evaluated every 1 s with ``for: 0s`` (:func:`fast_rules`)
    unless ``shipped_timing``."""
    paths = check_rules(rules_dir)
    dest.mkdir(parents=True, exist_ok=True)
    if not shipped_timing:
        return fast_rules(paths, dest, interval="1s", for_="0s")
    return [Path(shutil.copy(path, dest / path.name)) for path in paths]


def fast_rules(rule_files: Sequence[str | Path], dest: str | Path, *, interval: str = "1s",
               for_: str = "0s") -> list[Path]:
    """Copies of Prometheus rule files with every group evaluated each ``interval`` and every alert's
    ``for:`` set to ``for_`` (nothing else changed): the shipped rules, at test or demo speed."""
    yaml = _yaml()
    out = []
    for src in map(Path, rule_files):
        doc = yaml.safe_load(src.read_text())
        for group in doc.get("groups", []):
            group["interval"] = interval
            for rule in group.get("rules", []):
                if "alert" in rule:
                    rule["for"] = for_
        path = Path(dest) / src.name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        out.append(path)
    return out


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise StackError("driftwatch stack needs PyYAML: pip install pyyaml") from None
    return yaml
