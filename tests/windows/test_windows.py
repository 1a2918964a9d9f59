"""Call windows: the per-agent call aggregates the runtime keeps in the ledger for reports."""

from __future__ import annotations

import sqlite3

import driftwatch
from driftwatch.ledger.sqlite import SQLiteLedger
from driftwatch.observation import Call
from driftwatch.testing import capture
from driftwatch.windows import MAX_CALLS, CallWindow, WindowAggregator


def test_windows_close_at_the_call_limit_and_at_each_change(tmp_path) -> None:
    """A window holds at most MAX_CALLS calls, a change closes the open one, and sums are exact (the calls'
    signals too, with the drift engine off)."""
    with capture(ledger=str(tmp_path / "w.db"), drift=False) as cap:
        rt = cap.runtime
        driftwatch.configure_agent("bot", format=lambda text: text.startswith("x"))

        @driftwatch.watch(agent="bot")
        def answer(i: int) -> str:
            if i >= 150 and i % 10 == 0:
                return "I cannot help with that.".ljust(40, ".")  # a refusal, and not the format
            return "x" * (10 if i < 150 else 40)

        driftwatch.track("bot", "prompt", "v1")
        for i in range(150):
            answer(i)
        driftwatch.track("bot", "prompt", "v2")  # closes the window of calls 100..149
        for i in range(150, 180):
            answer(i)
        rt.record_score("bot", 0.5)
        windows = cap.ledger.windows(agent="bot")
        assert [w.calls for w in windows] == [MAX_CALLS, 50]
        change = cap.changes()[0]
        assert all(w.end <= change.timestamp for w in windows)
    windows = SQLiteLedger(str(tmp_path / "w.db"), readonly=True).windows(agent="bot")  # closed at shutdown
    assert [w.calls for w in windows] == [MAX_CALLS, 50, 30]
    last = windows[-1]
    assert last.mean_chars() == 40.0 and last.errors == 0
    assert (last.checked_calls, last.refusals, last.format_failures) == (30, 3, 3)
    assert (last.refusal_rate(), last.format_failure_rate(), last.mean_score()) == (0.1, 0.1, 0.5)


def test_windows_store_only_numbers(tmp_path) -> None:
    """No output text reaches the ledger's call_windows table."""
    path = tmp_path / "w.db"
    with capture(ledger=str(path)) as cap:
        cap.runtime.record_call(Call("bot", 0.01, output_chars=11, output_text="SECRET TEXT", tools=("search",),
                                     input_tokens=3, output_tokens=4, timestamp=1.0))
    rows = sqlite3.connect(path).execute("SELECT * FROM call_windows").fetchall()
    assert len(rows) == 1 and "SECRET" not in repr(rows)
    w = SQLiteLedger(str(path), readonly=True).windows()[0]
    assert (w.tools, w.input_tokens, w.output_tokens, w.tokens_per_call()) == ({"search": 1}, 3, 4, 7.0)


def test_record_signals_counts_refusals_in_metrics_too(cap) -> None:
    """Runtime.record_signals feeds driftwatch_refusals_total / format_failures_total as well."""
    cap.runtime.record_signals("bot", refused=True, format_ok=True)
    cap.runtime.record_signals("bot", refused=False, format_ok=False)
    assert cap.value("driftwatch_refusals_total", agent="bot") == 1.0
    assert cap.value("driftwatch_format_failures_total", agent="bot") == 1.0


def test_a_failing_writer_never_reaches_the_host(cap) -> None:
    """If the ledger cannot store a window, the call still returns and the error is counted."""
    def broken(window: CallWindow) -> None:
        raise OSError("disk full")

    cap.runtime.windows = WindowAggregator(broken, max_calls=1)

    @driftwatch.watch(agent="bot")
    def answer() -> str:
        return "ok"

    assert answer() == "ok"
    assert answer() == "ok"  # closes (and fails to write) the first window
    assert cap.runtime.error_counts["windows"] == 1


def test_signals_reported_after_a_call_count_in_its_window(tmp_path) -> None:
    """The refusal reported right after the 100th call lands in the window holding that call."""
    with capture(ledger=str(tmp_path / "w.db"), drift=False) as cap:
        rt = cap.runtime
        for i in range(150):
            rt.record_call(Call("bot", 0.01, output_chars=5, timestamp=1000.0 + i / 1000))
            rt.record_signals("bot", refused=i == 99, format_ok=True)
    windows = SQLiteLedger(str(tmp_path / "w.db"), readonly=True).windows()
    assert [(w.calls, w.checked_calls, w.refusals) for w in windows] == [(100, 100, 1), (50, 50, 0)]


def test_open_windows_are_written_when_the_process_exits(tmp_path) -> None:
    """A process that never closes its runtime still leaves its last calls in the ledger (atexit)."""
    import subprocess
    import sys

    path = tmp_path / "exit.db"
    code = ("import driftwatch\n"
            f"driftwatch.configure(ledger={str(path)!r})\n"
            "answer = driftwatch.watch(lambda q: 'ok', agent='bot')\n"
            "for i in range(42):\n"
            "    answer(i)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert [w.calls for w in SQLiteLedger(str(path), readonly=True).windows()] == [42]
