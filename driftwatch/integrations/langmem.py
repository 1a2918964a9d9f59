"""LangMem prompt optimizers: each run, and the prompt it returns.

>>> optimizer = driftwatch.watch(create_prompt_optimizer(model), agent="support-bot", component="system_prompt")
>>> better = optimizer.invoke({"trajectories": trajectories, "prompt": prompt})

LangMem's optimizers (``GradientPromptOptimizer``, ``MetaPromptOptimizer``, ``MultiPromptOptimizer``: every
``…PromptOptimizer`` class of ``langmem``) emit no LangChain callbacks, so the watched optimizer's
``invoke``/``ainvoke`` are wrapped (on the instance; its class is left alone):

- the prompt(s) it is given are observed first (an edit made since is a ``runtime`` change);
- each call is an optimizer run (``driftwatch_optimizer_runs_total``, the ledger, a
  ``driftwatch.optimizer.compile`` span around the call);
- the prompt it returns is a ``system_prompt`` change whose source is the optimizer's class name,
  linked to the run. A prompt named in the input (``{"name": ..., "prompt": ...}``) is its own
  component; otherwise the component is ``component=`` (default ``prompt``).

LangMem itself is not imported: an optimizer is recognised by its class. Other LangMem objects (memory
managers, which are LangChain runnables) are watched by the LangGraph / LangChain integration.
"""

from __future__ import annotations

from typing import Any

from driftwatch.runtime import RunScope, Runtime, get_runtime, is_suppressed

__all__ = ["optimizer_name", "watch_object"]

_OPTIONS = ("component",)


def optimizer_name(obj: Any) -> str | None:
    """The LangMem optimizer class ``obj`` is (or derives from), e.g. ``GradientPromptOptimizer``."""
    for klass in type(obj).__mro__:
        if klass.__module__.startswith("langmem.") and klass.__name__.endswith("PromptOptimizer"):
            return klass.__name__
    return None


def watch_object(obj: Any, *, agent: str, **options: Any) -> Any:
    """What :func:`driftwatch.watch` does with a LangMem object.

    A prompt optimizer: its ``invoke``/``ainvoke`` record each run and the prompt it returns (option
    ``component``: the component name of a prompt that the input does not name; default ``prompt``);
    the optimizer itself is returned. Any other LangMem object goes to the LangGraph / LangChain
    integration.
    """
    source = optimizer_name(obj) if not isinstance(obj, type) else None
    if source is None:
        from driftwatch.integrations import langgraph

        return langgraph.watch_object(obj, agent=agent, **options)
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"driftwatch.watch got unknown option(s) {', '.join(unknown)} for a LangMem prompt "
                        f"optimizer; expected {', '.join(_OPTIONS)}")
    component = options.get("component") or "prompt"
    if not isinstance(component, str):
        raise TypeError(f"component={component!r}: expected a component name such as 'system_prompt'")
    return _watch_optimizer(obj, agent, component, source)


def _prompt_parts(value: Any, default: str) -> list[tuple[str, str]]:
    """``(component, prompt text)`` pairs of an optimizer's input prompt(s) or result."""
    if isinstance(value, str):
        return [(default, value)]
    if isinstance(value, dict) and isinstance(value.get("prompt"), str):
        return [(str(value.get("name") or default), value["prompt"])]
    if isinstance(value, list):
        out: list[tuple[str, str]] = []
        for v in value:
            out.extend(_prompt_parts(v, default))
        return out
    return []


def _watch_optimizer(opt: Any, agent: str, component: str, source: str) -> Any:
    """Wrap a LangMem optimizer's ``invoke``/``ainvoke`` (they emit no callbacks); returns ``opt``."""
    plain_invoke, plain_ainvoke = type(opt).invoke, type(opt).ainvoke

    def before(input: Any) -> tuple[Runtime, RunScope | None, str]:
        """The input prompt(s) observed, then the run begun (its span current until :func:`after`)."""
        rt = get_runtime()
        if not rt.enabled or is_suppressed():
            return rt, None, component
        try:
            prompts = input.get("prompts", input.get("prompt")) if isinstance(input, dict) else None
            parts = _prompt_parts(prompts, component)
            for name, text in parts:
                rt.observe(agent, name, text, kind="system_prompt", source="runtime")
            single = parts[0][0] if len(parts) == 1 else component
        except Exception as exc:  # noqa: BLE001  # never break the host
            rt.error("langmem", exc)
            single = component
        return rt, rt.begin_run(agent, source), single

    def after(rt: Runtime, scope: RunScope | None, single: str, result: Any, error: BaseException | None) -> None:
        if scope is None:
            return
        if error is None:
            try:
                for name, text in _prompt_parts(result, single):
                    rt.observe(agent, name, text, kind="system_prompt", source=source, run_id=scope.run.id)
            except Exception as exc:  # noqa: BLE001  # never break the host
                rt.error("langmem", exc)
        scope.finish(error=error)

    def invoke(input: Any, config: Any = None, **kwargs: Any) -> Any:
        rt, scope, name = before(input)
        try:
            result = plain_invoke(opt, input, config, **kwargs)
        except BaseException as exc:
            after(rt, scope, name, None, exc)
            raise
        after(rt, scope, name, result, None)
        return result

    async def ainvoke(input: Any, config: Any = None, **kwargs: Any) -> Any:
        rt, scope, name = before(input)
        try:
            result = await plain_ainvoke(opt, input, config, **kwargs)
        except BaseException as exc:
            after(rt, scope, name, None, exc)
            raise
        after(rt, scope, name, result, None)
        return result

    opt.invoke = invoke
    opt.ainvoke = ainvoke
    opt.__driftwatch_agent__ = agent
    return opt
