"""examples/langgraph_reflect_agent.py runs as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from driftwatch.ledger import open_ledger

ROOT = Path(__file__).resolve().parents[2]


def test_reflect_agent_example_records_each_rewrite_by_the_node(tmp_path: Path) -> None:
    """The example exits 0; its three rewrites are system_prompt changes by node `reflect`, printed in the history."""
    ledger = tmp_path / "lg.db"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "langgraph_reflect_agent.py"), "--turns", "30",
                           "--ledger", str(ledger)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    led = open_ledger(str(ledger), readonly=True)
    changes = led.changes(agent="support-bot")
    assert [(c.component, c.kind, c.source, c.node) for c in changes] == [
        ("agent.system_prompt", "system_prompt", "agent", "reflect")] * 3
    assert led.head("support-bot", "graph") is not None
    assert proc.stdout.count("change system_prompt") == 3
