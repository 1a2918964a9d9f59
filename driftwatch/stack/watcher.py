"""Watching alerts: each alert's state as Prometheus sees it (pending, firing, resolved) and each alert
Alertmanager receives, reported once as it happens."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from driftwatch.stack.servers import Stack, StackError

__all__ = ["AlertWatcher", "describe"]

#: labels shown after an alert's name
_SHOWN_LABELS = ("agent", "signal", "stage", "instance")


def describe(labels: dict[str, str]) -> str:
    """An alert on one line: its name, the labels that tell it apart, its severity."""
    shown = [f"{k}={labels[k]}" for k in _SHOWN_LABELS if labels.get(k)]
    return f"{labels.get('alertname', '?')}" + (f" {{{', '.join(shown)}}}" if shown else "") + \
        (f" [{labels['severity']}]" if labels.get("severity") else "")


class AlertWatcher:
    """Polls Prometheus ``/api/v1/alerts`` and Alertmanager ``/api/v2/alerts``; reports each transition once."""

    def __init__(self, stack: Stack, write: Callable[[str], None], *, interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, t0: float | None = None) -> None:
        self.stack = stack
        self.write = write
        self.interval = interval
        self.clock = clock
        self.t0 = clock() if t0 is None else t0
        self.states: dict[tuple[tuple[str, str], ...], str] = {}
        self.fired: dict[tuple[tuple[str, str], ...], float] = {}
        self.received: dict[str, tuple[float, tuple[str, str, str]]] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        """One round: print what changed since the last one."""
        now = self.clock() - self.t0
        try:
            alerts = self.stack.prometheus.alerts()
            held = self.stack.alertmanager.alerts() if self.stack.alertmanager is not None else []
        except StackError:
            self.errors += 1
            return
        current = {}
        for a in alerts:
            key = tuple(sorted(a["labels"].items()))
            current[key] = a["state"]
        for key, state in current.items():
            if self.states.get(key) != state:
                self.write(f"[{now:5.1f}s] prometheus   {state:<8} {describe(dict(key))}")
                if state == "firing":
                    self.fired.setdefault(key, now)
        for key in self.states.keys() - current.keys():
            self.write(f"[{now:5.1f}s] prometheus   resolved {describe(dict(key))}")
        self.states = current
        for a in held:
            fp = a.get("fingerprint", "")
            if fp and fp not in self.received and a.get("status", {}).get("state") in ("active", "suppressed"):
                labels = a["labels"]
                self.received[fp] = (now, (labels.get("alertname", ""), labels.get("agent", ""),
                                           labels.get("signal", "")))
                self.write(f"[{now:5.1f}s] alertmanager received {describe(a['labels'])}")

    def firing(self) -> set[tuple[str, str, str]]:
        """``(alertname, agent, signal)`` of the alerts firing now (empty strings for missing labels)."""
        out = set()
        for key, state in self.states.items():
            labels = dict(key)
            if state == "firing":
                out.add((labels.get("alertname", ""), labels.get("agent", ""), labels.get("signal", "")))
        return out

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.poll()
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="driftwatch-stack-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
