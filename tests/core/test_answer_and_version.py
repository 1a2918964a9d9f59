"""What a call's span and record say about it: the answer text read from common result shapes (and the agent's
``output_key``), and the agent version that served it (issue 12 items 5 and 7)."""

from __future__ import annotations

from typing import Any

import pytest

import driftwatch
from driftwatch.observation import output_text
from driftwatch.revision import combine, fingerprint
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


def _version(span: Any) -> str:
    return dict(span.attributes)["gen_ai.agent.version"]


def test_a_call_site_first_seen_later_does_not_move_the_version(cap: Captured) -> None:
    """The version moves with changes only: a component first seen on the third call joins it at the next change
    (and every call is tagged with the revision that served it, the first one included)."""
    prompt = {"text": "v1"}

    @driftwatch.watch(agent="late")
    def run(i: int) -> str:
        driftwatch.track("late", "agent.system_prompt", prompt["text"])
        if i >= 2:
            driftwatch.track("late", "reflect.system_prompt", "You critique.")  # a node that runs later only
        return "ok"

    for i in range(4):
        run(i)
    prompt["text"] = "v2"
    run(4)
    versions = [_version(s) for s in cap.spans("invoke_agent late")]
    first = combine({"agent.system_prompt": fingerprint("v1")})
    after = combine({"agent.system_prompt": fingerprint("v2"), "reflect.system_prompt": fingerprint("You critique.")})
    assert versions == [first] * 4 + [after]
    assert [c.component for c in cap.changes(agent="late")] == ["agent.system_prompt"]
