"""`driftwatch guard --listen`: the Alertmanager webhook receiver. A firing DriftwatchBehaviorDrift applies the agent's
published policy; bad tokens, bad bodies, other paths and methods get a clear 4xx and change nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import driftwatch
from driftwatch.cli.webhook import MAX_BODY, GuardReceiver, serve
from driftwatch.ledger import Ledger, open_ledger
from driftwatch.testing import capture
from tests.helpers.ledger_snapshot import snapshot

TOKEN = "s3cret-token-0123456789"


def alert(agent: str, signal: str = "output_chars", status: str = "firing",
          alertname: str = "DriftwatchBehaviorDrift") -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": alertname, "agent": agent, "signal": signal,
                                         "severity": "critical"}, "annotations": {}, "startsAt": "2026-01-01T00:00:00Z"}


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """What Alertmanager 0.25 POSTs (version 4)."""
    return {"version": "4", "status": "firing", "receiver": "driftwatch-guard", "groupKey": "{}:{}",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
            "alerts": list(alerts)}


@dataclass
class Receiver:
    url: str
    ledger: Ledger
    path: Path

    def post(self, body: Any, *, token: str | None = TOKEN, path: str = "/alerts", raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        h = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        content = raw if raw is not None else json.dumps(body).encode()
        return httpx.post(self.url + path, content=content, headers=h, timeout=30)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """A ledger with three agents (rollback, freeze, page policies; each drifted once) and the receiver on it."""
    path = tmp_path / "ledger.db"
    with capture(ledger=str(path), drift=False) as cap:
        for agent, policy in (("roll-bot", "rollback"), ("freeze-bot", "freeze"), ("page-bot", "page")):
            driftwatch.configure_agent(agent, on_alarm=policy)
            driftwatch.track(agent, "system_prompt", "short")
            change = driftwatch.track(agent, "system_prompt", "long and detailed")
            cap.runtime.ledger.record_alarm(driftwatch.Alarm(f"al-{agent}", agent, "output_chars", 1.3, time.time(),
                                                             change.id))
        driftwatch.track("no-policy-bot", "p", "x")
        cap.runtime.guard.poll()  # the processes publish their policies
    led = open_ledger(str(path))
    server = serve(GuardReceiver(led, TOKEN, alarm_wait_s=0.5, log=lambda line: None))
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_port}", led, path)
    finally:
        server.shutdown()
        server.server_close()
        led.close()


def test_a_firing_alert_applies_each_agents_policy(receiver: Receiver) -> None:
    """rollback → the agent is rolled back from its alarm; freeze → frozen; page or no policy → nothing; a resolved
    alert or another alert name → nothing; the same alert again → nothing more."""
    r = receiver.post(payload(alert("roll-bot"), alert("freeze-bot"), alert("page-bot"), alert("no-policy-bot"),
                              alert("roll-bot", status="resolved"),
                              alert("roll-bot", alertname="DriftwatchRefusalSpike")))
    assert r.status_code == 200, r.text
    results = {x["agent"]: (x["command"], x["queued"]) for x in r.json()["results"]}
    assert results == {"roll-bot": ("rollback", True), "freeze-bot": ("freeze", True), "page-bot": ("none", False),
                       "no-policy-bot": ("none", False)}
    led = receiver.ledger
    assert [c[1:3] for c in led.commands()] == [("roll-bot", "rollback"), ("freeze-bot", "freeze")]
    (action,) = [a for a in led.guard_actions(agent="roll-bot")]
    assert action.action == "rolled_back" and action.origin.startswith("alert@") and "al-roll-bot" in action.reason
    assert led.head("roll-bot", "system_prompt") == driftwatch.revision.fingerprint("short")
    before = snapshot(led)
    again = receiver.post(payload(alert("roll-bot"), alert("freeze-bot")))
    assert again.status_code == 200 and not any(x["queued"] for x in again.json()["results"])
    assert snapshot(led) == before


@pytest.mark.parametrize(("kwargs", "status", "error"), [
    ({"token": None}, 401, "missing or wrong bearer token"),
    ({"token": "wrong-token-0123456789"}, 401, "missing or wrong bearer token"),
    ({"token": TOKEN[:-1]}, 401, "missing or wrong bearer token"),
    ({"headers": {"Authorization": f"Basic {TOKEN}"}, "token": None}, 401, "missing or wrong bearer token"),
    ({"path": "/other"}, 404, "no such path '/other'"),
    ({"raw": b"{not json"}, 400, "malformed JSON body"),
    ({"raw": b"\xff\xfe"}, 400, "malformed JSON body"),
    ({"raw": b'{"alerts": "x"}'}, 400, "not an Alertmanager webhook payload"),
    ({"raw": b"[1, 2]"}, 400, "not an Alertmanager webhook payload"),
    ({"raw": b'{"alerts": [{"status": "firing"}]}'}, 400, "alert 0 has no 'labels' object"),
    ({"raw": json.dumps(payload({"status": "firing", "labels": {"alertname": "DriftwatchBehaviorDrift"}})).encode()},
     400, "without a valid 'agent' label"),
    ({"raw": b" " * (MAX_BODY + 1)}, 413, f"over the limit of {MAX_BODY}"),
])
def test_bad_requests_get_a_clear_4xx_and_change_nothing(receiver: Receiver, kwargs: dict, status: int,
                                                         error: str) -> None:
    """Bad or missing token, another path, malformed or foreign bodies, an oversized body: 4xx, nothing written."""
    before = snapshot(receiver.ledger)
    r = receiver.post(payload(alert("roll-bot")), **kwargs)
    assert r.status_code == status
    assert error in r.json()["error"] and "\n" not in r.json()["error"]
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(receiver.ledger) == before


def test_other_methods_and_a_missing_length(receiver: Receiver) -> None:
    """GET is 405; a POST without Content-Length is 411; neither writes anything."""
    before = snapshot(receiver.ledger)
    assert httpx.get(receiver.url + "/alerts", timeout=10).status_code == 405
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", int(receiver.url.rsplit(":", 1)[1]), timeout=10)
    conn.putrequest("POST", "/alerts")
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn.close()
    assert snapshot(receiver.ledger) == before


def test_an_alert_before_its_alarm_reaches_the_ledger_is_retried(receiver: Receiver) -> None:
    """No alarm on the alert's signal yet: 503 (Alertmanager retries), nothing written."""
    before = snapshot(receiver.ledger)
    r = receiver.post(payload(alert("roll-bot", signal="refusal")))
    assert r.status_code == 503 and "has no drift alarm on refusal in the ledger yet" in r.json()["error"]
    assert snapshot(receiver.ledger) == before


def test_the_command_line(tmp_path: Path) -> None:
    """`driftwatch guard --listen` refuses a non-loopback address without --allow-remote and a bad token file;
    it serves on loopback and stops on SIGINT."""
    path = tmp_path / "l.db"
    with capture(ledger=str(path), drift=False):
        driftwatch.track("bot", "p", "v1")
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    short = tmp_path / "short"
    short.write_text("abc")
    cli = [sys.executable, "-m", "driftwatch", "guard", "--ledger", str(path)]
    for extra, message in (
            (["--listen", "0.0.0.0:0", "--token-file", str(token)],
             "--listen 0.0.0.0:0: not a loopback address; pass --allow-remote"),
            (["--listen", "127.0.0.1:0", "--token-file", str(short)], "expected one token of 16+ characters"),
            (["--listen", "127.0.0.1:0", "--token-file", str(tmp_path / "none")], "No such file or directory"),
            (["--listen", "127.0.0.1:x", "--token-file", str(token)], "expected HOST:PORT"),
            (["--listen", "127.0.0.1:0"], "pass --token-file FILE")):
        proc = subprocess.run([*cli, *extra], capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 1 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    proc = subprocess.Popen([*cli, "--listen", "127.0.0.1:0", "--token-file", str(token)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]  # a pipe
        assert line.startswith("driftwatch guard: receiving Alertmanager webhooks on http://127.0.0.1:")
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        r = httpx.post(url, json=payload(alert("bot")), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert r.status_code == 200 and r.json()["results"][0]["queued"] is False  # bot has no policy
    finally:
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(15) == 0
        proc.stdout.close()  # type: ignore[union-attr]  # a pipe
        proc.stderr.close()  # type: ignore[union-attr]  # a pipe
