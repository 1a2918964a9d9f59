"""The scripts subprocess tests run (each in this folder, run by path), and a driver for the on-call agent."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: the watched, self-tuning agent the end-to-end on-call test scrapes
AGENT_SCRIPT = HERE / "agent_process.py"
#: one agent process of the PostgreSQL fleet test
FLEET_AGENT = HERE / "fleet_agent.py"
#: one replica of the drift replica test
REPLICA_WORKER = HERE / "drift_replica_worker.py"
#: the self-tuning DSPy program the end-to-end guard test rolls back through the alert path
GUARD_AGENT_SCRIPT = HERE / "guard_agent_process.py"
#: one agent process of the approval fleet test
GUARD_FLEET_AGENT = HERE / "guard_fleet_agent.py"


class AgentProcess:
    """``tests/helpers/agent_process.py`` (or ``script``) as a subprocess; its stdout lines are read on a thread."""

    def __init__(self, ledger: Path, *args: str, script: Path = AGENT_SCRIPT) -> None:
        self.stderr_path = ledger.parent / "agent.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(script), "--ledger", str(ledger), *args],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         text=True, cwd=ledger.parent)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float) -> str:
        """The next stdout line starting with ``prefix`` (other lines are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.0))
            except queue.Empty:
                status = self.proc.poll()
                raise AssertionError(f"agent process printed no {prefix!r} line in {timeout}s (exit status "
                                     f"{status}; lines so far: {self.seen}; stderr: {self.stderr()})") from None
            self.seen.append(line)
            if line.startswith(prefix + " "):
                return line[len(prefix) + 1:]

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> int:
        """Close stdin (the process finishes its call and exits), then wait; kill if it hangs."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-2000:]
