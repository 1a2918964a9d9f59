"""Tool calls of DSPy agents, counted on the recorded program call they happen in.

- ``dspy.ReAct``: the tools its steps ran, read from the trajectory its ``forward`` / ``aforward`` returns
  (``tool_name_<i>``: a tool of the agent's, not its ``finish`` step). Read after the step loop, not by
  wrapping the tools: ReAct puts the traceback of a failing tool into the trajectory the model reads, and a
  wrapper would add a frame to it (and so change the program's output);
- ``dspy.ToolCalls.ToolCall.execute``: a custom tool loop over a prediction's ``ToolCalls`` (DSPy's "manual tool
  handling"), counted when the tool is found and run.

A counted call goes under the tool's name into the call's ``tools`` (``driftwatch_tool_calls_total{tool}``, the
``tool_mix`` drift signal). The recorded call is found through ``dspy.context`` (:data:`CALL_KEY`), so tools a
program runs in ``dspy.Parallel`` worker threads count too. Not counted: ``dspy.CodeAct`` (its tools run inside
its sandboxed interpreter), and a program calling a ``dspy.Tool`` object directly (``tool(**args)``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping
from typing import Any

from dspy.dsp.utils.settings import thread_local_overrides

from driftwatch.integrations._common import Patches
from driftwatch.runtime import get_runtime

__all__ = ["CALL_KEY", "make_execute", "make_react_aforward", "make_react_forward"]

#: the ``dspy.context`` key under which a recorded program call's record sits while the program runs
CALL_KEY = "driftwatch_call"


def _record() -> Any:
    ov = thread_local_overrides.get()
    return ov.get(CALL_KEY) if ov else None


def _note(name: Any) -> None:
    try:
        rec = _record()
        if rec is not None and isinstance(name, str) and name:
            rec.add_tool(name)
    except Exception as exc:  # noqa: BLE001  # never break the host
        get_runtime().error("dspy", exc)


def _note_trajectory(react: Any, result: Any) -> None:
    """Count the tools a ReAct run's trajectory shows it ran (its tools, not ``finish``)."""
    try:
        rec = _record()
        trajectory = getattr(result, "trajectory", None) if rec is not None else None
        if not isinstance(trajectory, Mapping):
            return
        tools = getattr(react, "tools", None) or {}
        i = 0
        while f"tool_name_{i}" in trajectory:
            name = trajectory[f"tool_name_{i}"]
            if isinstance(name, str) and name != "finish" and name in tools:
                rec.add_tool(name)
            i += 1
    except Exception as exc:  # noqa: BLE001  # never break the host
        get_runtime().error("dspy", exc)


def make_react_forward(orig: Callable[..., Any], patches: Patches) -> Callable[..., Any]:
    """``dspy.ReAct.forward`` that counts the tools its trajectory ran."""
    gen = patches.generation

    @functools.wraps(orig)
    def forward(self: Any, **input_args: Any) -> Any:
        result = orig(self, **input_args)
        if patches.generation == gen:
            _note_trajectory(self, result)
        return result

    return forward


def make_react_aforward(orig: Callable[..., Any], patches: Patches) -> Callable[..., Any]:
    """``dspy.ReAct.aforward``, likewise."""
    gen = patches.generation

    @functools.wraps(orig)
    async def aforward(self: Any, **input_args: Any) -> Any:
        result = await orig(self, **input_args)
        if patches.generation == gen:
            _note_trajectory(self, result)
        return result

    return aforward


def _found(name: str, functions: Any) -> bool:
    if isinstance(functions, Mapping):
        return functions.get(name) is not None
    if isinstance(functions, list):
        return any(getattr(tool, "name", None) == name for tool in functions)
    return False


def make_execute(orig: Callable[..., Any], patches: Patches) -> Callable[..., Any]:
    """``ToolCalls.ToolCall.execute`` that counts the tool call it runs.

    With ``functions=None`` DSPy looks the tool up in its caller's frame; this wrapper is that caller now, so
    it does the lookup in *its* caller's frame and hands DSPy what it found.
    """
    gen = patches.generation

    @functools.wraps(orig)
    def execute(self: Any, functions: Any = None) -> Any:
        if patches.generation != gen:
            return orig(self, functions)
        name = getattr(self, "name", None)
        if functions is None and isinstance(name, str):
            frame = sys._getframe(1)
            try:
                func = frame.f_locals.get(name) or frame.f_globals.get(name)
            finally:
                del frame
            functions = {name: func} if func is not None else {}
        if isinstance(name, str) and _found(name, functions):
            _note(name)
        return orig(self, functions)

    return execute
