"""Run real Prometheus and Alertmanager processes on loopback ports, for tests and ``driftwatch stack``.

Uses the binaries of the Debian packages ``prometheus`` and ``prometheus-alertmanager`` (the Alertmanager
binary is ``prometheus-alertmanager`` there, ``alertmanager`` elsewhere). Every server binds to
``127.0.0.1`` on a port picked at run time, keeps its data in a throwaway directory, and is polled until
ready (never a fixed sleep). Alertmanager runs with clustering off, so the first notification is not
held back by gossip.

>>> with Stack(targets=["127.0.0.1:9464"], rule_files=["grafana/alerts/driftwatch_alerts.yaml"],
...            alertmanager_config=webhook_config("http://127.0.0.1:5001/")) as stack:
...     stack.wait_until_scraping()
...     stack.prometheus.query("up")

HTTP goes through :mod:`driftwatch.prometheus_api` (httpx). Prometheus's service discovery hands targets
and Alertmanagers over about 5 s after start (a fixed interval inside Prometheus):
:meth:`Stack.wait_until_scraping` polls for both.

Modules: ``servers`` (the processes, each a client of its own API), ``config`` (scrape and routing
configs), ``rules`` (the shipped rule files, at test speed), ``watcher`` (alert transitions as lines).
"""

from driftwatch.stack.config import (
    alertmanager_config,
    prometheus_config,
    webhook_config,
    webhook_receivers,
    with_guard,
)
from driftwatch.stack.rules import RULE_NAMES, check_rules, default_rules_dir, fast_rules, rule_files
from driftwatch.stack.servers import (
    ALERTMANAGER_BINARIES,
    PROMETHEUS_BINARIES,
    Alertmanager,
    Prometheus,
    Stack,
    StackError,
    find_binary,
    free_port,
    poll,
)
from driftwatch.stack.watcher import AlertWatcher, describe

__all__ = [
    "ALERTMANAGER_BINARIES",
    "PROMETHEUS_BINARIES",
    "RULE_NAMES",
    "AlertWatcher",
    "Alertmanager",
    "Prometheus",
    "Stack",
    "StackError",
    "alertmanager_config",
    "check_rules",
    "default_rules_dir",
    "describe",
    "fast_rules",
    "find_binary",
    "free_port",
    "poll",
    "prometheus_config",
    "rule_files",
    "webhook_config",
    "webhook_receivers",
    "with_guard",
]
