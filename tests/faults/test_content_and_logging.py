"""Issue 11 item 11 (this part): what leaves the process, and what driftwatch says about itself.

- exception messages (they can hold user input) stay out of spans unless content capture is on;
- with capture on, a diff is cut at ``max_diff_chars`` and the record says so (a 1 MB prompt made a 1 MB audit line);
- a failed span export under a SimpleSpanProcessor says how long the agent's call waited (it used to claim "the host
  call is unaffected" while each call waited seconds);
- drift-alarm audit events no longer land on stderr when the host has not set up logging.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import driftwatch
from driftwatch.testing import capture
from driftwatch.tracing import CountingExporter
from tests.helpers.otlp_receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[2]
SECRET = "card 4111 1111 1111 1111 of jane@example.com"


def _failing_agent():
    @driftwatch.watch(agent="bot")
    def agent(question: str) -> str:
        raise ValueError(f"cannot answer {question!r}")

    return agent


def _everything_in(span) -> str:
    """Every string a span exports: name, status, attributes, events and their attributes."""
    parts = [span.name, str(span.status.description), json.dumps(dict(span.attributes), default=str)]
    for event in span.events:
        parts += [event.name, json.dumps(dict(event.attributes), default=str)]
    return "\n".join(parts)


def test_an_exception_message_stays_out_of_spans_without_content_capture() -> None:
    """Content capture off: the call span records the exception's type only (no message, no stack trace); the
    host still gets its own exception."""
    with capture() as cap:
        with pytest.raises(ValueError, match="cannot answer") as info:
            _failing_agent()(SECRET)
        assert SECRET in str(info.value)
        (span,) = cap.spans("invoke_agent bot")
        assert SECRET not in _everything_in(span) and "cannot answer" not in _everything_in(span)
        (event,) = [e for e in span.events if e.name == "exception"]
        assert dict(event.attributes) == {"exception.type": "ValueError"}
        assert span.attributes["error.type"] == "ValueError"
        assert cap.value("driftwatch_calls_total", agent="bot", status="error") == 1.0


def test_with_content_capture_the_message_goes_out_redacted() -> None:
    """Content capture on: message and stack trace are recorded, through the redaction hook."""
    with capture(capture_content=True) as cap:
        with pytest.raises(ValueError):
            _failing_agent()(SECRET)
        (span,) = cap.spans("invoke_agent bot")
        (event,) = [e for e in span.events if e.name == "exception"]
        assert event.attributes["exception.type"] == "ValueError"
        assert "cannot answer" in event.attributes["exception.message"]
        assert "[email]" in event.attributes["exception.message"] and "jane@example.com" not in _everything_in(span)
        assert "Traceback" in event.attributes["exception.stacktrace"]


def test_a_1_mb_prompt_makes_a_bounded_audit_line_that_says_it_was_cut(tmp_path: Path) -> None:
    """Content capture on, a 1 MB prompt change: the audit line and the span's diff event are cut at
    max_diff_chars (64 KiB by default), and both say the diff was cut and how long it was."""
    log = tmp_path / "audit.jsonl"
    big = "\n".join(f"rule {i}: answer politely and cite the handbook section {i}." for i in range(16_000))
    assert len(big) > 1_000_000
    with capture(capture_content=True, audit_log=str(log), audit_logger=None) as cap:
        driftwatch.track("bot", "system_prompt", "short")
        change = driftwatch.track("bot", "system_prompt", big)
        assert change is not None and cap.ledger.revision(change.after_id).state == big
        (span,) = cap.spans("driftwatch.change")
        (diff,) = [e for e in span.events if e.name == "driftwatch.change.diff"]
    lines = log.read_text().splitlines()
    assert max(len(line) for line in lines) < 80_000
    event = json.loads(lines[-1])
    assert event["event"] == "driftwatch.change" and event["diff_truncated"] is True
    assert event["diff_chars"] > 1_000_000
    assert re.search(r"… diff cut: [\d,]+ of [\d,]+ characters shown \(max_diff_chars\)\n$", event["diff"])
    assert diff.attributes["driftwatch.change.diff_truncated"] is True
    assert diff.attributes["driftwatch.change.diff_chars"] == event["diff_chars"]
    assert diff.attributes["driftwatch.change.diff"] == event["diff"]


def test_a_small_diff_is_whole_and_unmarked(tmp_path: Path) -> None:
    """Control: a diff under the limit goes out whole, without the cut fields."""
    with capture(capture_content=True) as cap:
        driftwatch.track("bot", "p", "one")
        driftwatch.track("bot", "p", "two")
        event = cap.audit[-1]
    assert "+two" in event["diff"] and "diff_truncated" not in event and "cut" not in event["diff"]


def test_a_failed_export_under_a_simple_processor_says_the_call_waited(caplog) -> None:
    """A SimpleSpanProcessor exporting to a collector that answers 503: the call returns its own result, the
    failure is counted, and the warning says how long the export took inside the call (not that the host call
    was unaffected)."""
    caplog.set_level(logging.WARNING, logger="driftwatch")
    with OTLPReceiver(status=503) as receiver:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(CountingExporter(
            OTLPSpanExporter(endpoint=receiver.endpoint, timeout=2))))
        with capture(tracer_provider=provider) as cap:
            started = time.perf_counter()
            assert driftwatch.watch(lambda: "host result", agent="bot")() == "host result"
            took = time.perf_counter() - started
            assert cap.runtime.error_counts["span_export"] == 1
            assert cap.value("driftwatch_internal_errors_total", stage="span_export") == 1.0
        provider.shutdown()
    (message,) = [r.getMessage() for r in caplog.records if "span_export" in r.getMessage()]
    assert "unaffected" not in message
    waited = float(re.search(r"failed to export 1 span\(s\) after ([\d.]+) s", message).group(1))
    assert 0 < waited <= took + 0.005  # the message tells what the call really waited (to 2 decimals)
    assert "inside the agent's call" in message and "BatchSpanProcessor" in message


_ALARM = """
import logging, sys, time
{setup}
import driftwatch
from driftwatch.alarm import Alarm
rt = driftwatch.configure(ledger=":memory:", metrics=False, tracing=False)
rt.record_alarm(Alarm("a1", "bot", "output_chars", 1.7, time.time(), None, 40))
print("done")
"""


def _run(setup: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _ALARM.format(setup=setup)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=True)


def test_alarm_events_stay_off_stderr_when_the_host_set_up_no_logging() -> None:
    """A host without logging set up: the drift alarm's audit event (WARNING) is not printed on stderr (the stdlib
    default for a library: no handler, no output)."""
    run = _run("")
    assert run.stdout.strip() == "done"
    assert "drift_alarm" not in run.stderr and run.stderr == ""


def test_alarm_events_reach_logging_the_host_set_up() -> None:
    """Control: with logging.basicConfig() the same event is emitted, as JSON, through the host's handler."""
    run = _run("logging.basicConfig(stream=sys.stderr, level=logging.INFO, format='%(name)s %(message)s')")
    (line,) = [x for x in run.stderr.splitlines() if "drift_alarm" in x]
    name, _, payload = line.partition(" ")
    assert name == "driftwatch.audit"
    assert json.loads(payload)["alarm_id"] == "a1"

