"""The agent version on a call's span is the revision that served it, and moves only with a change once the
agent has served a call (issue 12 item 7)."""

from __future__ import annotations

from typing import Any

import driftwatch
from driftwatch.revision import combine, fingerprint
from driftwatch.testing import Captured


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
