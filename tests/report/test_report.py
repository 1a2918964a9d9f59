"""driftwatch report: a self-contained HTML page of changes, alarms, diffs and before/after plots."""

from __future__ import annotations

import itertools
import re
import sqlite3
from pathlib import Path

import pytest

from driftwatch.cli import main
from driftwatch.ledger import open_ledger
from driftwatch.report import ReportError, build_report
from tests.helpers.sample import PROMPTS


@pytest.fixture(scope="module")
def page(sample_ledger: Path) -> str:
    ledger = open_ledger(str(sample_ledger), readonly=True)
    try:
        return build_report(ledger)
    finally:
        ledger.close()


def _section(page: str, change_id: str) -> str:
    start = page.index(f'<section id="c-{change_id[:12]}"')
    return page[start:page.index("</section>", start)]


def test_every_change_has_metadata_diff_and_signal_plots(page: str, sample_ledger: Path) -> None:
    """Each change gets a section with its kind, source, revisions, its diff lines and one plot per signal."""
    changes = open_ledger(str(sample_ledger), readonly=True).changes()
    assert len(changes) == 2
    for change, (old, new) in zip(changes, itertools.pairwise(PROMPTS), strict=True):
        sec = _section(page, change.id)
        assert change.after_id[:12] in sec and change.before_id[:12] in sec
        assert f'<span class="del">-{old}</span>' in sec
        assert f'<span class="add">+{new}</span>' in sec
        titles = re.findall(r'aria-label="([^"]+)"', sec)
        assert {"output length (chars/call)", "refusal rate (share)", "latency (s/call)"} <= set(titles)


def test_before_after_table_shows_the_drift_each_change_caused(page: str, sample_ledger: Path) -> None:
    """The detail rewrite multiplies answer length; the cautious rewrite multiplies the refusal rate."""
    first, second = open_ledger(str(sample_ledger), readonly=True).changes()

    def ratio(sec: str, signal: str) -> float:
        row = re.search(rf"<td>{signal} .*?<td class='delta'>×([0-9.]+)</td>", sec)
        assert row, signal
        return float(row.group(1))

    assert ratio(_section(page, first.id), "output length") > 2.5
    assert ratio(_section(page, second.id), "refusal rate") > 4


def test_timeline_and_events_link_alarms_to_their_anchor_change(page: str, sample_ledger: Path) -> None:
    """The alarm is on the timeline and in the events table, linked to the change that anchored it."""
    led = open_ledger(str(sample_ledger), readonly=True)
    alarm, anchor, run = led.alarms()[0], led.changes()[-1], led.runs()[0]
    assert page.count('<svg class="timeline"') == 1
    assert f'href="#a-{alarm.id[:12]}"' in page and f"id='a-{alarm.id[:12]}'" in page
    assert f"anchored at change <a href='#c-{anchor.id[:12]}'>" in page
    assert "COPRO (ok" in page and f"{run.candidates} candidates" in page
    assert '<a class="alarm" href="#a-' in _section(page, anchor.id)


def test_page_is_self_contained(page: str) -> None:
    """No script, stylesheet link, image source or URL other than the SVG namespace."""
    assert "<script" not in page and "<link" not in page and " src=" not in page
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}


def test_no_diffs_leaves_prompt_text_out(sample_ledger: Path) -> None:
    """With diffs=False no prompt text from the ledger appears on the page, which still has each change's
    section; with diffs (the default, the control) every prompt of the ledger does."""
    led = open_ledger(str(sample_ledger), readonly=True)
    assert all(p in build_report(led) for p in PROMPTS)
    page = build_report(led, diffs=False)
    assert not any(p in page for p in PROMPTS)
    changes = led.changes()
    assert len(changes) == 2 and all(f'<section id="c-{c.id[:12]}"' in page for c in changes)


def test_agent_filter_and_an_empty_ledger(sample_ledger: Path, tmp_path: Path) -> None:
    """--agent for an unknown agent and a fresh ledger both give a valid page that says there is nothing."""
    led = open_ledger(str(sample_ledger), readonly=True)
    assert "The ledger holds nothing yet." in build_report(led, agent="nobody")
    empty = tmp_path / "empty.db"
    open_ledger(str(empty)).close()
    assert "The ledger holds nothing yet." in build_report(open_ledger(str(empty), readonly=True))


def test_cli_writes_the_report(sample_ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`driftwatch report --out` writes the page and says where."""
    out = tmp_path / "r.html"
    assert main(["report", "--ledger", str(sample_ledger), "--out", str(out), "--since", "1d"]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert f"wrote {out}" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--ledger", "{missing}"], "no ledger at"),
    (["--prometheus", "ftp://x"], "--prometheus 'ftp://x': expected an http:// or https:// URL"),
    (["--prometheus", "http://127.0.0.1:{port}"], "cannot reach Prometheus"),
    (["--since", "yesterday"], "--since 'yesterday'"),
    (["--limit", "-1"], "--limit -1: expected a whole number >= 0"),
])
def test_cli_bad_input_is_one_line(args: list[str], message: str, sample_ledger: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Bad arguments and an unreachable Prometheus end in one line on stderr and exit status 1."""
    from tests.helpers.servers import free_port

    args = [a.format(missing=tmp_path / "none.db", port=free_port()) for a in args]
    if "--ledger" not in args:
        args += ["--ledger", str(sample_ledger)]
    assert main(["report", "--out", str(tmp_path / "r.html"), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_non_prometheus_server_is_reported_clearly() -> None:
    """A server that answers something other than Prometheus JSON gives a ReportError naming the URL."""
    import httpx

    from driftwatch.report import PrometheusSource

    src = PrometheusSource("http://prom.test", transport=httpx.MockTransport(lambda r: httpx.Response(200, text="hi")))
    with pytest.raises(ReportError, match=r"http://prom.test: /api/v1/query did not answer JSON"):
        src.check()


def test_the_windows_table_is_what_the_report_reads(sample_ledger: Path) -> None:
    """The report's call counts equal the rows of the ledger's call_windows table."""
    total = sqlite3.connect(sample_ledger).execute("SELECT SUM(calls) FROM call_windows").fetchone()[0]
    assert total == 600
    led = open_ledger(str(sample_ledger), readonly=True)
    assert '<div class="card"><b>600</b>calls in windows</div>' in build_report(led)


def test_limit_keeps_every_change_on_the_timeline_but_details_the_last(sample_ledger: Path) -> None:
    """limit=1: both changes are in the events table, only the last gets a section, and the page says so."""
    led = open_ledger(str(sample_ledger), readonly=True)
    first, last = led.changes()
    page = build_report(led, limit=1)
    assert f"href='#c-{first.id[:12]}'" in page and f'id="c-{first.id[:12]}"' not in page
    assert f'id="c-{last.id[:12]}"' in page
    assert "the last 1 of 2 changes" in page


def test_changes_made_together_share_their_windows(tmp_path: Path) -> None:
    """Two predictors changed by one optimizer run at once both get the calls before and after that moment."""
    import driftwatch
    from driftwatch.testing import capture

    with capture(ledger=str(tmp_path / "t.db")) as cap:
        @driftwatch.watch(agent="qa")
        def answer(n: int) -> str:
            return "x" * n

        driftwatch.track("qa", "p1", "a")
        driftwatch.track("qa", "p2", "a")
        for _ in range(50):
            answer(10)
        driftwatch.track("qa", "p1", "b", source="COPRO")
        driftwatch.track("qa", "p2", "b", source="COPRO")
        for _ in range(50):
            answer(30)
        cap.runtime.windows.flush()  # the open window is written at exit; the report reads the ledger now
        page = build_report(cap.ledger)
    for change in open_ledger(str(tmp_path / "t.db"), readonly=True).changes():
        sec = _section(page, change.id)
        assert "before (50 calls)" in sec and "after (50 calls)" in sec
        assert re.search(r"output length .*?<td>10.00</td><td>30.00</td>", sec)


def test_before_after_values_weigh_each_window_by_its_calls(tmp_path: Path) -> None:
    """A 1-call window of 1000 chars and a 99-call window of 10 chars average to 19.9 chars per call, not 505."""
    import time

    import driftwatch
    from driftwatch.testing import capture
    from driftwatch.windows import CallWindow

    with capture(ledger=str(tmp_path / "w.db"), drift=False) as cap:
        now = time.time()
        cap.ledger.record_window(CallWindow("a", now - 3, now - 2, calls=1, sized_calls=1, output_chars=1000))
        cap.ledger.record_window(CallWindow("a", now - 2, now - 1, calls=99, sized_calls=99, output_chars=990))
        driftwatch.track("a", "p", "v1")
        driftwatch.track("a", "p", "v2")
        page = build_report(cap.ledger)
    assert "before (100 calls)" in page
    assert re.search(r"output length <span class='muted'>\(chars/call\)</span></td><td>19.90</td>", page)
