"""``driftwatch history`` and ``driftwatch show``: read the ledger (changes, optimizer runs, drift alarms, guard
actions)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from driftwatch.cli._common import LEDGER_HELP, CLIError, fmt_time, open_for_reading, parse_time
from driftwatch.ledger import Ledger, is_id

if TYPE_CHECKING:
    from driftwatch.alarm import Alarm
    from driftwatch.change import Change
    from driftwatch.observation import OptimizerRun

__all__ = ["cmd_history", "cmd_show", "register"]


# -- history ------------------------------------------------------------------------------------

def _entries(ledger: Ledger, args: argparse.Namespace) -> list[dict[str, Any]]:
    since = parse_time(args.since) if args.since else None
    rows: list[dict[str, Any]] = []
    held = getattr(args, "held", False)
    for c in ledger.changes(agent=args.agent, component=args.component, since=since, baselines=args.baselines,
                            status="held" if held else None):
        rows.append({
            "type": "baseline" if c.is_baseline else "change", "id": c.id, "time": c.timestamp, "agent": c.agent,
            "component": c.component, "kind": c.kind, "source": c.source, "magnitude": c.magnitude,
            "paths": list(c.paths), "revision_before": c.before_id, "revision_after": c.after_id,
            "trace_id": c.trace_id, "run_id": c.run_id, "node": c.node, "status": c.status,
            "reason": c.attributes.get("guard_reason"),
        })
    if args.component is None and not held:
        for g in ledger.guard_actions(agent=args.agent, since=since):
            rows.append({
                "type": "guard", "id": g.id, "time": g.timestamp, "agent": g.agent, "action": g.action,
                "component": g.component or "-", "change_id": g.change_id, "revision": g.revision_id,
                "reason": g.reason, "origin": g.origin,
            })
        for a in ledger.alarms(agent=args.agent, since=since):
            rows.append({
                "type": "alarm", "id": a.id, "time": a.timestamp, "agent": a.agent, "signal": a.signal,
                "score": a.score, "anchor_change_id": a.anchor_change_id, "trace_id": a.trace_id,
                "calls_since_anchor": a.calls_since_anchor,
            })
        for r in ledger.runs(agent=args.agent, since=since):
            rows.append({
                "type": "optimizer_run", "id": r.id, "time": r.started_at, "agent": r.agent,
                "optimizer": r.optimizer, "outcome": r.outcome, "candidates": r.candidates,
                "best_score": r.best_score, "ended_at": r.ended_at,
            })
    rows.sort(key=lambda e: (e["time"], e["id"]))
    if args.limit is not None:
        rows = rows[-args.limit:] if args.limit > 0 else []
    return rows


def _describe(e: dict[str, Any]) -> tuple[str, str, str]:
    """(what, by, detail) columns of a history row."""
    if e["type"] in ("change", "baseline"):
        before = (e["revision_before"] or "")[:8] or "-"
        detail = f"{before} -> {e['revision_after'][:8]}"
        if e["type"] == "change":
            detail += f"  mag {e['magnitude']:.3f}  {', '.join(e['paths'][:3])}"
            if len(e["paths"]) > 3:
                detail += f" (+{len(e['paths']) - 3})"
        by = e["source"] + (f"/{e['node']}" if e.get("node") else "")
        status = e.get("status", "applied")
        if status != "applied":
            detail = f"[{status.upper()}] {detail}"
            if status == "held":
                detail += f"  (driftwatch approve {e['id'][:12]})"
        return f"{e['type']} {e['kind']}", by, detail
    if e["type"] == "guard":
        detail = e["reason"] or ""
        if e.get("change_id"):
            detail = f"change {e['change_id'][:12]}  {detail}"
        if e.get("revision"):
            detail += f"  serving {e['revision'][:8]}"
        return f"GUARD {e['action']}", (e.get("origin") or "-").split("@", 1)[0], detail
    if e["type"] == "alarm":
        anchor = (e["anchor_change_id"] or "-")[:12]
        detail = f"score {e['score']:.2f}  anchor {anchor}  after {e['calls_since_anchor']} calls"
        return f"ALARM {e['signal']}", "drift", detail
    score = "-" if e["best_score"] is None else f"{e['best_score']:.3f}"
    return f"run {e['outcome']}", e["optimizer"], f"{e['candidates']} candidates  best {score}"


def cmd_history(args: argparse.Namespace) -> int:
    ledger = open_for_reading(args)
    try:
        rows = _entries(ledger, args)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    if not rows:
        print("no entries" + (" matching the filters" if (args.agent or args.component or args.since) else ""))
        return 0
    table = [("TIME", "ID", "AGENT", "COMPONENT", "EVENT", "BY", "DETAIL")]
    for e in rows:
        what, by, detail = _describe(e)
        table.append((fmt_time(e["time"]), e["id"][:12], e["agent"], e.get("component", "-"), what, by, detail))
    widths = [max(len(r[i]) for r in table) for i in range(6)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + r[6])
    return 0


# -- show ---------------------------------------------------------------------------------------

def cmd_show(args: argparse.Namespace) -> int:
    """One entry by id (or a unique prefix): a change with its diff, an optimizer run with its candidates
    and changes, or a drift alarm with the change it is anchored at."""
    ledger = open_for_reading(args)
    try:
        for get, show in ((ledger.change, _print_change), (ledger.run, _print_run), (ledger.alarm, _print_alarm)):
            try:
                entry = get(args.change_id)
            except KeyError as exc:
                if "ambiguous" in str(exc.args[0]) or "too short" in str(exc.args[0]):
                    raise CLIError(str(exc.args[0])) from None
                continue
            show(ledger, entry)
            return 0
        raise CLIError(f"no change, optimizer run or alarm {args.change_id!r} in {ledger.location}")
    finally:
        ledger.close()


def _print_change(ledger: Ledger, change: Change) -> None:
    diff = ledger.diff(change.before_id, change.after_id)
    print(f"change     {change.id}")
    print(f"agent      {change.agent}")
    print(f"component  {change.component}")
    print(f"kind       {change.kind}")
    print(f"source     {change.source}" + (f" (node {change.node})" if change.node else ""))
    print(f"time       {fmt_time(change.timestamp)}")
    print(f"revisions  {change.before_id or '(baseline)'} -> {change.after_id}")
    if change.status != "applied":
        reason = change.attributes.get("guard_reason")
        print(f"status     {change.status}" + (f" ({reason})" if reason else ""))
    if not change.is_baseline:
        print(f"magnitude  {change.magnitude:.3f}")
        print(f"paths      {', '.join(change.paths)}")
    if change.run_id:
        print(f"run        {change.run_id}")
    if change.trace_id:
        print(f"trace      {change.trace_id}")
    print()
    sys.stdout.write(diff)
    if change.status == "held":
        print()
        print(f"driftwatch approve {change.id[:12]}   # let it take effect in every process of {change.agent}")
        print(f"driftwatch reject {change.id[:12]}    # keep serving {(change.before_id or '-')[:12]}")


def _print_run(ledger: Ledger, run: OptimizerRun) -> None:
    best = "-" if run.best_score is None else f"{run.best_score:.3f}"
    print(f"optimizer run  {run.id}")
    print(f"agent          {run.agent}")
    print(f"optimizer      {run.optimizer}")
    print(f"outcome        {run.outcome}" + (f" ({run.error_type})" if run.error_type else ""))
    ended = f" -> {fmt_time(run.ended_at)}" if run.ended_at else ""
    print(f"time           {fmt_time(run.started_at)}{ended}")
    print(f"candidates     {run.candidates}, best score {best}")
    if run.trace_id:
        print(f"trace          {run.trace_id}")
    candidates = ledger.candidates(run.id)
    restorable = False
    if candidates:
        print()
        table = [("#", "SCORE", "REVISION", "RESTORABLE")]
        for c in candidates:
            rid = c.get("revision_id") or ""
            score = "-" if c.get("score") is None else f"{c['score']:.3f}"
            stored = bool(rid) and ledger.revision(rid) is not None
            restorable = restorable or stored
            table.append((str(c["index"]), score, rid[:16] or "-", "yes" if stored else "no"))
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        for r in table:
            print("  ".join(col.ljust(w) for col, w in zip(r, widths, strict=True)).rstrip())
    changes = [c for c in ledger.changes(agent=run.agent) if c.run_id == run.id]
    if changes:
        print()
        for c in changes:
            print(f"change {c.id[:12]}  {c.component}  {c.kind}  {(c.before_id or '-')[:8]} -> {c.after_id[:8]}  "
                  f"mag {c.magnitude:.3f}")
    if restorable:
        print()
        print("restore a candidate onto a DSPy program: "
              "driftwatch.integrations.dspy.restore(program, \"<REVISION>\")")


def _print_alarm(ledger: Ledger, alarm: Alarm) -> None:
    lines: list[tuple[str, str]] = [
        ("drift alarm", alarm.id), ("agent", alarm.agent), ("signal", alarm.signal),
        ("score", f"{alarm.score:.2f} (1.00 = threshold)"), ("time", fmt_time(alarm.timestamp)),
        ("calls", f"{alarm.calls_since_anchor} after the anchor"),
    ]
    if alarm.trace_id:
        lines.append(("trace", alarm.trace_id))
    for key in ("reference", "reference_calls", "false_alarm_rate", "later_changes"):
        if key in alarm.attributes:
            lines.append((key.replace("_", " "), str(alarm.attributes[key])))
    hint = None
    if alarm.anchor_change_id:
        try:
            anchor = ledger.change(alarm.anchor_change_id)
        except KeyError:
            lines.append(("anchor", f"{alarm.anchor_change_id} (not in this ledger)"))
        else:
            lines.append(("anchor", f"change {anchor.id} ({anchor.component}, {anchor.kind}, by {anchor.source})"))
            hint = f"driftwatch show {anchor.id[:12]}   # the anchor's diff"
    for label, value in lines:
        print(f"{label:<17}{value}")
    print()
    if hint:
        print(hint)
    print(f"driftwatch accept {alarm.agent}   # accept the new behaviour as the reference (clears the alarm)")
    print(f"driftwatch rollback {alarm.agent} --alarm {alarm.id[:12]}   # back to the revisions before its anchor")


def _entry_id(text: str) -> str:
    """``show``'s ID: letters and digits only (ids are hex), so that ``%`` or ``_`` never act as wildcards."""
    if not text or not is_id(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an id: give an id or its first characters (letters and "
                                         "digits, such as 3f2a9c01)")
    return text


def register(sub: Any) -> None:
    """Add ``driftwatch history`` and ``driftwatch show`` to the CLI's subcommands."""
    h = sub.add_parser("history", help="list changes, alarms, optimizer runs and guard actions")
    h.add_argument("--ledger", help=LEDGER_HELP)
    h.add_argument("--agent", help="only this agent")
    h.add_argument("--component", help="only this component (changes only)")
    h.add_argument("--since", help="only entries since a duration ago (30m, 2h, 7d) or a date")
    h.add_argument("--limit", type=int, help="only the last N entries")
    h.add_argument("--baselines", action="store_true", help="include each component's first sighting")
    h.add_argument("--held", action="store_true", help="only changes held for approval (driftwatch approve)")
    h.add_argument("--json", action="store_true", help="print JSON instead of a table")
    h.set_defaults(func=cmd_history)

    s = sub.add_parser("show", help="show a change and its diff, an optimizer run and its candidates, or an alarm")
    s.add_argument("change_id", metavar="ID", type=_entry_id,
                   help="a change, optimizer run or alarm id, or a unique prefix (4+ characters)")
    s.add_argument("--ledger", help=LEDGER_HELP)
    s.set_defaults(func=cmd_show)
