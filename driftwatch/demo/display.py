"""How the demo shows itself: plain lines (:class:`Display`), a live ``rich`` table (:class:`LiveDisplay`),
and the closing summary (:func:`print_summary`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from driftwatch.demo.scenario import DEMO_AGENTS, Demo, Event, Summary

__all__ = ["Display", "LiveDisplay", "print_summary"]


class Display:
    """Plain lines: each event as it happens, and a status line every few seconds."""

    def __init__(self, write: Callable[[str], None] | None = None, *, every_s: float = 5.0) -> None:
        self.write = write or (lambda line: print(line, flush=True))
        self.every_s = every_s
        self._next = every_s

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def event(self, e: Event) -> None:
        if e.kind == "baseline":
            return
        head, *rest = e.text.split("\n")
        self.write(f"[{e.t:5.1f}s] {e.agent:<11}  {head}")
        for line in rest:
            self.write(f"{'':21}{line}")

    def update(self, demo: Demo) -> None:
        if demo.elapsed() < self._next:
            return
        self._next += self.every_s
        parts = [f"{v.name} {v.calls} calls, {v.drift}" for v in demo.snapshot()]
        self.write(f"[{demo.elapsed():5.1f}s] status: " + "; ".join(parts))

    def close(self, demo: Demo) -> None:
        pass


class LiveDisplay(Display):
    """A compact live table of the agents and a log of the latest events (``rich``)."""

    def __init__(self, console: Any = None, *, lines: int = 14) -> None:
        super().__init__()
        from rich.console import Console

        self.console = console or Console()
        self.log: deque[Event] = deque(maxlen=lines)
        self._live: Any = None

    def __enter__(self) -> LiveDisplay:
        from rich.live import Live

        self._live = Live(console=self.console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def event(self, e: Event) -> None:
        if e.kind != "baseline":
            self.log.append(e)

    def update(self, demo: Demo) -> None:
        if self._live is not None:
            self._live.update(self.render(demo))

    def render(self, demo: Demo) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        head = Text.assemble(("driftwatch demo ", "bold"), f"{min(demo.elapsed(), demo.duration):4.1f} s of "
                             f"{demo.duration:g} s   /metrics {demo.metrics_url or '-'}   ledger {demo.ledger}")
        table = Table(expand=False, pad_edge=False)
        for col, just in (("agent", "left"), ("what tunes it", "left"), ("calls", "right"), ("calls/s", "right"),
                          ("revision", "left"), ("changes", "right"), ("drift", "left")):
            table.add_column(col, justify=just)  # type: ignore[arg-type]  # rich's Literal
        for v in demo.snapshot():
            style = "bold red" if v.drift.startswith("ALARM") else ""
            table.add_row(v.name, v.what, f"{v.calls:,}", f"{v.rate:.0f}", v.revision, str(v.changes),
                          Text(v.drift, style=style))
        styles = {"change": "yellow", "alarm": "bold red", "run": "cyan", "guard": "bold green", "note": "dim"}
        log = Text()
        for e in self.log:
            log.append(f"{e.t:5.1f}s {e.agent:<11} ", style="dim")
            log.append(e.text + "\n", style=styles.get(e.kind, ""))
        return Group(head, table, Text("events", style="bold"), log)

    def close(self, demo: Demo) -> None:
        self.update(demo)


def print_summary(s: Summary, write: Callable[[str], None]) -> None:
    """The closing lines: what ran, what was recorded, where the ledger and the report are."""
    how = "stopped early (Ctrl-C)" if s.interrupted else "finished"
    write("")
    write(f"driftwatch demo {how} after {s.duration_s:.1f} s")
    for agent in DEMO_AGENTS:
        alarms = s.alarms.get(agent, [])
        signals = f" ({', '.join(sorted(set(alarms)))})" if alarms else ""
        n = s.changes.get(agent, 0)
        write(f"  {agent:<11}  {s.calls.get(agent, 0):>6,} calls  {n} change{'' if n == 1 else 's'}  "
              f"{len(alarms)} drift alarm{'' if len(alarms) == 1 else 's'}{signals}")
    write(f"  optimizer runs: {s.runs}")
    write(f"  ledger:  {s.ledger}   (driftwatch history --ledger {s.ledger})")
    if s.report:
        write(f"  report:  {s.report}   ({s.report_bytes:,} bytes; open it in a browser)")
    if s.metrics_url:
        write(f"  /metrics was served at {s.metrics_url}")
