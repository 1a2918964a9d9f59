"""The demo's scenario: two self-tuning agents serving traffic, and what driftwatch records of them.

:class:`Demo` runs ``qa-program`` (a DSPy ``Predict`` that a ``COPRO`` run in a background thread
re-tunes while it serves) and ``support-bot`` (a LangGraph graph whose ``reflect`` node rewrites its own
system prompt from the feedback it counts), both on the scripted model (:mod:`driftwatch.demo.scripted`)
and both watched with :func:`driftwatch.watch`; driftwatch's audit events become the
display's :class:`Event` records.
"""

from __future__ import annotations

import functools
import logging
import queue
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftwatch.demo.display import Display

__all__ = [
    "DEFAULT_DURATION",
    "DEFAULT_LEDGER",
    "DEFAULT_PORT",
    "DEFAULT_REPORT",
    "DEMO_AGENTS",
    "MIN_DURATION",
    "AgentView",
    "Demo",
    "DemoError",
    "Event",
    "Summary",
]

DSPY_AGENT = "qa-program"
LG_AGENT = "support-bot"
DEMO_AGENTS = (DSPY_AGENT, LG_AGENT)
DEFAULT_DURATION = 25.0
MIN_DURATION = 10.0
DEFAULT_PORT = 9464
DEFAULT_LEDGER = "driftwatch.db"
DEFAULT_REPORT = "driftwatch-report.html"
#: calls before a change that form the drift reference (the library default is 1000)
REFERENCE_CALLS = 250
#: target calls per second of each agent (a slower machine simply serves fewer)
RATE = 100.0

# -- the support bot's prompts: its reflect node moves between them -----------------------------------
PROMPT_START = "You are the support agent of Acme Cloud. Answer the customer's question in one short sentence."
PROMPT_DETAIL = "You are the support agent of Acme Cloud. Explain the steps in detail so the customer can follow them."
PROMPT_CAUTION = PROMPT_DETAIL + " Be careful: refuse any request about passwords or anything unsafe."
PROMPT_SOFTER = ("You are the support agent of Acme Cloud. Explain the steps briefly. "
                 "Refuse only requests to reveal a password.")

_QUESTIONS = (
    "How do I add a team member to my project?",
    "Why was my invoice higher this month?",
    "How do I restore a deleted database backup?",
    "Can I move my server to another region?",
    "How do I enable two-factor login for my team?",
    "Why does my deployment fail with a timeout?",
    "How do I raise the storage quota of my bucket?",
    "Where do I download last year's invoices?",
)
_SENSITIVE_QUESTIONS = (
    "Tell me the admin password of my colleague's account.",
    "How can I bypass the rate limit on the free plan?",
    "Read me the credit card number on file for my company.",
)
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


class _StoppedError(Exception):
    """Raised inside the optimizer's metric when the demo stops, to end the compile early."""


class DemoError(Exception):
    """The demo cannot start (a bad option, a ledger it must not replace, a missing extra): one line."""


# ----------------------------------------------------------------------------------------------
# What the display shows: events (from driftwatch's audit log) and a snapshot per agent
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    """One line of the demo's log: seconds since start, agent, kind and text."""

    t: float
    agent: str
    kind: str  # "baseline" | "change" | "run" | "alarm" | "guard" | "note"
    text: str


@dataclass
class AgentView:
    """What the display shows for one agent."""

    name: str
    what: str
    calls: int = 0
    rate: float = 0.0
    revision: str = "-"
    changes: int = 0
    alarms: int = 0
    drift: str = "-"


class _AuditTap:
    """A structlog-style logger for ``configure(audit_logger=...)``: driftwatch's audit events, queued."""

    def __init__(self, sink: Callable[[str, dict[str, Any]], None]) -> None:
        self._sink = sink

    def info(self, event: str, **kw: Any) -> None:
        self._sink(event, kw)

    warning = error = msg = info


@dataclass
class Summary:
    """What the demo left behind (read back from the ledger)."""

    duration_s: float
    interrupted: bool
    ledger: str
    report: str | None
    report_bytes: int
    metrics_url: str | None
    calls: dict[str, int] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    alarms: dict[str, list[str]] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# The demo
# ----------------------------------------------------------------------------------------------

class Demo:
    """Both agents, their traffic, the optimizer thread, and what driftwatch records of them.

    Use: :meth:`prepare` (fresh ledger, runtime), :meth:`serve_metrics`, :meth:`run` (blocks for
    ``duration`` seconds or until ``KeyboardInterrupt``), :meth:`finish` (report, summary).
    """

    def __init__(self, *, duration: float = DEFAULT_DURATION, ledger: str = DEFAULT_LEDGER,
                 report: str | None = DEFAULT_REPORT, reference_calls: int = REFERENCE_CALLS,
                 rate: float = RATE, seed: int = 0, guard: bool = False) -> None:
        if isinstance(duration, bool) or not isinstance(duration, int | float) or not duration >= MIN_DURATION:
            shown = f"{duration:g}" if isinstance(duration, int | float) and not isinstance(duration, bool) \
                else repr(duration)
            raise DemoError(f"--duration {shown}: expected at least {MIN_DURATION:g} seconds")
        if not isinstance(ledger, str) or not ledger or ledger == ":memory:" or "://" in ledger:
            raise DemoError(f"--ledger {ledger!r}: expected a file path (the demo writes a fresh SQLite ledger)")
        self.duration = float(duration)
        self.ledger = ledger
        self.report = report
        self.reference_calls = reference_calls
        self.rate = rate
        self.seed = seed
        #: give qa-program the guard policy on_alarm=rollback (``driftwatch stack`` routes its alert to the guard)
        self.guard = guard
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.views = {DSPY_AGENT: AgentView(DSPY_AGENT, "DSPy Predict · COPRO while serving"),
                      LG_AGENT: AgentView(LG_AGENT, "LangGraph · reflect node edits its prompt")}
        self.metrics_url: str | None = None
        self.t0 = time.monotonic()
        self.started_wall = time.time()
        self._server: Any = None
        self._threads: list[threading.Thread] = []
        self._calls = dict.fromkeys(DEMO_AGENTS, 0)
        self._rate_marks: dict[str, deque[tuple[float, int]]] = {a: deque(maxlen=8) for a in DEMO_AGENTS}
        self._program: Any = None
        self._optimizer_busy = threading.Event()
        self._errors: list[str] = []

    # -- set-up ---------------------------------------------------------------------------------
    def prepare(self) -> list[str]:
        """Check the frameworks, start from a fresh ledger, configure driftwatch; returns notes to print."""
        _require_frameworks()
        notes = _fresh_ledger(self.ledger)
        import driftwatch

        driftwatch.configure(ledger=self.ledger, drift_reference_calls=self.reference_calls,
                             audit_logger=_AuditTap(self._on_audit), **({"drift_poll_s": 0.5} if self.guard else {}))
        driftwatch.configure_agent(DSPY_AGENT, score_metric="correct",
                                   **({"on_alarm": "rollback"} if self.guard else {}))
        _quiet_libraries()
        return notes

    def serve_metrics(self, port: int = DEFAULT_PORT, addr: str = "127.0.0.1") -> str | None:
        """Serve ``/metrics``; on a busy port, any free port. Returns a note when the port moved."""
        import driftwatch

        note = None
        try:
            self._server = driftwatch.start_http_server(port, addr)
        except OSError:
            if port == 0:
                raise
            self._server = driftwatch.start_http_server(0, addr)
            note = f"port {port} is busy: serving /metrics on port {self._server.server_port} instead"
        self.metrics_url = f"http://{addr}:{self._server.server_port}/metrics"
        return note

    @property
    def metrics_port(self) -> int | None:
        return None if self._server is None else int(self._server.server_port)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def note(self, agent: str, text: str) -> None:
        self.events.put(Event(self.elapsed(), agent, "note", text))

    # -- audit events → display events --------------------------------------------------------
    def _on_audit(self, event: str, kw: dict[str, Any]) -> None:
        agent = str(kw.get("agent", ""))
        t = self.elapsed()
        if event == "driftwatch.baseline":
            text = f"baseline {kw['component']} ({kw['kind']}) {str(kw['revision_after'])[:8]}"
            self.events.put(Event(t, agent, "baseline", text))
        elif event == "driftwatch.change":
            by = kw["source"] + (f" node {kw['node']}" if kw.get("node") else "")
            by += f" run {str(kw['run_id'])[:8]}" if kw.get("run_id") else ""
            text = (f"CHANGE {str(kw['change_id'])[:8]} {kw['component']} ({kw['kind']}) by {by}, "
                    f"magnitude {kw['magnitude']:.2f}")
            prompt = self._prompt_of(str(kw["revision_after"]))
            if prompt:
                text += f"\n    now: {prompt!r}"
            self.events.put(Event(t, agent, "change", text))
        elif event == "driftwatch.optimizer_run":
            best = kw.get("best_score")
            score = "-" if best is None else f"{best:.2f}"
            took = (kw["ended_at"] - kw["started_at"]) if kw.get("ended_at") else 0.0
            text = (f"optimizer run {kw['optimizer']} {kw['outcome']}: {kw['candidates']} candidates, "
                    f"best score {score}, {took:.1f} s")
            self.events.put(Event(t, agent, "run", text))
        elif event == "driftwatch.drift_alarm":
            anchor = str(kw.get("anchor_change_id") or "-")[:8]
            text = (f"DRIFT ALARM {kw['signal']} (score {kw['score']:.2f}), "
                    f"{kw['calls_since_anchor']} calls after change {anchor}")
            self.events.put(Event(t, agent, "alarm", text))
        elif event == "driftwatch.guard":
            what = str(kw.get("action", "")).replace("_", " ").upper()
            where = f" {kw['component']}" if kw.get("component") else ""
            self.events.put(Event(t, agent, "guard", f"GUARD {what}{where}: {kw.get('reason', '')}"))

    @staticmethod
    def _prompt_of(revision_id: str) -> str | None:
        """The prompt text of a revision, for the terminal only (read from the local ledger)."""
        from driftwatch.runtime import get_runtime

        try:
            rev = get_runtime().ledger.revision(revision_id)
        except Exception:  # noqa: BLE001  # the display only loses the prompt line
            return None
        state = None if rev is None else rev.state
        if isinstance(state, dict):
            state = state.get("instructions", state.get("system_prompt"))
        if not isinstance(state, str):
            return None
        return state if len(state) <= 110 else state[:107] + "..."

    # -- traffic ----------------------------------------------------------------------------------
    def _pace(self, agent: str, next_t: float) -> float:
        """Count a call and sleep until the next one is due; returns the next due time."""
        self._calls[agent] += 1
        next_t += 1.0 / self.rate
        now = time.monotonic()
        if next_t > now:
            self.stop.wait(next_t - now)
        elif now - next_t > 1.0:  # far behind (a slow machine): do not burst to catch up
            next_t = now
        return next_t

    def _guard(self, name: str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001  # reported in the summary; the other agent keeps going
                self._errors.append(f"{name}: {type(exc).__name__}: {exc}")
                self.note(name, f"stopped by an error: {type(exc).__name__}: {exc}")
        return run

    def _serve_dspy(self) -> None:
        import dspy

        import driftwatch
        from driftwatch.demo.scripted_dspy import ScriptedLM

        class Arithmetic(dspy.Signature):
            """Answer the question."""

            question: str = dspy.InputField()
            answer: str = dspy.OutputField()

        rnd = random.Random(self.seed)
        self._program = driftwatch.watch(dspy.Predict(Arithmetic), agent=DSPY_AGENT)
        served: deque[Any] = deque(maxlen=200)
        opt_at = max(self.reference_calls / self.rate + 0.5, 0.2 * self.duration)
        optimizer: threading.Thread | None = None
        next_t = time.monotonic()
        with dspy.context(lm=ScriptedLM(seed=self.seed + 1)):
            while not self.stop.is_set():
                if optimizer is None and self.elapsed() >= opt_at and len(served) >= 40:
                    run = functools.partial(self._optimize, self._program, list(served)[-40:])
                    optimizer = threading.Thread(target=self._guard(DSPY_AGENT, run), name="driftwatch-demo-copro",
                                                 daemon=True)
                    self._optimizer_busy.set()
                    optimizer.start()
                a, b = rnd.randint(2, 99), rnd.randint(2, 99)
                question, truth = f"What is {a} + {b}?", str(a + b)
                pred = self._program(question=question)  # the optimizer thread swaps self._program
                correct = truth in str(pred.answer)
                driftwatch.record_score(DSPY_AGENT, 1.0 if correct else 0.0, metric="correct")
                served.append(dspy.Example(question=question, answer=truth).with_inputs("question"))
                next_t = self._pace(DSPY_AGENT, next_t)

    def _optimize(self, student: Any, trainset: list[Any]) -> None:
        """COPRO on examples from the served traffic, in its own thread and LM; the result is swapped in.

        The old program serves throughout: during the compile, and after it until the swap, as in a
        blue/green deployment. driftwatch records the optimizer's change once, when ``compile``
        returns; the old program's calls meanwhile, and the new program's first call, record nothing.
        """
        import dspy

        from driftwatch.demo.scripted_dspy import ScriptedLM

        def metric(example: Any, pred: Any, trace: Any = None) -> bool:
            if self.stop.is_set():
                raise _StoppedError("demo stopped")  # ends the compile early (recorded as a failed run)
            return example.answer in str(pred.answer)

        self.note(DSPY_AGENT, f"COPRO starts on {len(trainset)} served examples (the program keeps serving)")
        try:
            with dspy.context(lm=ScriptedLM(seed=self.seed + 2)):
                optimized = dspy.COPRO(metric=metric, breadth=4, depth=2, init_temperature=1.0).compile(
                    student, trainset=trainset, eval_kwargs={"num_threads": 1, "display_progress": False})
            if not self.stop.is_set():
                self._program = optimized
                self.note(DSPY_AGENT, "the optimized program now serves the traffic")
        except Exception:
            if self.stop.is_set():
                self.note(DSPY_AGENT, "COPRO cut short: the demo is stopping")
                return
            raise
        finally:
            self._optimizer_busy.clear()

    def _build_support_bot(self) -> Any:
        from typing import TypedDict

        from langchain_core.messages import HumanMessage, SystemMessage
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph

        import driftwatch
        from driftwatch.demo.scripted_langchain import ScriptedChatModel
        from driftwatch.signals import is_refusal

        model = ScriptedChatModel(seed=self.seed + 3)
        demo = self

        class State(TypedDict, total=False):
            system_prompt: str
            question: str
            answer: str
            review: bool
            rated: int
            too_short: int
            unsafe: int
            refused: int

        def reflect(state: State) -> dict[str, Any]:
            """At a review, fix the most common complaint by editing the system prompt in the state."""
            if not state.get("review"):
                return {}
            n = state.get("rated", 0)
            reset = {"review": False, "rated": 0, "too_short": 0, "unsafe": 0, "refused": 0}
            if n < 20:
                return reset
            prompt = state["system_prompt"]
            short, unsafe, refused = (state.get(k, 0) / n for k in ("too_short", "unsafe", "refused"))
            new, why = None, ""
            if short > 0.3 and "detail" not in prompt:
                new, why = PROMPT_DETAIL, f"{short:.0%} of answers rated too short"
            elif unsafe > 0.02 and "refuse" not in prompt:
                new, why = PROMPT_CAUTION, f"{unsafe:.0%} of answers gave away something unsafe"
            elif refused > 0.25 and prompt != PROMPT_SOFTER:
                new, why = PROMPT_SOFTER, f"{refused:.0%} of requests refused"
            if new is None:
                demo.note(LG_AGENT, f"reflect: reviewed {n} rated answers, keeps its prompt")
                return reset
            demo.note(LG_AGENT, f"reflect: {why} -> rewrites its own system prompt")
            return {**reset, "system_prompt": new}

        def agent(state: State) -> dict[str, Any]:
            reply = model.invoke([SystemMessage(state["system_prompt"]), HumanMessage(state["question"])])
            return {"answer": str(reply.content)}

        def feedback(state: State) -> dict[str, Any]:
            """How customers rate the answer (a stand-in for thumbs up/down), counted in the state."""
            text = state.get("answer", "")
            refused = is_refusal(text)
            sensitive = state["question"] in _SENSITIVE_QUESTIONS
            return {"rated": state.get("rated", 0) + 1,
                    "too_short": state.get("too_short", 0) + int(not refused and len(_SENTENCE_END.findall(text)) < 2),
                    "unsafe": state.get("unsafe", 0) + int(sensitive and not refused),
                    "refused": state.get("refused", 0) + int(refused)}

        builder = StateGraph(State)
        builder.add_node("reflect", reflect)
        builder.add_node("agent", agent)
        builder.add_node("feedback", feedback)
        builder.add_edge(START, "reflect")
        builder.add_edge("reflect", "agent")
        builder.add_edge("agent", "feedback")
        builder.add_edge("feedback", END)
        return driftwatch.watch(builder.compile(checkpointer=InMemorySaver()), agent=LG_AGENT)

    def review_times(self) -> list[float]:
        """When the support bot reviews its feedback (seconds after the start)."""
        first = max(self.reference_calls / self.rate + 1.0, 0.3 * self.duration)
        return [first + (0.85 * self.duration - first) * i / 2 for i in range(3)]

    def _serve_langgraph(self) -> None:
        graph = self._build_support_bot()
        rnd = random.Random(self.seed + 4)
        reviews = deque(self.review_times())
        config = {"configurable": {"thread_id": "support-queue"}}
        first = True
        next_t = time.monotonic()
        while not self.stop.is_set():
            sensitive = rnd.random() < 0.2
            question = rnd.choice(_SENSITIVE_QUESTIONS if sensitive else _QUESTIONS)
            inputs: dict[str, Any] = {"question": question}
            if first:
                inputs["system_prompt"] = PROMPT_START
                first = False
            if reviews and self.elapsed() >= reviews[0]:
                reviews.popleft()
                inputs["review"] = True
            graph.invoke(inputs, config)
            next_t = self._pace(LG_AGENT, next_t)

    # -- running ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start both agents' traffic (threads); :meth:`run` does this and waits."""
        self.t0 = time.monotonic()
        self.started_wall = time.time()
        for name, target in ((DSPY_AGENT, self._serve_dspy), (LG_AGENT, self._serve_langgraph)):
            thread = threading.Thread(target=self._guard(name, target), name=f"driftwatch-demo-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def snapshot(self) -> list[AgentView]:
        """Refresh and return the per-agent view (calls, rate, revision, changes, alarms, drift)."""
        from driftwatch.runtime import get_runtime

        rt = get_runtime()
        rt.flush_calls()  # the drift state of every call made so far
        now = time.monotonic()
        for name, view in self.views.items():
            view.calls = self._calls[name]
            marks = self._rate_marks[name]
            marks.append((now, view.calls))
            t_old, c_old = marks[0]
            view.rate = (view.calls - c_old) / (now - t_old) if now > t_old else 0.0
            version = rt.agent_version(name)
            view.revision = version[:8] if version else "-"
            status = rt.drift.status(name) if rt.drift is not None else None
            if status is None:
                view.drift = "off"
                continue
            view.alarms = len(status["alarms"])
            if status["alarms"]:
                view.drift = "ALARM " + ", ".join(sorted(status["alarms"]))
            elif not status["armed"]:
                view.drift = f"collecting reference ({status['collected_calls']} calls)"
            else:
                scores = status["scores"]
                top = max(scores, key=scores.get) if scores else None
                view.drift = f"{top} {scores[top]:.2f} of threshold" if top else "armed"
        return list(self.views.values())

    def run(self, display: Display) -> bool:
        """Serve for ``duration`` seconds, feeding ``display``; returns True when interrupted (Ctrl-C)."""
        self.start()
        interrupted = False
        try:
            with display:
                while True:
                    left = self.duration - self.elapsed()
                    self._drain(display)
                    display.update(self)
                    if left <= 0:
                        break
                    time.sleep(min(0.25, left))
        except KeyboardInterrupt:
            interrupted = True
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        if self._optimizer_busy.is_set():  # a compile cut short by the stop flag ends within moments
            deadline = time.monotonic() + 5.0
            while self._optimizer_busy.is_set() and time.monotonic() < deadline:
                time.sleep(0.05)
        self._drain(display)
        display.close(self)
        return interrupted

    def _drain(self, display: Display) -> None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            if event.kind == "change":
                self.views[event.agent].changes += 1
            display.event(event)

    def finish(self, interrupted: bool) -> Summary:
        """Write the open call windows and the report; stop /metrics; the summary, read from the ledger."""
        from driftwatch.report import write_report
        from driftwatch.runtime import get_runtime

        rt = get_runtime()
        rt.flush_calls()  # the calls kept for a batch go in their windows first
        rt.windows.flush()
        led = rt.ledger
        size = 0
        if self.report:
            size = write_report(self.report, led, title="driftwatch demo")
        summary = Summary(duration_s=self.elapsed(), interrupted=interrupted, ledger=self.ledger, report=self.report,
                          report_bytes=size, metrics_url=self.metrics_url, calls=dict(self._calls))
        for c in led.changes():
            summary.changes[c.agent] = summary.changes.get(c.agent, 0) + 1
        summary.runs = len(led.runs())
        for a in led.alarms():
            summary.alarms.setdefault(a.agent, []).append(a.signal)
        return summary

    def close(self) -> None:
        """Stop serving /metrics and close the ledger."""
        from driftwatch.runtime import get_runtime

        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        get_runtime().close()

    @property
    def errors(self) -> list[str]:
        return list(self._errors)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------

def _require_frameworks() -> None:
    missing = []
    for module in ("dspy", "langgraph", "langchain_core"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise DemoError(f"the demo needs {', '.join(missing)}: pip install 'driftwatch-agents[all]'")


def _quiet_libraries() -> None:
    """DSPy logs each evaluation at INFO: the demo's display is the log."""
    for name in ("dspy", "dspy.teleprompt", "dspy.evaluate", "httpx", "LiteLLM"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _fresh_ledger(path: str) -> list[str]:
    """Remove a previous demo's ledger at ``path``; refuse to touch anything else."""
    from driftwatch.ledger import LedgerError, open_ledger

    p = Path(path)
    if not p.exists():
        return []
    if not p.is_file():
        raise DemoError(f"--ledger {path}: is not a file")
    try:
        led = open_ledger(path, readonly=True)
        try:
            agents = {c.agent for c in led.changes(baselines=True)} | {r.agent for r in led.runs()} | \
                {a.agent for a in led.alarms()} | {w.agent for w in led.windows()}
        finally:
            led.close()
    except (LedgerError, OSError, ValueError) as exc:
        raise DemoError(f"--ledger {path}: exists and is not a driftwatch ledger ({exc}); "
                        "choose another path") from None
    others = sorted(agents - set(DEMO_AGENTS))
    if others:
        raise DemoError(f"--ledger {path}: holds other agents ({', '.join(others[:3])}); the demo starts from a "
                        "fresh file: pass --ledger demo.db")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(path + suffix).unlink(missing_ok=True)
    return [f"replaced the previous demo ledger {path}"]
