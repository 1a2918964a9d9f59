"""Fixtures for the end-to-end tests: a webhook receiver (what PagerDuty/Slack/a bot would be) and the
watched agent running in its own process."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

AGENT_SCRIPT = Path(__file__).with_name("agent_process.py")


class WebhookReceiver:
    """A loopback HTTP server recording each Alertmanager webhook POST as ``(path, payload, arrival time)``."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any], float]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.posts.append((self.path, json.loads(body), time.time()))
                    receiver._cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def alerts(self, path: str | None = None) -> list[tuple[str, dict[str, Any], float]]:
        """Every alert received as ``(path, alert, arrival)``, optionally only those posted to ``path``."""
        with self._cond:
            return [(p, a, t) for p, payload, t in self.posts for a in payload["alerts"]
                    if path is None or p == path]

    def wait_for(self, match: Callable[[str, dict[str, Any]], bool], timeout: float) -> tuple[str, dict, float]:
        """The first received alert ``match(path, alert)`` accepts; ``AssertionError`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for p, payload, t in self.posts:
                    for a in payload["alerts"]:
                        if match(p, a):
                            return p, a, t
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [(p, a["labels"].get("alertname"), a["status"]) for p, pl, _ in self.posts
                           for a in pl["alerts"]]
                    raise AssertionError(f"no matching alert within {timeout}s; received: {got}")
                self._cond.wait(left)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class AgentProcess:
    """``tests/e2e/agent_process.py`` (or ``script``) as a subprocess; its stdout lines are read on a thread."""

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


def require_servers() -> None:
    """Fail (not skip) when Prometheus or Alertmanager is missing: `make test` installs them."""
    from driftwatch.stack import find_binary

    for names in (("prometheus",), ("prometheus-alertmanager", "alertmanager")):
        try:
            find_binary(names)
        except Exception as exc:  # a clear failure naming the package
            pytest.fail(f"{exc}")


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookReceiver]:
    """A webhook receiver on a free loopback port."""
    r = WebhookReceiver()
    yield r
    r.close()
