"""examples/dspy_watch.py runs offline and leaves the run, the tuning, the edit and the restore in its ledger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from driftwatch.ledger import open_ledger

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dspy_watch.py"


def test_example_records_a_run_an_edit_and_a_restore(tmp_path: Path) -> None:
    """The example's ledger holds one BootstrapFewShot run, its two changes, the runtime edit and its rollback."""
    ledger_path = tmp_path / "demo.db"
    out = subprocess.run([sys.executable, str(EXAMPLE), "--ledger", str(ledger_path)], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path, check=True)
    ledger = open_ledger(str(ledger_path), readonly=True)
    try:
        (run,) = ledger.runs(agent="qa")
        assert (run.optimizer, run.outcome) == ("BootstrapFewShot", "ok")
        changes = ledger.changes(agent="qa")
        assert [(c.component, c.kind, c.source) for c in changes] == [
            ("answer", "demos", "BootstrapFewShot"), ("gen_query", "demos", "BootstrapFewShot"),
            ("answer", "instructions", "runtime"), ("answer", "instructions", "manual")]
        edit, rollback = changes[2], changes[3]
        assert (rollback.before_id, rollback.after_id) == (edit.after_id, edit.before_id)
        assert all(c.run_id == run.id for c in changes[:2])
    finally:
        ledger.close()
    assert f"run     {run.id[:12]}  BootstrapFewShot" in out.stdout
