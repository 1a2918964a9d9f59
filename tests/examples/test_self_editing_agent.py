"""examples/self_editing_agent.py (what `make demo` runs until the full demo lands) works as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from driftwatch.ledger import open_ledger

ROOT = Path(__file__).resolve().parents[2]


def test_example_records_rewrites_serves_metrics_and_prints_history(tmp_path) -> None:
    """The example exits 0, leaves a baseline and its rewrites in the ledger, and prints /metrics and history."""
    ledger = tmp_path / "demo.db"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "self_editing_agent.py"), "--calls", "40",
                           "--ledger", str(ledger)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    led = open_ledger(str(ledger), readonly=True)
    changes = led.changes()
    assert len(changes) == 4  # a rewrite every ten calls
    assert {c.kind for c in changes} == {"system_prompt"}
    assert len(led.changes(baselines=True)) == 5
    assert 'driftwatch_changes_total{agent="self-editor",component="system_prompt",kind="system_prompt",' \
           'source="agent"} 4.0' in proc.stdout
    assert proc.stdout.count("change system_prompt") == 4
