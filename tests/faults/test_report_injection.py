"""Issue 11 item 3: nothing from the ledger can run as script in the HTML report.

``record_score("bot", 0.5, metric="<script>…</script>")`` used to run in the browser when the report was opened.
A report built from hostile agent, component, prompt, metric, node, tool and optimizer names is opened in a real
headless Chromium; a payload that ran would change the page's title and mark its body. A control page with the
same payloads unescaped proves the check sees a payload that runs.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from langchain_core.messages import AIMessage

import driftwatch
from driftwatch.ledger import open_ledger
from driftwatch.report import build_report
from driftwatch.testing import capture
from tests.helpers.chromium import chromium, console_errors
from tests.helpers.lg_graphs import ToolModel, replies, tools_graph

RUN = "document.title='PWNED';document.documentElement.setAttribute('data-pwned','1')"
PAYLOADS = (
    f"<script>{RUN}</script>",
    f'<img src="x:" onerror="{RUN}">',
    f"\"><svg onload=\"{RUN}\"></svg>",
    f"'><img src=\"x:\" onerror=\"{RUN}\">",
    f"</title></style><script>{RUN}</script>",
)


def _ran(dom: str) -> bool:
    """Whether a payload ran: it retitles the page and marks the root element."""
    return bool(re.search(r"<title>PWNED</title>", dom) or re.search(r'<html[^>]*data-pwned="1"', dom))


class _Markup(HTMLParser):
    """The elements and attribute names of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def _hostile_ledger(path: Path) -> None:
    """A ledger whose every name and text a caller or model controls carries a payload."""
    with capture(ledger=str(path)) as cap:
        for i, payload in enumerate(PAYLOADS):
            agent = f"agent {payload}"
            call = driftwatch.watch(lambda: "an answer", agent=agent)
            driftwatch.track(agent, f"component {payload}", f"prompt v1 {payload}", node=f"node {payload}",
                             kind="system_prompt")
            for _ in range(3):
                call()
                driftwatch.record_score(agent, 0.5, metric=f"metric {payload}")
            driftwatch.track(agent, f"component {payload}", f"prompt v2 {payload}\n{payload}", node=f"node {payload}",
                             kind="system_prompt")
            for _ in range(3):
                call()
                driftwatch.record_score(agent, 0.7, metric=f"metric {payload}")
            run = cap.runtime.begin_run(agent, f"Optimizer{i}")
            assert run is not None
            run.finish()
        tool_calls = [{"name": f"tool {p}", "args": {}, "id": f"c{i}"} for i, p in enumerate(PAYLOADS)]
        graph = driftwatch.watch(tools_graph(ToolModel(messages=replies(AIMessage(content="ok",
                                                                                  tool_calls=tool_calls)))),
                                 agent="tools")
        driftwatch.track("tools", "p", "v1")
        for _ in range(3):
            graph.invoke({"system_prompt": f"system {PAYLOADS[0]}", "question": "go"})
        driftwatch.track("tools", "p", "v2")
        for _ in range(3):
            graph.invoke({"system_prompt": f"system {PAYLOADS[0]}", "question": "go"})


def test_the_check_sees_a_payload_that_runs(tmp_path: Path) -> None:
    """Control: the same payloads written into a page unescaped (no CSP) do run in Chromium."""
    page = tmp_path / "control.html"
    page.write_text("<!DOCTYPE html><html><head><title>report</title></head><body>"
                    + "".join(f"<p>{p}</p>" for p in PAYLOADS) + "</body></html>")
    dom = chromium(page, "--dump-dom").stdout
    assert _ran(dom)


def test_the_policy_alone_stops_an_unescaped_payload(tmp_path: Path) -> None:
    """Defence in depth: with the report's Content-Security-Policy, even unescaped payloads do not run."""
    from driftwatch.report import CSP

    page = tmp_path / "csp.html"
    page.write_text(f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}">'
                    "<title>report</title></head><body>" + "".join(f"<p>{p}</p>" for p in PAYLOADS) + "</body></html>")
    run = chromium(page, "--dump-dom")
    assert not _ran(run.stdout)
    assert any("Content Security Policy" in line for line in console_errors(run.stderr))


def test_a_report_from_hostile_names_runs_no_script(tmp_path: Path) -> None:
    """Hostile agent, component, prompt (diff), metric, node, tool and optimizer names: shown as text, never run;
    the page declares a policy that allows no script."""
    ledger = tmp_path / "hostile.db"
    _hostile_ledger(ledger)
    html = build_report(open_ledger(str(ledger), readonly=True))
    page = tmp_path / "report.html"
    page.write_text(html)
    run = chromium(page, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert not _ran(dom)
    from driftwatch.report import CSP

    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in html
    assert "script-src 'none'" in CSP and "default-src 'none'" in CSP
    markup = _Markup()
    markup.feed(html)
    assert "script" not in markup.tags and "img" not in markup.tags and "iframe" not in markup.tags
    assert not {a for a in markup.attributes if a.startswith("on")} and "style" not in markup.attributes
    assert re.search(r"<title>driftwatch report</title>", dom)
    # every kind of hostile value made it into the page, as text
    for shown in ("agent &lt;script&gt;", "component &lt;script&gt;", "node &lt;script&gt;",
                  "score metric &lt;script&gt;", "tool &lt;script&gt;", "prompt v2 &lt;script&gt;"):
        assert shown in dom, shown
    assert console_errors(run.stderr) == []  # and the page itself needed nothing the policy forbids
