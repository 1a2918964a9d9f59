"""Guardrails: freeze self-tuning, roll an agent back to its last good revision, hold changes for approval.

The core of it, framework-free (see ``docs/guardrails.md``):

- :mod:`~driftwatch.guardrails.policy` — :class:`GuardPolicy` (``on_alarm``, ``approve``, ``max_rate``) and
  the ``DRIFTWATCH_GUARD`` format;
- :mod:`~driftwatch.guardrails.engine` — :class:`Guard`, the per-process guard state a watched process reads
  (frozen agents, pinned revisions, held, approved and rejected revisions), the decision on each change, and
  the one poller of operator commands;
- :mod:`~driftwatch.guardrails.commands` — what ``driftwatch freeze|unfreeze|rollback|approve|reject`` and the
  alert receiver do: validate, write the facts to the ledger in one transaction, queue the command.

The integrations enforce the decisions (DSPy: the restore machinery puts the served revision back on each
program instance; LangGraph: the middleware rewrites the model request, the handler the system message).
"""

from __future__ import annotations

from driftwatch.guardrails.policy import DEFAULT_POLICY, ON_ALARM, POLICY_KEYS, GuardPolicy, parse_policies, parse_rate

__all__ = ["DEFAULT_POLICY", "ON_ALARM", "POLICY_KEYS", "GuardPolicy", "parse_policies", "parse_rate"]
