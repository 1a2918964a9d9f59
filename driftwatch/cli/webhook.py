"""``driftwatch guard --listen 127.0.0.1:PORT --token-file FILE``: an Alertmanager webhook receiver that applies an
agent's guard policy when its drift alert fires.

    driftwatch guard --listen 127.0.0.1:9095 --token-file /etc/driftwatch/guard-token [--ledger URL]

For each *firing* ``DriftwatchBehaviorDrift`` alert in a POST to ``/alerts`` it reads the policy the agent's
processes published to the ledger (``configure_agent(on_alarm=...)`` or ``DRIFTWATCH_GUARD``) and applies it:
``rollback`` rolls the agent back from its latest alarm on the alert's signal, ``freeze`` freezes it, ``page``
(or no policy) does nothing. It can only queue guard commands for agents with such a policy; repeats are
no-ops. Running processes act within ``DRIFTWATCH_DRIFT_POLL_S``.

Safety: it binds to loopback unless ``--allow-remote``; each request must carry ``Authorization: Bearer
<token>`` (the token is read from a file, compared in constant time); bodies are at most 1 MiB. Answers:
200 with what was done (JSON), 401 bad or missing token, 404 another path, 405 another method, 411 no
Content-Length, 413 too large, 400 malformed JSON or not an Alertmanager payload, 503 when the alarm is not
in the ledger yet (Alertmanager retries).
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from driftwatch.cli._common import LEDGER_HELP, CLIError, check_port, open_for_writing
from driftwatch.guardrails.commands import GuardError, apply_alert, origin_of
from driftwatch.ledger import Ledger, LedgerError

__all__ = ["ALERTNAME", "MAX_BODY", "GuardReceiver", "cmd_guard", "parse_listen", "read_token", "register", "serve"]

#: the alert whose firing applies a policy
ALERTNAME = "DriftwatchBehaviorDrift"
#: the largest request body accepted (bytes)
MAX_BODY = 1 << 20
#: seconds to wait for the alarm an alert is about to reach the ledger (a replica's write may lag the scrape)
ALARM_WAIT_S = 5.0
PATH = "/alerts"


class RequestError(Exception):
    """A request that gets a 4xx/5xx answer: ``status`` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_token(path: str) -> str:
    """The bearer token in ``path`` (surrounding whitespace stripped); ``CLIError`` when unreadable or empty."""
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise CLIError(f"--token-file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CLIError(f"--token-file {path}: not a text file") from None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise CLIError(f"--token-file {path}: expected one token of 16+ characters without spaces")
    return token


def parse_listen(text: str, allow_remote: bool) -> tuple[str, int]:
    """``HOST:PORT`` (or ``PORT``: on 127.0.0.1); a non-loopback host needs ``allow_remote``."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise CLIError(f"--listen {text!r}: expected HOST:PORT such as 127.0.0.1:9095") from None
    check_port(port)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise CLIError(f"--listen {text!r}: {host!r} is not an IP address (or localhost)") from None
    if not loopback and not allow_remote:
        raise CLIError(f"--listen {text}: not a loopback address; pass --allow-remote to accept alerts from other "
                       "hosts")
    return host, port


class GuardReceiver:
    """What the HTTP handler calls: checks the token, parses the payload, applies the policies."""

    def __init__(self, ledger: Ledger, token: str, *, alertname: str = ALERTNAME, alarm_wait_s: float = ALARM_WAIT_S,
                 log: Any = None) -> None:
        self.ledger = ledger
        self.token = token.encode()
        self.alertname = alertname
        self.alarm_wait_s = alarm_wait_s
        self.lock = threading.Lock()
        self.log = log or (lambda line: print(line, flush=True))

    def authorized(self, header: str | None) -> bool:
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token)

    @staticmethod
    def alerts(body: bytes) -> list[dict[str, Any]]:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise RequestError(400, "malformed JSON body") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            raise RequestError(400, "not an Alertmanager webhook payload: expected an object with an 'alerts' list")
        alerts = payload["alerts"]
        for n, alert in enumerate(alerts):
            if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict) \
                    or not isinstance(alert.get("status"), str):
                raise RequestError(400, f"not an Alertmanager webhook payload: alert {n} has no 'labels' object or "
                                      "'status'")
        return alerts

    def handle(self, body: bytes) -> list[dict[str, Any]]:
        """Apply the policy of each firing drift alert in ``body``; what was done, per alert."""
        results: list[dict[str, Any]] = []
        for alert in self.alerts(body):
            labels = alert["labels"]
            if alert["status"] != "firing" or labels.get("alertname") != self.alertname:
                continue
            agent, signal = labels.get("agent"), labels.get("signal")
            if not isinstance(agent, str) or not agent or len(agent) > 256:
                raise RequestError(400, f"a firing {self.alertname} alert without a valid 'agent' label")
            results.append(self._apply(agent, signal if isinstance(signal, str) and signal else None))
        return results

    def _apply(self, agent: str, signal: str | None) -> dict[str, Any]:
        deadline = time.monotonic() + self.alarm_wait_s
        while True:
            try:
                with self.lock:
                    outcome = apply_alert(self.ledger, agent, signal=signal, alertname=self.alertname,
                                          origin=origin_of("alert"))
                break
            except GuardError as exc:
                if "no drift alarm" not in str(exc):
                    return {"agent": agent, "queued": False, "message": str(exc)}
                if time.monotonic() >= deadline:
                    raise RequestError(503, str(exc)) from None
                time.sleep(0.2)
            except LedgerError as exc:
                raise RequestError(503, str(exc)) from None
        if outcome.queued:
            self.log(f"driftwatch guard: {outcome.message} (command {outcome.command_id})")
        return {"agent": agent, "command": outcome.command, "queued": outcome.queued, "message": outcome.message,
                "command_id": outcome.command_id}


def _handler(receiver: GuardReceiver, path: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "driftwatch-guard"

        def _answer(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload, sort_keys=True).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            extra = {"WWW-Authenticate": 'Bearer realm="driftwatch"'} if status == 401 else None
            if status in (413, 411, 401):
                self.close_connection = True  # the body is not read: the connection cannot be reused
            self._answer(status, {"error": message}, extra)

        def do_POST(self) -> None:  # http.server's name
            if self.path.split("?", 1)[0] != path:
                self._error(404, f"no such path {self.path[:80]!r}: POST Alertmanager webhooks to {path}")
                return
            if not receiver.authorized(self.headers.get("Authorization")):
                self._error(401, "missing or wrong bearer token")
                return
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self._error(411, "a Content-Length header is required")
                return
            if int(length) > MAX_BODY:
                self._error(413, f"body of {length} bytes is over the limit of {MAX_BODY}")
                return
            body = self.rfile.read(int(length))
            try:
                results = receiver.handle(body)
            except RequestError as exc:
                self._error(exc.status, str(exc))
                return
            except Exception as exc:  # noqa: BLE001  # one line to the caller, never a traceback
                self._error(500, f"{type(exc).__name__}: {exc}")
                return
            self._answer(200, {"results": results})

        def _not_allowed(self) -> None:
            self._error(405, "only POST is accepted")

        do_GET = do_PUT = do_DELETE = do_PATCH = _not_allowed  # noqa: N815  # http.server's names

        def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
            pass

    return Handler


def serve(receiver: GuardReceiver, host: str = "127.0.0.1", port: int = 0, *, path: str = PATH) -> ThreadingHTTPServer:
    """Start the receiver on a daemon thread; returns the server (``.server_port``; ``.shutdown()``)."""
    server = ThreadingHTTPServer((host, port), _handler(receiver, path))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="driftwatch-guard", daemon=True).start()
    return server


def cmd_guard(args: argparse.Namespace) -> int:
    if not args.listen:
        raise CLIError("guard: pass --listen HOST:PORT (the Alertmanager webhook receiver)")
    host, port = parse_listen(args.listen, args.allow_remote)
    if not args.token_file:
        raise CLIError("guard: pass --token-file FILE (the bearer token Alertmanager sends)")
    token = read_token(args.token_file)
    ledger = open_for_writing(args)
    try:
        server = serve(GuardReceiver(ledger, token, alertname=args.alertname), host, port)
    except OSError as exc:
        ledger.close()
        raise CLIError(f"--listen {args.listen}: {exc.strerror or exc}") from None
    print(f"driftwatch guard: receiving Alertmanager webhooks on http://{host}:{server.server_port}{PATH} "
          f"(ledger {ledger.location}, pid {os.getpid()}); Ctrl-C stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("driftwatch guard: stopped", file=sys.stderr)
    finally:
        server.shutdown()
        server.server_close()
        ledger.close()
    return 0


def register(sub: Any) -> None:
    """Add ``driftwatch guard`` to the CLI's subcommands."""
    help_ = "receive Alertmanager webhooks and apply each agent's guard policy (freeze / rollback) when it drifts"
    g = sub.add_parser("guard", help=help_, description=help_ + ".")
    g.add_argument("--listen", metavar="HOST:PORT", help="address to listen on (loopback unless --allow-remote)")
    g.add_argument("--token-file", metavar="FILE", help="file holding the bearer token Alertmanager sends")
    g.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --listen address")
    g.add_argument("--alertname", default=ALERTNAME, help=f"the alert that applies policies (default: {ALERTNAME})")
    g.add_argument("--ledger", help=LEDGER_HELP)
    g.set_defaults(func=cmd_guard)
