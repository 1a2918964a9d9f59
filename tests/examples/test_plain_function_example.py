"""examples/plain_function.py runs as documented: calls, the prompt rewrite, /metrics, history and a report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from driftwatch.ledger import open_ledger

ROOT = Path(__file__).resolve().parents[2]


def test_plain_function_example(tmp_path: Path) -> None:
    """The example exits 0, records one baseline and one change, serves /metrics, and writes the report."""
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "plain_function.py"), "--calls", "300",
                           "--ledger", "plain.db", "--report", "plain.html"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    led = open_ledger(str(tmp_path / "plain.db"), readonly=True)
    (change,) = led.changes()
    assert (change.agent, change.component, change.kind, change.source) == \
        ("helpdesk", "system_prompt", "system_prompt", "agent")
    assert len(led.changes(baselines=True)) == 2
    assert sum(w.calls for w in led.windows(agent="helpdesk")) == 300
    assert 'driftwatch_calls_total{agent="helpdesk",status="ok"} 300.0' in proc.stdout
    assert proc.stdout.count("change system_prompt") == 1
    page = (tmp_path / "plain.html").read_text()
    assert f'id="c-{change.id[:12]}"' in page and "score correct" in page


def test_plain_function_example_rejects_bad_arguments(tmp_path: Path) -> None:
    """--calls below 2 is refused with a one-line usage error naming the argument."""
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "plain_function.py"), "--calls", "1"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--calls 1: expected at least 2" in proc.stderr
