"""Kept for compatibility: ``ScriptedChatModel`` now lives in :mod:`driftwatch.demo.scripted_langchain` (demo
code is not an integration)."""

from driftwatch.demo.scripted_langchain import ScriptedChatModel

__all__ = ["ScriptedChatModel"]
