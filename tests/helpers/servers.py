"""Loopback servers for tests: a free port, and the webhook receiver that stands in for PagerDuty/Slack/a bot."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from driftwatch.stack import free_port

__all__ = ["WebhookReceiver", "free_port", "require_servers"]


def require_servers() -> None:
    """Fail (not skip) when Prometheus or Alertmanager is missing: `make test` installs them."""
    import pytest

    from driftwatch.stack import find_binary

    for names in (("prometheus",), ("prometheus-alertmanager", "alertmanager")):
        try:
            find_binary(names)
        except Exception as exc:  # a clear failure naming the package
            pytest.fail(f"{exc}")


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
