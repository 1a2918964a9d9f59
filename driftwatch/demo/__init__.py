"""``driftwatch demo``: two self-tuning agents on the scripted model, watched live, in under a minute.

    driftwatch demo [--duration 25] [--port 9464] [--ledger driftwatch.db]
                    [--report driftwatch-report.html] [--non-interactive]

Two agents serve steady traffic on driftwatch's scripted language model (offline, deterministic, and
sensitive to its prompt the way a real model is: see :mod:`driftwatch.demo.scripted`):

- ``qa-program``, a DSPy program answering arithmetic questions. While it serves, a real ``dspy.COPRO``
  optimizer runs in a background thread on examples taken from the served traffic; the program it
  returns is swapped in (the old one serves until then, and driftwatch records the optimizer's change
  once). The instructions COPRO picks change how the model answers.
- ``support-bot``, a LangGraph agent (``reflect -> agent -> feedback``) that rewrites its own system
  prompt: its ``feedback`` node rates each answer the way customers would (too short, unsafe, a
  refusal) and, at each periodic review, its ``reflect`` node edits the prompt in the graph state to
  fix the most common complaint — and each edit has side effects of its own.

Both are watched with :func:`driftwatch.watch`. The terminal shows each change, optimizer run and drift
alarm as driftwatch records them (read from its audit events), with calls and drift scores per agent
(a live ``rich`` display, or plain lines with ``--non-interactive`` or when stdout is not a terminal).
``/metrics`` is served on 127.0.0.1 (``--port``, default 9464; another free port with a message when
that one is busy). The ledger starts from a fresh file: an existing file that holds only a previous
demo's agents is replaced, anything else is refused with a message. At the end the HTML report is
written and a summary names both paths. Ctrl-C stops early: the summary and report are still written
and the exit status is 130 (0 after a full run; 1, with the error on stderr, if an agent's thread failed).

The drift is real: nothing here draws a canned curve. The scripted model answers longer when its
instructions ask for detail, refuses more when they ask for caution, and so on; driftwatch's drift
engine (with a 250-call reference instead of the default 1000, so alarms come within seconds) sees
the result of each rewrite in the calls that follow it.

Modules: ``scenario`` (the two agents, their traffic and the optimizer thread: :class:`Demo`), ``display``
(plain lines, the live table, the closing summary), and the scripted language model — ``scripted`` (the
framework-free engine), ``scripted_dspy`` (``ScriptedLM``, a ``dspy.BaseLM``) and ``scripted_langchain``
(``ScriptedChatModel``, a LangChain chat model with tool calling). The command is
:mod:`driftwatch.cli.demo`.
"""

from driftwatch.demo.display import Display, LiveDisplay, print_summary
from driftwatch.demo.scenario import DEMO_AGENTS, Demo, DemoError, Summary

__all__ = ["DEMO_AGENTS", "Demo", "DemoError", "Display", "LiveDisplay", "Summary", "print_summary"]
