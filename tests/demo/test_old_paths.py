"""The scripted model's documented paths from before the demo package still import the same objects."""

from __future__ import annotations

import importlib

import pytest

MOVED = [
    ("driftwatch.scripted", "driftwatch.demo.scripted",
     ("DETAIL_FACTOR", "REFUSAL_TEXTS", "Prompt", "Reply", "ScriptedModel", "Tool", "ToolCall", "Traits",
      "count_tokens", "traits")),
    ("driftwatch.integrations.scripted_dspy", "driftwatch.demo.scripted_dspy", ("ScriptedLM",)),
    ("driftwatch.integrations.scripted_langchain", "driftwatch.demo.scripted_langchain", ("ScriptedChatModel",)),
]


@pytest.mark.parametrize(("old", "new", "names"), MOVED, ids=[m[0] for m in MOVED])
def test_the_old_path_re_exports_the_new_objects(old: str, new: str, names: tuple[str, ...]) -> None:
    """Each public name of the new module is the very same object under the old path (no second copy)."""
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    assert old_module is not new_module and set(old_module.__all__) == set(new_module.__all__) == set(names)
    for name in names:
        assert getattr(old_module, name) is getattr(new_module, name), name
