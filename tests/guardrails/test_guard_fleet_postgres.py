"""Approval across processes: two agent processes on one PostgreSQL ledger hold the same ``tools`` change (the model
keeps receiving the old tool set); `driftwatch approve` from a third process switches both within the poll interval."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from driftwatch.ledger import open_ledger
from tests.helpers.processes import GUARD_FLEET_AGENT

pytestmark = pytest.mark.slow

POLL_S = 0.5


class Worker:
    def __init__(self, flag: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(GUARD_FLEET_AGENT), str(flag)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]  # a pipe
            self.lines.put(line.strip())

    def expect(self, prefix: str, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {prefix} line in {timeout}s; seen {self.seen}; stderr "
                                     f"{self.proc.stderr.read() if self.proc.poll() is not None else ''}") from None
            self.seen.append(line)
            if line.startswith(prefix + " "):
                return line.split()[1:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]  # a pipe
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()  # type: ignore[union-attr]  # a pipe
        self.proc.stderr.close()  # type: ignore[union-attr]  # a pipe


def test_approve_from_a_third_process_switches_both_agents(pg_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DRIFTWATCH_LEDGER": pg_url, "DRIFTWATCH_DRIFT_POLL_S": str(POLL_S)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    flag = tmp_path / "refund-enabled"
    workers = [Worker(flag, env) for _ in range(2)]
    try:
        assert [w.expect("TOOLS")[0] for w in workers] == ["search", "search"]
        flag.touch()  # each agent now adds the refund tool to its own requests
        held = [w.expect("HELD")[0] for w in workers]
        time.sleep(3 * POLL_S)  # the processes keep serving meanwhile
        assert all(not [line for line in w.seen if line.startswith("TOOLS refund")] for w in workers)
        while any(not w.lines.empty() for w in workers):  # nothing else was printed: still the old tool set
            for w in workers:
                while not w.lines.empty():
                    line = w.lines.get()
                    assert not line.startswith("TOOLS"), line
        ledger = open_ledger(pg_url, readonly=True)
        rows = ledger.changes(agent="fleet-bot", status="held")
        assert sorted(c.id for c in rows) == sorted(held) and {c.kind for c in rows} == {"tools"}
        assert len({c.after_id for c in rows}) == 1  # the same transition, seen by each process

        approve = subprocess.run([sys.executable, "-m", "driftwatch", "approve", held[0][:10], "--ledger", pg_url],
                                 capture_output=True, text=True, timeout=60, env=env)
        approved_at = time.time()
        assert approve.returncode == 0, approve.stderr
        switched = [w.expect("TOOLS", timeout=30) for w in workers]
        assert [s[0] for s in switched] == ["refund,search", "refund,search"]
        delays = [float(s[1]) - approved_at for s in switched]
        print(f"\n[guard] approve → both processes serve the approved tools after {max(delays):.2f} s "
              f"(poll interval {POLL_S} s)")
        assert max(delays) <= POLL_S + 1.0  # the poll interval, a call period, and a loaded machine's slack
        assert {c.status for c in ledger.changes(agent="fleet-bot") if c.kind == "tools"} == {"approved"}
        assert ledger.head("fleet-bot", "model.tools") == rows[0].after_id
        assert [a.action for a in ledger.guard_actions(agent="fleet-bot")] == ["held", "held", "approved"]
    finally:
        for w in workers:
            w.stop()
