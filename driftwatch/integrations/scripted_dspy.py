"""Kept for compatibility: ``ScriptedLM`` now lives in :mod:`driftwatch.demo.scripted_dspy` (demo code is not
an integration)."""

from driftwatch.demo.scripted_dspy import ScriptedLM

__all__ = ["ScriptedLM"]
