"""Issue 11 item 5: ``track()`` never raises into the host for a state's content, and never runs it.

Only wrong argument types may raise; whatever a state holds is recorded with a deterministic stand-in, and each
substitution is counted (``driftwatch_state_substitutions_total{reason}``, and on the change's attributes).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import driftwatch
from driftwatch.revision import canonical_json, fingerprint
from driftwatch.testing import Captured, capture

ROOT = Path(__file__).resolve().parents[2]


def _cyclic() -> dict:
    d: dict = {"name": "loop"}
    d["self"] = d
    return d


def _deep(levels: int) -> dict:
    root = node = {}
    for _ in range(levels):
        node["a"] = {}
        node = node["a"]
    return root


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken")


def _gen():
    yield "consumed"


class UnreadableMapping(dict):
    """A mapping whose items cannot be read."""

    def items(self):
        raise RuntimeError("no items for you")


# (name, state factory, the reason counted when the state is recorded)
HOSTILE = [
    ("cyclic", _cyclic, "cycle"),
    ("deep", lambda: _deep(500), "depth"),
    ("surrogate", lambda: "prompt \udcff end", "surrogate"),
    ("nan", lambda: {"temperature": float("nan"), "top_p": float("inf")}, "non_finite"),
    ("bytes", lambda: {"blob": b"\x00\xffabc"}, "bytes"),
    ("lock", lambda: {"lock": threading.Lock()}, "object"),
    ("big_int", lambda: {"n": 10 ** 5000}, "big_int"),
    ("raising_repr", lambda: {"obj": RaisingRepr()}, "object"),
    ("generator", lambda: {"gen": _gen()}, "object"),
    ("non_str_keys", lambda: {1: "one", "1": "also one", (2, 3): "tuple"}, "key"),
    ("unreadable", lambda: {"m": UnreadableMapping(a=1)}, "unreadable"),
]


@pytest.mark.parametrize(("name", "make", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_state_content_is_recorded_not_raised(cap: Captured, name: str, make, reason: str) -> None:
    """Cycles, 500-deep nesting, lone surrogates, NaN, bytes, locks, huge ints, a raising repr, a generator, non-str
    keys: the host's call returns its own result, the baseline and a change are recorded, the stand-in is counted."""

    @driftwatch.watch(agent="bot")
    def agent(state) -> str:
        driftwatch.track("bot", name, state)
        return "host result"

    assert agent(make()) == "host result"
    assert agent({"changed": True}) == "host result"
    (baseline,) = [c for c in cap.changes(baselines=True) if c.is_baseline]
    assert baseline.component == name
    stored = cap.ledger.revision(baseline.after_id).state
    assert json.loads(canonical_json(stored)) == stored  # the ledger holds plain JSON
    assert cap.ledger.change(baseline.id).attributes["substitutions"][reason] >= 1
    assert cap.value("driftwatch_state_substitutions_total", reason=reason) >= 1
    (change,) = cap.changes(component=name)
    assert change.before_id == baseline.after_id
    assert cap.runtime.error_counts == {}  # nothing failed inside driftwatch either


def test_the_same_hostile_state_twice_is_one_revision(cap: Captured) -> None:
    """A stand-in is deterministic: reporting the same (fresh) hostile state again records no change."""
    for _ in range(3):
        assert driftwatch.track("bot", "p", {"c": _cyclic(), "lock": threading.Lock(), "nan": float("nan"),
                                             "gen": _gen(), "deep": _deep(100)}) is None
    assert len(cap.changes(baselines=True)) == 1


def test_a_callable_state_is_never_called(cap: Captured) -> None:
    """track("bot", "tools", send_email) used to send the e-mail: now the function is recorded, not run."""
    sent: list[str] = []

    def send_email(to: str, body: str = "hi") -> bool:
        """Send an e-mail to a customer."""
        sent.append(to)
        return True

    driftwatch.track("bot", "tools", send_email)
    change = driftwatch.track("bot", "tools", [send_email, functools.partial(send_email, "ops@example.com")])
    assert sent == []
    state = cap.ledger.revision(change.after_id).state
    assert state[0] == {"function": f"{__name__}.test_a_callable_state_is_never_called.<locals>.send_email",
                        "signature": "(to: str, body: str = 'hi') -> bool", "doc": "Send an e-mail to a customer."}
    assert state[1]["function"].startswith("functools.partial(")
    assert state[1]["signature"] == "(body: str = 'hi') -> bool"
    assert cap.value("driftwatch_state_substitutions_total", reason="function") == 3.0


def test_a_tool_list_records_each_functions_name_signature_and_doc(cap: Captured) -> None:
    """Changing one tool's signature or docstring is a change of the tool list; the function itself is untouched."""

    def search(query: str) -> list[str]:
        """Search the knowledge base."""
        return []

    def search_v2(query: str, limit: int = 5) -> list[str]:
        """Search the knowledge base."""
        return []

    search_v2.__qualname__ = search.__qualname__
    driftwatch.track("bot", "tools", [search])
    change = driftwatch.track("bot", "tools", [search_v2])
    assert change is not None and change.paths == ("$[0].signature",)


def test_only_wrong_argument_types_raise(cap: Captured) -> None:
    """agent, component, kind and source are checked (one-line errors); the state never is."""
    for kwargs, message in [({"agent": 7}, "agent=7"), ({"component": None}, "component=None"),
                            ({"kind": "prompt"}, "kind='prompt'"), ({"source": b"x"}, "source=b'x'")]:
        args = {"agent": "bot", "component": "p", "state": "x", **kwargs}
        with pytest.raises(ValueError, match=f"^{message}"):
            driftwatch.track(args.pop("agent"), args.pop("component"), args.pop("state"), **args)
    assert cap.ledger.changes(baselines=True) == []


def test_a_lazy_state_is_read_only_when_its_key_moves(cap: Captured) -> None:
    """The hooks' explicit lazy path (integrations): Lazy(read) is called only when the cheap key moved."""
    from driftwatch.tracker import Lazy

    reads: list[int] = []
    prompt = {"text": "v1"}

    def read() -> str:
        reads.append(1)
        return prompt["text"]

    tracker = cap.runtime.tracker("bot", "lazy")
    tracker.observe(Lazy(read), key=1)
    tracker.observe(Lazy(read), key=1)
    assert len(reads) == 1
    prompt["text"] = "v2"
    change = tracker.observe(Lazy(read), key=2)
    assert len(reads) == 2 and change is not None and change.after_state == "v2"


def test_stand_ins_are_equal_across_processes() -> None:
    """The revision id of a state with functions, objects (memory addresses in their repr), sets and NaN is the
    same in two processes with different hash seeds."""
    code = (
        "import threading, functools\n"
        "from driftwatch.revision import fingerprint\n"
        "class Tool:\n    pass\n"
        "def send(to: str) -> None:\n    '''Send.'''\n"
        "state = {'tools': [send, functools.partial(send, 'x'), Tool(), Tool], 'set': {'b', 'a', 'c'}, "
        "'nan': float('nan'), 'lock': threading.Lock(), 'bytes': b'abc', 'deep': [[[[[[[[[[1]]]]]]]]]]}\n"
        "print(fingerprint(state))\n"
    )
    ids = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                             check=True, timeout=60)
        ids.add(out.stdout.strip())
    assert len(ids) == 1 and len(ids.pop()) == 32


def test_jsonable_agrees_with_json_for_plain_states() -> None:
    """Plain JSON states are recorded as before: the same canonical text and revision id."""
    from driftwatch.revision import jsonable

    state = {"system": "You are terse.", "tools": [{"name": "search", "n": 3, "w": 0.5, "ok": True, "x": None}]}
    assert jsonable(state) == state
    assert canonical_json(state) == json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert fingerprint("plain prompt") == fingerprint(jsonable("plain prompt"))


def test_a_10_mb_prompt_is_recorded_and_the_host_result_is_unchanged(tmp_path) -> None:
    """A 10 MB prompt (many lines) is recorded as a change with its magnitude; the diff that leaves the process
    (content capture on) is cut at max_diff_chars and says so; the host's result is unchanged."""
    line = "You answer questions about the product catalogue, item %d, carefully.\n"
    big = "".join(line % i for i in range(150_000))
    assert len(big) > 10_000_000
    with capture(ledger=str(tmp_path / "dw.db"), capture_content=True) as cap:
        @driftwatch.watch(agent="bot")
        def agent(prompt: str) -> str:
            driftwatch.track("bot", "system_prompt", prompt, kind="system_prompt")
            return "host result"

        assert agent("short prompt") == "host result"
        assert agent(big) == "host result"
        (change,) = cap.changes()
        assert cap.ledger.revision(change.after_id).state == big
        assert change.magnitude > 0.9
        event = cap.audit[-1]
        assert event["diff_truncated"] is True and event["diff_chars"] > 10_000_000
        assert len(event["diff"]) <= cap.runtime.settings.max_diff_chars + 200
        assert event["diff"].rstrip().endswith("characters shown (max_diff_chars)")
        (span,) = cap.spans("driftwatch.change")
        (diff_event,) = [e for e in span.events if e.name == "driftwatch.change.diff"]
        assert diff_event.attributes["driftwatch.change.diff_truncated"] is True
        assert diff_event.attributes["driftwatch.change.diff_chars"] == event["diff_chars"]
