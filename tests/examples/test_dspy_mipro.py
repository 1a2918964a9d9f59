"""examples/dspy_mipro.py runs as documented: a real MIPROv2 run on a watched program, recorded with its changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from driftwatch.ledger import open_ledger

ROOT = Path(__file__).resolve().parents[2]


def test_mipro_example_records_the_run_its_candidates_and_the_changes(tmp_path: Path) -> None:
    """Exit 0; one MIPROv2 run with its scored candidates; each change it made is linked to it; calls recorded."""
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "dspy_mipro.py"), "--calls", "100",
                           "--ledger", "m.db", "--report", "m.html"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    led = open_ledger(str(tmp_path / "m.db"), readonly=True)
    (run,) = led.runs(agent="math-tutor")
    assert (run.optimizer, run.outcome) == ("MIPROv2", "ok")
    scores = [c["score"] for c in led.candidates(run.id)]
    assert len(scores) == run.candidates >= 3 and run.best_score == max(s for s in scores if s is not None)
    changes = led.changes(agent="math-tutor")
    assert changes, "MIPROv2 changed nothing"
    assert all(c.source == "MIPROv2" and c.run_id == run.id and c.kind in ("instructions", "demos")
               for c in changes)
    assert sum(w.calls for w in led.windows(agent="math-tutor")) == 200  # trials inside the compile do not count
    assert f"optimizer run MIPROv2: ok, {run.candidates} candidates scored" in proc.stdout
    assert proc.stdout.count("by MIPROv2") == len(changes) and "accuracy:" in proc.stdout
    assert "Average Metric" not in proc.stdout + proc.stderr  # MIPROv2's own output is kept out
    assert (tmp_path / "m.html").read_text().startswith("<!DOCTYPE html>")


def test_mipro_example_rejects_bad_arguments(tmp_path: Path) -> None:
    """--calls 0 is refused with a one-line usage error naming the argument."""
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "dspy_mipro.py"), "--calls", "0"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--calls 0: expected at least 1" in proc.stderr
