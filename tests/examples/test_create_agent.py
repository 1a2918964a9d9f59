"""examples/create_agent_middleware.py runs as documented: DriftwatchMiddleware sees what other middleware set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from driftwatch.ledger import open_ledger

ROOT = Path(__file__).resolve().parents[2]
TUNED = "You are the helpdesk of Acme Cloud. Always call check_status first, then reply to the customer."


def test_create_agent_example_records_the_prompt_and_tool_changes_and_the_tool_mix(tmp_path: Path) -> None:
    """Exit 0; the dynamic prompt rewrite and the pruned tool set are changes; the turns' tool mix follows them."""
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "create_agent_middleware.py"), "--turns", "60",
                           "--ledger", "a.db", "--report", "a.html"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    led = open_ledger(str(tmp_path / "a.db"), readonly=True)
    prompt, tools = led.changes(agent="helpdesk-agent")
    assert (prompt.component, prompt.kind, tools.component, tools.kind) == \
        ("model.system_prompt", "system_prompt", "model.tools", "tools")
    assert led.revision(prompt.after_id).state == TUNED
    assert sorted(t["name"] for t in led.revision(tools.after_id).state) == ["check_status", "search_docs"]
    windows = led.windows(agent="helpdesk-agent")
    assert sum(w.calls for w in windows) == 60
    before = [w for w in windows if w.end <= prompt.timestamp]
    after = [w for w in windows if w.start >= prompt.timestamp]
    used_before = {k: sum(w.tools.get(k, 0) for w in before) for k in ("check_status", "open_ticket")}
    used_after = {k: sum(w.tools.get(k, 0) for w in after) for k in ("check_status", "open_ticket")}
    assert used_before["open_ticket"] > 0 and used_after["open_ticket"] == 0
    assert used_after["check_status"] > 2 * used_before["check_status"]  # the prompt names the tool
    assert "tool calls after the rewrite:" in proc.stdout and proc.stdout.count("change ") == 2
    assert (tmp_path / "a.html").read_text().startswith("<!DOCTYPE html>")


def test_create_agent_example_rejects_bad_arguments(tmp_path: Path) -> None:
    """--turns 1 is refused with a one-line usage error naming the argument."""
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "create_agent_middleware.py"), "--turns", "1"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--turns 1: expected at least 2" in proc.stderr
