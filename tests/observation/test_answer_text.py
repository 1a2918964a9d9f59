"""The answer text of a call, read from the common result shapes and from the agent's ``output_key`` (issue 12
item 5): what output size, refusal and format checks read."""

from __future__ import annotations

from typing import Any

import pytest

import driftwatch
from driftwatch.observation import output_text
from driftwatch.testing import Captured


class Message:
    """A chat message as frameworks make them: an object with ``content``."""

    def __init__(self, content: Any) -> None:
        self.content = content


@pytest.mark.parametrize(("result", "text"), [
    ("plain", "plain"),
    (Message("from a message"), "from a message"),
    (Message([{"type": "text", "text": "from "}, {"type": "image"}, "blocks"]), "from blocks"),
    ({"answer": "under a common key"}, "under a common key"),
    ({"messages": [Message("first"), Message("last of a messages state")]}, "last of a messages state"),
    ([Message("a MessageGraph state"), Message("ends with this")], "ends with this"),
    ((Message("a tuple"), {"role": "ai", "content": "dict message last"}), "dict message last"),
    (["notes", "as a list"], "notes\nas a list"),
], ids=["str", "message", "content-blocks", "common-key", "messages-key", "list-of-messages", "tuple-dict-message",
        "list-of-str"])
def test_the_answer_is_read_from_every_common_shape(result: Any, text: str) -> None:
    assert output_text(result) == text


@pytest.mark.parametrize("result", [None, 42, {}, [], {"state": {"deep": "x"}}, [1, 2], Message(None)],
                         ids=["none", "int", "empty-dict", "empty-list", "unknown-key", "list-of-int", "no-content"])
def test_no_answer_when_there_is_no_obvious_text(result: Any) -> None:
    assert output_text(result) is None


def test_output_key_names_where_the_answer_is() -> None:
    """A custom state key (or attribute) holds the answer: the key wins over the usual ones."""
    state = {"answer": "not this", "final_reply": [Message("draft"), Message("the reply")]}
    assert output_text(state, "final_reply") == "the reply"
    assert output_text(state) == "not this"  # the positive control: without the key, the usual one

    class Result:
        verdict = "an attribute"

    assert output_text(Result(), "verdict") == "an attribute"
    assert output_text(state, "missing") == "not this"  # a key that is not there: the usual rules


def test_configure_agent_output_key_sizes_the_answer(cap: Captured) -> None:
    driftwatch.configure_agent("keyed", output_key="reply")

    @driftwatch.watch(agent="keyed")
    def run() -> dict[str, Any]:
        return {"reply": "x" * 40, "debug": "y" * 5}

    run()
    assert cap.value("driftwatch_output_chars_sum", agent="keyed") == 40
    with pytest.raises(ValueError, match="output_key"):
        driftwatch.configure_agent("keyed", output_key=3)
