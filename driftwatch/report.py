"""``driftwatch report``: one self-contained HTML page of what changed, what drifted, and why.

    driftwatch report --out report.html [--ledger driftwatch.db] [--agent bot] [--since 2h]
                      [--prometheus http://127.0.0.1:9090] [--no-diffs]

The page is built from the ledger alone: a timeline of changes, optimizer runs and drift alarms; for
each change its metadata, the unified diff of its revisions, and plots of the agent's behaviour
signals (output length, refusal and format-failure rates, errors, tokens per call, scores, tool
mix, latency) before and after it, from the call windows the runtime stores
(:mod:`driftwatch.windows`). With ``--prometheus URL`` each change also gets plots of the same
signals — and the drift scores — queried from Prometheus (:mod:`driftwatch.prometheus_api`).

Everything is inline (CSS and SVG, no script, no external asset), so the file can be mailed or
attached to an incident. Diffs contain prompt text from the ledger: ``--no-diffs`` leaves them out. The
command is :mod:`driftwatch.cli.report`.

Every value read from the ledger (names, prompts, diffs, metric, node, tool and optimizer names, ids) is
HTML-escaped (:func:`_e`), and the page carries a Content-Security-Policy that allows no script at all, no
request to anywhere, and only its own stylesheet (by hash): a name such as ``<script>…</script>`` in the ledger
is shown as text, and could not run even if some path forgot to escape it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import html
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from driftwatch import promql
from driftwatch._version import __version__
from driftwatch.alarm import Alarm
from driftwatch.change import KINDS, Change
from driftwatch.files import DEFAULT_MODE, open_private
from driftwatch.ledger import Ledger
from driftwatch.observation import OptimizerRun
from driftwatch.prometheus_api import PrometheusAPI, PrometheusAPIError
from driftwatch.windows import CallWindow

__all__ = ["PrometheusSource", "ReportError", "build_report", "write_report"]

#: windows shown on each side of a change
WINDOWS_EACH_SIDE = 30
#: changes of one agent closer than this are treated as one moment (an optimizer updating several predictors)
SAME_MOMENT_S = 1.0
#: changes that get a section of their own, by default (the most recent ones)
DEFAULT_LIMIT = 100
#: what one page embeds at most (a page must open in a browser and travel as an incident attachment): the
#: characters of one change's diff, of all diffs together, and the events listed (table rows, timeline marks)
MAX_DIFF_CHARS = 20_000
MAX_PAGE_DIFF_CHARS = 400_000
MAX_EVENTS = 2_000
_KIND_COLORS = dict(zip(KINDS, ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                                "#bcbd22", "#7f7f7f", "#393b79", "#637939"), strict=True))
_ALARM = "#d62728"
Points = list[tuple[float, float]]


def _e(value: Any) -> str:
    """Any value from the ledger, as HTML text or an attribute value (quotes escaped too)."""
    return html.escape(str(value), quote=True)


def _short(ident: Any) -> str:
    """The first 12 characters of an id, escaped (ids name anchors: ``#c-…``, ``#a-…``)."""
    return _e(str(ident)[:12])


def _kind_class(kind: str) -> str:
    """The CSS class that colours a kind (the page allows no inline ``style`` attribute)."""
    return f"k-{kind}" if kind in _KIND_COLORS else "k-unknown"


class ReportError(Exception):
    """The report cannot be built (for example Prometheus is unreachable); the message is one line."""


@dataclass(frozen=True)
class Signal:
    """One plotted behaviour signal: how to read it from a call window and, when known, from Prometheus."""

    key: str
    title: str
    unit: str
    from_window: Callable[[CallWindow], float | None]
    promql: promql.Signal | None = None  # its PromQL (driftwatch.promql), rendered for one agent


def _signal(s: promql.Signal, from_window: Callable[[CallWindow], float | None]) -> Signal:
    return Signal(s.name, s.title, s.unit, from_window, s)


SIGNALS: tuple[Signal, ...] = (
    _signal(promql.OUTPUT_CHARS, CallWindow.mean_chars),
    _signal(promql.REFUSAL, CallWindow.refusal_rate),
    _signal(promql.FORMAT_FAILURE, CallWindow.format_failure_rate),
    _signal(promql.ERROR, CallWindow.error_rate),
    _signal(promql.TOKENS_PER_CALL, CallWindow.tokens_per_call),
    _signal(promql.SCORE, lambda w: None),  # per score metric: see _score_signals
    _signal(promql.LATENCY, CallWindow.mean_duration),
)


# ----------------------------------------------------------------------------------------------
# Prometheus
# ----------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """A Prometheus API failure as the report's one-line ``--prometheus`` error."""
    try:
        yield
    except PrometheusAPIError as exc:
        raise ReportError(f"--prometheus {exc}") from None


class PrometheusSource:
    """The report's signals, queried from a Prometheus server (:class:`~driftwatch.prometheus_api.PrometheusAPI`;
    ``transport``: an httpx transport for tests)."""

    def __init__(self, url: str, *, transport: Any = None, timeout: float = 10.0, rate_window: str = "1m") -> None:
        with _one_line():
            self.api = PrometheusAPI(url, transport=transport, timeout=timeout)
        self.url = self.api.url
        self.rate_window = rate_window

    def close(self) -> None:
        self.api.close()

    def check(self) -> None:
        """Fail early, with one line, when the server is not a reachable Prometheus."""
        with _one_line():
            self.api.query("1")

    def range(self, expr: str, start: float, end: float, step: float) -> list[tuple[dict[str, str], Points]]:
        """``query_range``: one ``(labels, [(t, v), ...])`` per series (NaN points dropped)."""
        with _one_line():
            result = self.api.query_range(expr, start, end, max(step, 1.0))
        out = []
        for series in result:
            points = [(float(t), float(v)) for t, v in series.get("values", [])]
            points = [(t, v) for t, v in points if math.isfinite(v)]
            if points:
                out.append((series.get("metric", {}), points))
        return out

    def signals(self, agent: str, start: float, end: float) -> dict[str, list[tuple[str, list[tuple[float, float]]]]]:
        """Every signal's series for one agent between ``start`` and ``end`` (plus the drift scores)."""
        agent_only = (promql.matcher("agent", agent),)
        by_agent = ("agent",)  # one series: every score metric pooled, as in the call-window table
        step = max((end - start) / 120.0, 1.0)
        out: dict[str, list[tuple[str, list[tuple[float, float]]]]] = {}
        for s in SIGNALS:
            if s.promql is None:
                continue
            found = self.range(s.promql.render(agent_only, self.rate_window, by=by_agent), start, end, step)
            if found:
                out[s.key] = [(s.title, found[0][1])]
        drift = self.range(promql.DRIFT_SCORE.render(agent_only, by=("signal",)), start, end, step)
        if drift:
            out[promql.DRIFT_SCORE.name] = [(labels.get("signal", "?"), points) for labels, points in drift]
        return out


# ----------------------------------------------------------------------------------------------
# SVG
# ----------------------------------------------------------------------------------------------

def _fmt_time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _fmt_clock(ts: float, fine: bool = False) -> str:
    d = dt.datetime.fromtimestamp(ts)
    return d.strftime("%H:%M:%S") + (f".{d.microsecond // 100_000}" if fine else "")


def _fmt_num(v: float | None) -> str:
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    if abs(v) >= 0.001:
        return f"{v:.3f}"
    return f"{v:.2g}"


_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def line_plot(title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]], *, t0: float, t1: float,
              marks: Sequence[tuple[float, str, str]] = (), width: int = 330, height: int = 150) -> str:
    """An inline SVG line plot; ``marks`` are vertical lines ``(t, color, label)``."""
    left, right, top, bottom = 44, 8, 20, 22
    pw, ph = width - left - right, height - top - bottom
    values = [v for _, pts in series for _, v in pts]
    vmax = max(values) if values else 1.0
    vmin = min(0.0, min(values)) if values else 0.0
    if vmax <= vmin:
        vmax = vmin + 1.0
    vmax += (vmax - vmin) * 0.08
    span = max(t1 - t0, 1e-9)

    def x(t: float) -> float:
        return left + (t - t0) / span * pw

    def y(v: float) -> float:
        return top + ph - (v - vmin) / (vmax - vmin) * ph

    parts = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
             f'<text x="{left}" y="13" class="pt">{_e(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>',
             f'<text x="{left - 4}" y="{top + 8}" class="ax" text-anchor="end">{_fmt_num(vmax)}</text>',
             f'<text x="{left - 4}" y="{top + ph}" class="ax" text-anchor="end">{_fmt_num(vmin)}</text>',
             f'<text x="{left}" y="{height - 6}" class="ax">{_fmt_clock(t0)}</text>',
             f'<text x="{left + pw}" y="{height - 6}" class="ax" text-anchor="end">{_fmt_clock(t1)}</text>']
    for t, color, label in marks:
        if t0 <= t <= t1:
            parts.append(f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{top + ph}" stroke="{color}" '
                         f'stroke-dasharray="4 3" stroke-width="1.5"><title>{_e(label)}</title></line>')
    if not values:
        parts.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" class="ax" text-anchor="middle">no data</text>')
    for i, (name, pts) in enumerate(series):
        color = _PALETTE[i % len(_PALETTE)]
        pts = sorted(pts)
        if len(pts) > 1:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.6">'
                         f'<title>{_e(name)}</title></polyline>')
        for t, v in pts if len(pts) <= 60 else ():
            parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.2" fill="{color}">'
                         f'<title>{_e(name)} {_fmt_clock(t)}: {_fmt_num(v)}</title></circle>')
    if len(series) > 1:
        for i, (name, _) in enumerate(series[:6]):
            parts.append(f'<text x="{left + pw - 4}" y="{top + 11 + 11 * i}" class="lg" text-anchor="end" '
                         f'fill="{_PALETTE[i % len(_PALETTE)]}">{_e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def timeline(agents: Sequence[str], changes: Sequence[Change], alarms: Sequence[Alarm],
             runs: Sequence[OptimizerRun], t0: float, t1: float, width: int = 1100) -> str:
    """The timeline SVG: one row per agent with runs (bars), changes (dots) and alarms (triangles)."""
    left, right, row, top = 150, 40, 34, 10
    height = top + row * max(len(agents), 1) + 28
    pw = width - left - right
    span = max(t1 - t0, 1e-9)

    def x(t: float) -> float:
        return left + (min(max(t, t0), t1) - t0) / span * pw

    rows = {a: top + row * i + row / 2 for i, a in enumerate(agents)}
    parts = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline">']
    for a, cy in rows.items():
        parts.append(f'<text x="{left - 8}" y="{cy + 4}" class="ag" text-anchor="end">{_e(a)}</text>'
                     f'<line x1="{left}" y1="{cy}" x2="{left + pw}" y2="{cy}" class="lane"/>')
    for r in runs:
        cy = rows.get(r.agent)
        if cy is None:
            continue
        x0, x1 = x(r.started_at), x(r.ended_at or t1)
        parts.append(f'<rect x="{x0:.1f}" y="{cy - 9}" width="{max(x1 - x0, 3):.1f}" height="18" class="run">'
                     f'<title>{_e(r.optimizer)} run ({_e(r.outcome)}), {_e(r.candidates)} candidates, '
                     f'best {_fmt_num(r.best_score)}</title></rect>')
    for c in changes:
        cy = rows.get(c.agent)
        if cy is None:
            continue
        color = _KIND_COLORS.get(c.kind, "#333")
        parts.append(f'<a href="#c-{_short(c.id)}"><circle cx="{x(c.timestamp):.1f}" cy="{cy}" r="6" fill="{color}" '
                     f'stroke="#fff"><title>{_e(f"{c.component}: {c.kind} by {c.source}")} '
                     f'{_fmt_time(c.timestamp)}</title></circle></a>')
    for a in alarms:
        cy = rows.get(a.agent)
        if cy is None:
            continue
        ax = x(a.timestamp)
        parts.append(f'<a href="#a-{_short(a.id)}"><path d="M{ax:.1f},{cy - 15} l6,10 h-12 z" fill="{_ALARM}">'
                     f'<title>drift alarm: {_e(a.signal)} (score {a.score:.2f}) '
                     f'{_fmt_time(a.timestamp)}</title></path></a>')
    axis_y = height - 10
    for i in range(5):
        t = t0 + span * i / 4
        parts.append(f'<text x="{x(t):.1f}" y="{axis_y}" class="ax" text-anchor="middle">'
                     f'{_fmt_clock(t, fine=span < 20)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# ----------------------------------------------------------------------------------------------
# the page
# ----------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d232b;background:#f6f7f9}
header{background:#1d232b;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c9d1d9}main{padding:10px 28px 40px;max-width:1180px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:14px 18px;margin:16px 0}
h2{font-size:17px;margin:0 0 10px}h3{font-size:15px;margin:0 0 6px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;
border-bottom:1px solid #eceff3;vertical-align:top}th{color:#57606a;font-weight:600}
code,pre{font:12px/1.4 ui-monospace,"SFMono-Regular",Menlo,monospace}
pre.diff{background:#f6f8fa;border:1px solid #e1e4e8;padding:8px;overflow-x:auto;max-height:420px}
.add{color:#116329;background:#dafbe1;display:block}.del{color:#82071e;background:#ffebe9;display:block}
.hunk{color:#8250df;display:block}
.kind{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:12px}
.alarm{color:#d62728;font-weight:600}.plots{display:flex;flex-wrap:wrap;gap:10px;margin-top:8px}
.plot .frame{fill:#fbfcfd;stroke:#d0d7de}.plot .pt{font-size:12px;font-weight:600;fill:#1d232b}
.ax{font-size:10px;fill:#57606a}.lg{font-size:10px}.ag{font-size:12px;fill:#1d232b}
.lane{stroke:#d0d7de}.run{fill:#bcd7f5;stroke:#5b8fd1}.muted{color:#57606a}.delta{font-weight:600}
.legend span{margin-right:12px;font-size:12px}.cards{display:flex;gap:14px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:22px}
""" + "".join(f".k-{kind}{{background:{color}}}" for kind, color in _KIND_COLORS.items()) \
    + ".k-unknown{background:#333}\n"
#: the page's Content-Security-Policy: no script, no request to anywhere, only its own stylesheet (by hash)
CSP = ("default-src 'none'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
       f"style-src 'sha256-{base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()}'")


def _capped_diff(diff: str, budget: int) -> tuple[str, int]:
    """The diff cut (at a line end) to at most :data:`MAX_DIFF_CHARS` and ``budget`` characters, with a last line
    saying what was left out; and how many characters were left out."""
    limit = min(MAX_DIFF_CHARS, max(budget, 0))
    if len(diff) <= limit:
        return diff, 0
    cut = diff.rfind("\n", 0, limit) + 1
    left = diff[cut:]
    note = (f"… {left.count(chr(10)) + 1:,} more lines ({len(left):,} characters) left out of this page: "
            "`driftwatch show <change id>` prints the whole diff")
    return diff[:cut] + note, len(left)


def _diff_html(diff: str) -> str:
    lines = []
    for line in diff.splitlines():
        esc = _e(line)
        if line.startswith("+") and not line.startswith("+++"):
            lines.append(f'<span class="add">{esc}</span>')
        elif line.startswith("-") and not line.startswith("---"):
            lines.append(f'<span class="del">{esc}</span>')
        elif line.startswith("@@"):
            lines.append(f'<span class="hunk">{esc}</span>')
        else:
            lines.append(esc + "\n")
    return '<pre class="diff">' + "".join(lines) + "</pre>"


def _pool(windows: Sequence[CallWindow]) -> CallWindow | None:
    """All ``windows`` summed into one (so a 3-call window weighs 3 calls, not as much as a full one)."""
    if not windows:
        return None
    total = CallWindow(windows[0].agent, windows[0].start, windows[-1].end)
    for w in windows:
        for name in ("calls", "errors", "duration_s", "output_chars", "sized_calls", "input_tokens", "output_tokens",
                     "refusals", "format_failures", "checked_calls"):
            setattr(total, name, getattr(total, name) + getattr(w, name))
        for tool, n in w.tools.items():
            total.tools[tool] = total.tools.get(tool, 0) + n
        for metric, (v, n) in w.scores.items():
            acc = total.scores.setdefault(metric, [0.0, 0.0])
            acc[0] += v
            acc[1] += n
    return total


def _around(windows: Sequence[CallWindow], change: Change,
            changes: Sequence[Change]) -> tuple[list[CallWindow], list[CallWindow]]:
    """The agent's windows between its previous change and this one, and between this one and the next."""
    times = sorted(c.timestamp for c in changes if c.agent == change.agent)
    # changes made together (one optimizer run updating several predictors) share their windows
    prev = max((t for t in times if t < change.timestamp - SAME_MOMENT_S), default=float("-inf"))
    nxt = min((t for t in times if t > change.timestamp + SAME_MOMENT_S), default=float("inf"))
    before = [w for w in windows if prev <= w.start and w.end <= change.timestamp][-WINDOWS_EACH_SIDE:]
    after = [w for w in windows if change.timestamp <= w.start and w.end <= nxt][:WINDOWS_EACH_SIDE]
    return before, after


def _score_signals(windows: Sequence[CallWindow]) -> list[Signal]:
    """One signal per score metric recorded in ``windows`` (``record_score(metric=...)``)."""
    metrics = sorted({m for w in windows for m in w.scores})
    return [Signal(f"score:{m}", f"score {m}", "mean", lambda w, m=m: w.mean_score(m), None) for m in metrics]


def _tool_series(windows: Sequence[CallWindow]) -> list[tuple[str, list[tuple[float, float]]]]:
    tools = sorted({t for w in windows for t in w.tools})
    out = []
    for tool in tools[:6]:
        pts = [((w.start + w.end) / 2, w.tools.get(tool, 0) / w.calls) for w in windows if w.calls]
        out.append((tool, pts))
    return out


def _change_section(change: Change, diff: str | None, windows: Sequence[CallWindow], all_changes: Sequence[Change],
                    alarms: Sequence[Alarm], prom: dict[str, Any] | None) -> str:
    color = _KIND_COLORS.get(change.kind, "#333")
    rows = [("agent", _e(change.agent)), ("component", _e(change.component)),
            ("kind", f'<span class="kind {_kind_class(change.kind)}">{_e(change.kind)}</span>'),
            ("source", _e(change.source) + (f" (node {_e(change.node)})" if change.node else "")),
            ("time", _fmt_time(change.timestamp)),
            ("revisions", f"<code>{_short(change.before_id or '')}</code> → <code>{_short(change.after_id)}</code>"),
            ("magnitude", f"{change.magnitude:.3f}"),
            ("paths", _e(", ".join(change.paths[:8]) + (" …" if len(change.paths) > 8 else "")))]
    if change.run_id:
        rows.append(("optimizer run", f"<code>{_short(change.run_id)}</code>"))
    if change.status != "applied":  # a guard acted on it (docs/guardrails.md)
        reason = change.attributes.get("guard_reason")
        rows.append(("status", f"<strong>{html.escape(change.status)}</strong>"
                               + (f" ({html.escape(str(reason))})" if reason else "")))
    if change.trace_id:
        rows.append(("trace", f"<code>{_e(change.trace_id)}</code>"))
    anchored = [a for a in alarms if a.anchor_change_id == change.id]
    if anchored:
        rows.append(("drift alarms", ", ".join(
            f'<a class="alarm" href="#a-{_short(a.id)}">{_e(a.signal)}</a>' for a in anchored)))
    out = [f'<section id="c-{_short(change.id)}"><h2>Change <code>{_short(change.id)}</code> — '
           f'{_e(change.agent)} / {_e(change.component)}</h2><table>']
    out += [f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows]
    out.append("</table>")

    before, after = _around(windows, change, all_changes)
    shown = before + after
    if shown:
        t0, t1 = shown[0].start, max(shown[-1].end, change.timestamp)
        pad = max((t1 - t0) * 0.02, 0.5)
        t0, t1 = t0 - pad, t1 + pad
        marks = [(c.timestamp, _KIND_COLORS.get(c.kind, "#333"), f"change {c.id[:12]} ({c.kind})")
                 for c in all_changes if c.agent == change.agent and t0 <= c.timestamp <= t1]
        marks += [(a.timestamp, _ALARM, f"alarm {a.signal}") for a in alarms
                  if a.agent == change.agent and t0 <= a.timestamp <= t1]
        out.append("<h3>Behaviour before → after (call windows from the ledger)</h3><table><tr><th>signal</th>"
                   f"<th>before ({sum(w.calls for w in before)} calls)</th>"
                   f"<th>after ({sum(w.calls for w in after)} calls)</th><th>change</th></tr>")
        plots = []
        pooled_before, pooled_after = _pool(before), _pool(after)
        for s in (*SIGNALS, *_score_signals(shown)):
            b = s.from_window(pooled_before) if pooled_before is not None else None
            a = s.from_window(pooled_after) if pooled_after is not None else None
            if b is None and a is None:
                continue
            ratio = f"×{a / b:.2f}" if a is not None and b else "–"
            out.append(f"<tr><td>{_e(s.title)} <span class='muted'>({_e(s.unit)})</span></td><td>{_fmt_num(b)}</td>"
                       f"<td>{_fmt_num(a)}</td><td class='delta'>{ratio}</td></tr>")
            pts = [((w.start + w.end) / 2, v) for w in shown if (v := s.from_window(w)) is not None]
            plots.append(line_plot(f"{s.title} ({s.unit})", [(s.title, pts)], t0=t0, t1=t1, marks=marks))
        tool_series = _tool_series(shown)
        if tool_series:
            plots.append(line_plot("tool mix (share of calls)", tool_series, t0=t0, t1=t1, marks=marks))
        out.append("</table>")
        out.append('<div class="plots">' + "".join(plots) + "</div>")
    else:
        out.append('<p class="muted">No call windows around this change in the ledger '
                   "(calls are recorded by <code>@driftwatch.watch</code> and the integrations).</p>")
    if prom:
        t0p, t1p, data = prom["t0"], prom["t1"], prom["series"]
        marks = [(change.timestamp, color, f"change {change.id[:12]}")]
        titles = {s.key: s.title for s in SIGNALS} | {promql.DRIFT_SCORE.name: promql.DRIFT_SCORE.title}
        plots = [line_plot(f"{titles.get(key, key)} (Prometheus)", series, t0=t0p, t1=t1p, marks=marks)
                 for key, series in data.items()]
        out.append("<h3>From Prometheus</h3>")
        out.append('<div class="plots">' + "".join(plots) + "</div>" if plots else
                   '<p class="muted">Prometheus has no driftwatch series for this agent in this interval.</p>')
    if diff is not None:
        out.append("<details open><summary>Diff</summary>" + _diff_html(diff) + "</details>")
    out.append("</section>")
    return "".join(out)


def build_report(ledger: Ledger, *, agent: str | None = None, since: float | None = None,
                 prometheus: PrometheusSource | None = None, diffs: bool = True, limit: int = DEFAULT_LIMIT,
                 title: str = "driftwatch report", now: float | None = None) -> str:
    """The report page for what ``ledger`` holds (optionally one agent, since a time) as an HTML string.

    Every change is on the timeline and in the events table; the last ``limit`` changes get a section
    with their diff and plots.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"build_report(limit={limit!r}): expected a whole number >= 0")
    now = time.time() if now is None else now
    changes = ledger.changes(agent=agent, since=since)
    alarms = ledger.alarms(agent=agent, since=since)
    runs = ledger.runs(agent=agent, since=since)
    windows = ledger.windows(agent=agent, since=since)
    baselines = [c for c in ledger.changes(agent=agent, since=since, baselines=True) if c.is_baseline]
    agents = sorted({c.agent for c in (*changes, *baselines)} | {a.agent for a in alarms} | {r.agent for r in runs}
                    | {w.agent for w in windows})
    times = [c.timestamp for c in (*changes, *baselines)] + [a.timestamp for a in alarms] + \
            [r.started_at for r in runs] + [r.ended_at for r in runs if r.ended_at] + \
            [w.start for w in windows] + [w.end for w in windows]
    t0, t1 = (min(times), max(times)) if times else (now - 3600, now)
    if t1 - t0 < 1.0:
        t0, t1 = t0 - 1.0, t1 + 1.0

    by_agent: dict[str, list[CallWindow]] = {}
    for w in windows:
        by_agent.setdefault(w.agent, []).append(w)

    p: list[str] = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
                    f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
                    "<meta name='viewport' content='width=device-width, initial-scale=1'>",
                    f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
                    f"<header><h1>{_e(title)}</h1><p>ledger <code>{_e(ledger.location)}</code>"
                    f"{' · agent ' + _e(agent) if agent else ''} · {_fmt_time(t0)} – {_fmt_time(t1)}"
                    f" · generated {_fmt_time(now)} by driftwatch {__version__}</p></header><main>"]
    calls = sum(w.calls for w in windows)
    p.append('<div class="cards">' + "".join(
        f'<div class="card"><b>{n}</b>{label}</div>' for n, label in
        ((len(agents), "agents"), (len(changes), "changes"), (len(runs), "optimizer runs"),
         (len(alarms), "drift alarms"), (f"{calls:,}", "calls in windows"))) + "</div>")

    p.append("<section id='timeline'><h2>Timeline</h2>")
    if agents:
        p.append(timeline(agents, changes[-MAX_EVENTS:], alarms[-MAX_EVENTS:], runs[-MAX_EVENTS:], t0, t1))
        kinds = sorted({c.kind for c in changes})
        p.append('<div class="legend">' + "".join(
            f'<span><span class="kind {_kind_class(k)}">{_e(k)}</span></span>'
            for k in kinds) + '<span class="alarm">▲ drift alarm</span><span>▭ optimizer run</span></div>')
    else:
        p.append("<p class='muted'>The ledger holds nothing yet.</p>")
    p.append("</section>")

    events: list[tuple[float, str]] = []
    for c in changes:
        events.append((c.timestamp, f"<tr><td>{_fmt_time(c.timestamp)}</td><td><a href='#c-{_short(c.id)}'>change</a>"
                                    f"</td><td>{_e(c.agent)}</td><td>{_e(c.component)}: "
                                    f"{_e(c.kind)} by {_e(c.source)}, magnitude "
                                    f"{c.magnitude:.3f}</td></tr>"))
    for a in alarms:
        anchor = f" — anchored at change <a href='#c-{_short(a.anchor_change_id)}'>{_short(a.anchor_change_id)}</a>" \
            if a.anchor_change_id else ""
        events.append((a.timestamp, f"<tr id='a-{_short(a.id)}'><td>{_fmt_time(a.timestamp)}</td>"
                                    f"<td class='alarm'>drift alarm</td><td>{_e(a.agent)}</td>"
                                    f"<td>signal <b>{_e(a.signal)}</b>, score {a.score:.2f}, "
                                    f"{_e(a.calls_since_anchor)} calls after the change{anchor}</td></tr>"))
    for r in runs:
        duration = f", {r.ended_at - r.started_at:.1f} s" if r.ended_at else ""
        events.append((r.started_at, f"<tr><td>{_fmt_time(r.started_at)}</td><td>optimizer run</td>"
                                     f"<td>{_e(r.agent)}</td><td>{_e(r.optimizer)} "
                                     f"({_e(r.outcome)}{duration}), {_e(r.candidates)} candidates, best "
                                     f"score {_fmt_num(r.best_score)}</td></tr>"))
    if events:
        shown = sorted(events, key=lambda e: e[0])[-MAX_EVENTS:]
        more = (f"<p class='muted'>The timeline and this table show the last {len(shown):,} of {len(events):,} "
                "events (<code>driftwatch history</code> lists them all).</p>") if len(shown) < len(events) else ""
        p.append("<section id='events'><h2>Events</h2>" + more + "<table><tr><th>time</th><th>event</th>"
                 "<th>agent</th><th>detail</th></tr>" + "".join(row for _, row in shown) + "</table></section>")

    detailed = changes[-limit:] if limit else []
    if len(detailed) < len(changes):
        p.append(f"<p class='muted'>Sections below cover the last {len(detailed)} of {len(changes)} changes "
                 "(<code>--limit</code> to show more).</p>")
    budget, cut = MAX_PAGE_DIFF_CHARS, 0
    sections: list[str] = []
    for c in detailed:
        diff = None
        if diffs:
            try:
                diff = ledger.diff(c.before_id, c.after_id)
            except KeyError as exc:
                diff = f"(diff unavailable: {exc.args[0]})"
            diff, left = _capped_diff(diff, budget)
            budget -= len(diff)
            cut += left
        prom = None
        if prometheus is not None:
            around = by_agent.get(c.agent, [])
            before, after = _around(around, c, changes)
            half = max(c.timestamp - before[0].start if before else 0.0,
                       after[-1].end - c.timestamp if after else 0.0, 60.0)
            p0, p1 = c.timestamp - half, min(c.timestamp + half, now)
            prom = {"t0": p0, "t1": max(p1, c.timestamp + 1.0), "series": prometheus.signals(c.agent, p0, p1)}
        sections.append(_change_section(c, diff, by_agent.get(c.agent, []), changes, alarms, prom))
    if cut:
        p.append(f"<p class='muted'>{cut:,} characters of diffs are left out of this page (at most "
                 f"{MAX_DIFF_CHARS:,} per change and {MAX_PAGE_DIFF_CHARS:,} in all; each cut diff says so): "
                 "<code>driftwatch show CHANGE_ID</code> prints a whole diff.</p>")
    p.extend(sections)
    p.append("</main></body></html>")
    return "\n".join(p)


def write_report(out: str, ledger: Ledger, *, file_mode: int = DEFAULT_MODE, **kwargs: Any) -> int:
    """Build the report and write it to ``out`` (a new file gets ``file_mode``: it holds prompts); returns the
    number of bytes written."""
    page = build_report(ledger, **kwargs).encode("utf-8")
    with open_private(out, "wb", file_mode) as fh:
        fh.write(page)
    return len(page)
