"""How a ``create_agent`` graph says that a :class:`DriftwatchMiddleware` watches it.

The middleware lists a :class:`RunMarker` in its ``transformers`` (LangChain >= 1.4: ``create_agent`` passes
middleware stream-transformer factories to the compiled graph, which keeps them in ``stream_transformers``,
and every copy ``with_config`` makes keeps them too). The run patches of ``_instrument`` look for the marker
at the start of each top-level run and record the run for the middleware's agent, with the middleware's
callback handler added to the run's callbacks: the middleware alone gives the full per-call record (status,
duration, output, tool calls, tokens, an ``invoke_agent`` span), as ``driftwatch.watch`` does.

As a transformer factory the marker is passive: ``stream_events(version="v3")`` gets a transformer that keeps
every event and projects nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RunMarker", "marker_of"]


class RunMarker:
    """The agent and handler of the :class:`DriftwatchMiddleware` that watches a graph (see the module)."""

    __slots__ = ("agent", "handler")

    def __init__(self, agent: str, handler: Any) -> None:
        self.agent = agent
        self.handler = handler

    def __call__(self, scope: tuple[str, ...]) -> Any:
        """A stream transformer that changes nothing (``stream_events(version="v3")`` asks for one)."""
        return _passive_class()(scope)

    def __repr__(self) -> str:
        return f"RunMarker(agent={self.agent!r})"


_PASSIVE: Any = None


def _passive_class() -> Any:
    global _PASSIVE
    if _PASSIVE is None:
        from langgraph.stream import StreamTransformer

        class DriftwatchPassiveTransformer(StreamTransformer):
            """Keeps every event, projects nothing."""

            def init(self) -> dict[str, Any]:
                return {}

            def process(self, event: Any) -> bool:
                return True

        _PASSIVE = DriftwatchPassiveTransformer
    return _PASSIVE


def marker_of(graph: Any) -> RunMarker | None:
    """The marker a graph carries, or ``None`` (a graph without a ``DriftwatchMiddleware``)."""
    factories = getattr(graph, "stream_transformers", None)
    if factories:
        for factory in factories:
            if type(factory) is RunMarker:
                return factory
    return None
