"""One report page embeds a bounded amount (issue 12 item 9: a report for 6 calls was 5.4 MB): long diffs are cut,
the diffs of all changes share a budget, and the page says what it left out."""

from __future__ import annotations

from pathlib import Path

import driftwatch
from driftwatch import report
from driftwatch.ledger import open_ledger
from driftwatch.testing import capture


def _demos(n: int, tag: str) -> list[dict[str, str]]:
    """Few-shot demos with long passages (what makes DSPy diffs big)."""
    return [{"question": f"{tag} question {i}", "context": f"{tag} passage {i} " + "lorem ipsum " * 400}
            for i in range(n)]


def _ledger(tmp_path: Path) -> str:
    path = str(tmp_path / "big.db")
    with capture(ledger=path):
        driftwatch.track("rag", "small.prompt", "Answer briefly.", kind="system_prompt")
        driftwatch.track("rag", "small.prompt", "Answer briefly and cite.", kind="system_prompt")
        for round_ in range(20):
            driftwatch.track("rag", "retrieve.predict", {"demos": _demos(12, f"r{round_}")}, kind="demos")
    return path


def test_a_page_with_huge_diffs_stays_small_and_says_what_it_left_out(tmp_path: Path) -> None:
    ledger = open_ledger(_ledger(tmp_path), readonly=True)
    full = sum(len(ledger.diff(c.before_id, c.after_id)) for c in ledger.changes())
    assert full > 3 * report.MAX_PAGE_DIFF_CHARS  # the diffs themselves are big (what the page must not embed)
    page = report.build_report(ledger)
    assert len(page) < report.MAX_PAGE_DIFF_CHARS + 300_000
    assert page.count("left out of this page") >= 19  # each cut diff says so
    assert "characters of diffs are left out of this page" in page
    assert "driftwatch show" in page


def test_a_small_diff_is_embedded_whole(tmp_path: Path) -> None:
    """The positive control: the short prompt change's diff is on the page as it is, with no note in it."""
    ledger = open_ledger(_ledger(tmp_path), readonly=True)
    small = next(c for c in ledger.changes() if c.component == "small.prompt")
    diff = ledger.diff(small.before_id, small.after_id)
    cut, left = report._capped_diff(diff, report.MAX_PAGE_DIFF_CHARS)
    assert (cut, left) == (diff, 0)
    page = report.build_report(ledger, agent="rag")
    assert "Answer briefly and cite." in page
