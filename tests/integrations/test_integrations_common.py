"""What the framework integrations share: JSON-able state, the version check, the patch registry, per-runtime state."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest

from driftwatch.integrations import MINIMUM_VERSIONS, DidNotEnable
from driftwatch.integrations._common import (
    MAX_DEPTH,
    Patches,
    PerRuntime,
    check_versions,
    jsonable,
    parse_version,
)
from driftwatch.revision import canonical_json, fingerprint

# -- jsonable -------------------------------------------------------------------------------------------


class Thing:
    """An arbitrary object: its repr carries its memory address."""


class Color(Enum):
    RED = 1


@dataclass
class Point:
    x: float
    y: list[Any]


def test_non_finite_floats_become_strings_and_finite_ones_stay() -> None:
    """NaN and infinities are rendered as strings (canonical JSON has none); finite floats are kept."""
    assert jsonable([math.nan, math.inf, -math.inf, 0.5, 2]) == ["nan", "inf", "-inf", 0.5, 2]
    assert canonical_json(jsonable({"t": math.nan})) == '{"t":"nan"}'


def test_nesting_deeper_than_the_limit_is_named_by_its_type() -> None:
    """Containers below MAX_DEPTH levels are rendered as a <type nested deeper than …> stand-in; everything above is
    rendered in full."""
    value: Any = "leaf"
    for _ in range(MAX_DEPTH + 3):
        value = [value]
    out = jsonable(value)
    depth = 0
    while isinstance(out, list):
        (out,) = out
        depth += 1
    assert (depth, out) == (MAX_DEPTH, f"<list nested deeper than {MAX_DEPTH}>")
    shallow: Any = "leaf"
    for _ in range(MAX_DEPTH - 1):
        shallow = {"k": shallow}
    assert jsonable(shallow) == shallow


def test_a_container_inside_itself_is_a_cycle_marker_and_shared_ones_are_rendered_twice() -> None:
    """A dict or list that contains itself ends in <cycle …>; the same list used twice (no cycle) is rendered twice."""
    d: dict[str, Any] = {"name": "x"}
    d["self"] = d
    items: list[Any] = [1]
    items.append(items)
    shared = [1, 2]
    assert jsonable(d) == {"name": "x", "self": "<cycle dict>"}
    assert jsonable(items) == [1, "<cycle list>"]
    assert jsonable({"a": shared, "b": shared}) == {"a": [1, 2], "b": [1, 2]}


def test_arbitrary_objects_are_named_without_addresses() -> None:
    """Objects without a JSON form are their type's name (never repr() or str(), which may carry addresses or
    secrets), unlike driftwatch.revision.jsonable for track() states (same rules otherwise)."""
    from driftwatch.revision import jsonable as state_jsonable

    class Secretive:
        def __repr__(self) -> str:
            return "Secretive(api_key='sk-123')"

    thing = f"<{__name__}.Thing>"
    assert jsonable([Thing(), Thing()]) == [thing, thing]
    assert jsonable(Secretive()) == f"<{__name__}.{Secretive.__qualname__}>"
    assert "sk-123" in state_jsonable(Secretive())  # positive control: the state rendering keeps the repr
    fn = jsonable({"cls": Thing, "fn": jsonable, "color": Color.RED})
    assert fn["cls"] == f"<class {__name__}.Thing>" and fn["color"] == "Color.RED"
    assert fn["fn"]["function"] == "driftwatch.integrations._common.jsonable"
    assert fn["fn"]["signature"] == "(value: Any) -> Any"
    assert jsonable(Point(1.0, [math.nan, Thing()])) == {"x": 1.0, "y": ["nan", thing]}
    out = jsonable({1: b"raw", (1, 2): None})
    assert out["1"].startswith("<bytes 3 blake2b ") and out["[1,2]"] is None
    assert jsonable(b"raw") == out["1"] != jsonable(b"raw!")  # bytes by length and hash: a change shows

    class Unreadable(dict):  # type: ignore[type-arg]  # a mapping whose items() raises
        def items(self) -> Any:
            raise RuntimeError("locked")

    unreadable = f"<{__name__}.{Unreadable.__qualname__}>"
    assert jsonable({"ok": [1], "bad": Unreadable(a=1)}) == {"ok": [1], "bad": unreadable}


def test_objects_that_dump_themselves_are_rendered_by_what_they_dump() -> None:
    """pydantic models (model_dump in JSON mode) and dspy.Example-like objects (toDict) give their fields."""
    import datetime

    from pydantic import BaseModel

    class Settings(BaseModel):
        when: datetime.date
        tags: set[str]

    class Example:
        def toDict(self) -> dict[str, Any]:  # noqa: N802  # DSPy's own name
            return {"question": "q", "answer": math.inf}

    class Broken(BaseModel):
        def model_dump(self, **kwargs: Any) -> Any:
            raise RuntimeError("cannot")

    out = jsonable([Settings(when=datetime.date(2024, 5, 1), tags={"b", "a"}), Example(), Broken()])
    assert out[0]["when"] == "2024-05-01" and sorted(out[0]["tags"]) == ["a", "b"]
    assert out[1:] == [{"question": "q", "answer": "inf"}, f"<{__name__}.{Broken.__qualname__}>"]


def test_the_rendering_is_the_same_in_every_process() -> None:
    """Two processes with different hash seeds (so different set orders) render the same value to the same JSON."""
    code = ("import json, math\nfrom driftwatch.integrations._common import jsonable\n"
            "class Thing: pass\n"
            "v = {'s': {'pear', 'apple', 'fig', 'kiwi', 'plum'}, 'o': Thing(), 'n': math.nan, 'f': {3, 1, 2}}\n"
            "print(json.dumps(jsonable(v), sort_keys=True))\n")
    outs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.add(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                timeout=120, check=True).stdout)
    (out,) = outs
    assert json.loads(out) == {"f": [1, 2, 3], "n": "nan", "o": "<__main__.Thing>",
                               "s": ["apple", "fig", "kiwi", "pear", "plum"]}
    assert fingerprint(json.loads(out)) == fingerprint(jsonable(json.loads(out)))


# -- versions ---------------------------------------------------------------------------------------------


def test_versions_compare_by_their_release_numbers() -> None:
    """Pre-release and local suffixes are ignored; trailing zeros do not count; unparseable means oldest."""
    assert parse_version("3.4.1rc1") == parse_version("3.4.1") == (3, 4, 1)
    assert parse_version("1.0") == parse_version("1.0.0") == parse_version("1") == (1,)
    assert parse_version("1.0.0.dev0") == (1,)
    assert parse_version("unknown") == parse_version("") == ()
    assert parse_version("3.2.9") < parse_version("3.3.1") < parse_version("3.10")


def test_the_version_check_names_the_package_and_the_install_command() -> None:
    """One check for every integration: an older or unknown version raises DidNotEnable with the pip command."""
    minimum = MINIMUM_VERSIONS["langgraph"]
    check_versions("LangGraph", "langgraph", {"langgraph": minimum, "langchain-core": "99.1"})
    with pytest.raises(DidNotEnable) as info:
        check_versions("LangGraph", "langgraph", {"langgraph": "0.6.2"})
    assert str(info.value) == (f"driftwatch's LangGraph integration needs langgraph>={minimum} (found 0.6.2): "
                               "pip install 'driftwatch-agents[langgraph]'")
    with pytest.raises(DidNotEnable, match=r"\(found unknown\)"):
        check_versions("DSPy", "dspy", {"dspy": None})


# -- the patch registry ------------------------------------------------------------------------------------


class Base:
    def greet(self) -> str:
        return "base"


class Child(Base):
    def speak(self) -> str:
        return "child"


def tagging(tag: str, patches: Patches, log: list[str]) -> Any:
    """A ``make`` whose wrapper appends ``tag`` to the result while live, and logs each live call."""
    def make(original: Any) -> Any:
        gen = patches.generation

        def wrapper(self: Any) -> str:
            if patches.generation != gen:
                return original(self)
            log.append(tag)
            return original(self) + "+" + tag

        return wrapper

    return make


def test_patches_are_undone_in_reverse_order() -> None:
    """Two patches stacked on one attribute and one on an inherited attribute: undo puts every original back."""
    patches, log = Patches(), []
    speak, greet = Child.__dict__["speak"], Base.__dict__["greet"]
    patches.patch(Child, "speak", tagging("a", patches, log))
    patches.patch(Child, "speak", tagging("b", patches, log))  # wraps the first
    patches.patch(Child, "greet", tagging("c", patches, log))  # inherited: Child gets its own attribute
    assert (Child().speak(), Child().greet(), Base().greet()) == ("child+a+b", "base+c", "base")
    assert patches.patched(Child, "speak") and not patches.patched(Base, "greet")
    patches.undo()
    assert Child.__dict__["speak"] is speak and "greet" not in Child.__dict__ and Base.__dict__["greet"] is greet
    assert (Child().speak(), Child().greet()) == ("child", "base")
    assert not patches
    patches.undo()  # idempotent
    assert Child.__dict__["speak"] is speak


def test_a_patch_wrapped_over_by_another_tool_stays_in_place_inert() -> None:
    """Another tool wrapped our patch: undo leaves both (theirs keeps working), ours passes calls through."""
    patches, ours, theirs = Patches(), [], []
    speak = Child.__dict__["speak"]
    try:
        patches.patch(Child, "speak", tagging("dw", patches, ours))
        wrapped = Child.__dict__["speak"]

        def other(self: Any) -> str:
            theirs.append("other")
            return wrapped(self)

        Child.speak = other  # type: ignore[method-assign]  # the other instrumentor
        assert Child().speak() == "child+dw" and ours == ["dw"]  # positive control: ours is live before undo
        patches.undo()
        assert Child.__dict__["speak"] is other
        assert Child().speak() == "child"
        assert ours == ["dw"] and theirs == ["other", "other"]
        patches.patch(Child, "speak", tagging("again", patches, ours))  # instrumented again: only the new one acts
        assert Child().speak() == "child+again" and ours == ["dw", "again"]
        patches.undo()
        assert Child.__dict__["speak"] is other
    finally:
        Child.speak = speak  # type: ignore[method-assign]


# -- per-runtime state ---------------------------------------------------------------------------------------


def test_per_runtime_state_is_dropped_when_another_runtime_is_in_use() -> None:
    """Values made for one runtime are handed out for it only; another runtime starts empty."""
    cache: PerRuntime[str, list[str]] = PerRuntime()
    first, second = object(), object()
    a = cache.get(first, "k", list)
    assert cache.get(first, "k", list) is a
    assert cache.values(second) == {}
    b = cache.get(second, "k", list)
    assert b is not a and cache.values(second) == {"k": b}
    cache.discard("k", a)  # not the value held: kept
    assert cache.values(second) == {"k": b}
    cache.discard("k", b)
    assert cache.values(second) == {}
