"""The server processes: :class:`Prometheus`, :class:`Alertmanager` and the :class:`Stack` that wires them.

Each server object is also a client of its own HTTP API (:mod:`driftwatch.prometheus_api`), so
``stack.prometheus.query("up")`` and ``stack.alertmanager.alerts()`` work once it runs; its errors are
:class:`StackError` (as is every failure here: one line).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from driftwatch.prometheus_api import AlertmanagerAPI, PrometheusAPI, PrometheusAPIError, ServerAPI
from driftwatch.stack.config import prometheus_config

__all__ = [
    "ALERTMANAGER_BINARIES",
    "PROMETHEUS_BINARIES",
    "Alertmanager",
    "Prometheus",
    "Stack",
    "StackError",
    "find_binary",
    "free_port",
    "poll",
]

PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
_INSTALL_HINT = "install the Debian packages: apt-get install prometheus prometheus-alertmanager"
T = TypeVar("T")


class StackError(RuntimeError):
    """A server is missing, did not start, or a condition was not reached in time (one-line message)."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(names: Sequence[str], override: str | None = None) -> str:
    """The path of the first of ``names`` on ``PATH`` (or ``override``); :class:`StackError` if none."""
    if override:
        path = shutil.which(override)
        if path is None:
            raise StackError(f"binary={override!r}: not found or not executable")
        return path
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    raise StackError(f"{' or '.join(names)} not found on PATH: {_INSTALL_HINT}")


def _dump_yaml(data: Mapping[str, Any]) -> str:
    """Configs are written as JSON, which is YAML too: no YAML library needed to run servers."""
    return json.dumps(dict(data), indent=2) + "\n"


def poll(condition: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05) -> T:
    """Call ``condition`` until it returns something truthy (a non-empty query result…); return that value.

    ``StackError`` naming ``what`` on timeout; API errors (an unreachable server, a failed query) count as
    "not yet"; a dead server fails at once.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except _ExitedError:
            raise
        except (StackError, PrometheusAPIError) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error is not None else ""
            raise StackError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


class _ExitedError(StackError):
    """The process died: not worth waiting for."""


class _Server(ServerAPI):
    """One server process — command line, log file, readiness polling, orderly stop — and a client of its
    API at ``url`` (mixed in before :class:`~driftwatch.prometheus_api.PrometheusAPI` or ``AlertmanagerAPI``)."""

    name = "server"
    error = StackError

    def __init__(self, binary: str, workdir: Path, port: int | None) -> None:
        self.port = port or free_port()
        super().__init__(f"http://127.0.0.1:{self.port}", timeout=5.0)
        self.binary = binary
        self.workdir = workdir
        self.log_path = workdir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> None:
        """Start the process and wait until ``/-/ready`` answers 200 (``StackError`` with its log otherwise)."""
        if self.process is not None:
            raise StackError(f"{self.name} is already running (pid {self.process.pid})")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.workdir)
        try:
            poll(self._ready, timeout=timeout, what=f"{self.name} at {self.url}/-/ready", interval=0.02)
        except StackError:
            self.stop()
            raise

    def _ready(self) -> bool:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise _ExitedError(f"{self.name} exited with status {code}: {self.log_tail()}")
        return self.ready(timeout=0.5)

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait, SIGKILL if it does not exit in ``timeout`` seconds; close the API client."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.close()


class Prometheus(_Server, PrometheusAPI):
    """A Prometheus server (``--web.enable-lifecycle``, exemplar storage on) with a given config and rules;
    once started, ``query``, ``query_range``, ``targets``, ``alertmanagers``, ``rules``, ``alerts``, ``api``
    and ``reload`` talk to it."""

    name = "prometheus"

    def __init__(self, config: Mapping[str, Any], *, workdir: Path, rule_files: Sequence[str | Path] = (),
                 port: int | None = None, binary: str | None = None, exemplars: bool = True,
                 extra_args: Sequence[str] = ()) -> None:
        super().__init__(find_binary(PROMETHEUS_BINARIES, binary), workdir, port)
        self.config = dict(config)
        self.exemplars = exemplars
        self.extra_args = list(extra_args)
        self.rule_files = [self._copy_rules(Path(p)) for p in rule_files]
        if self.rule_files:
            self.config["rule_files"] = [*self.config.get("rule_files", []), *(str(p) for p in self.rule_files)]
        self.config_path = workdir / "prometheus.yml"

    def _copy_rules(self, path: Path) -> Path:
        if not path.is_file():
            raise StackError(f"rule_files: {path} does not exist")
        dest = self.workdir / "rules" / path.name
        dest.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, dest)
        return dest

    def command(self) -> list[str]:
        self.config_path.write_text(_dump_yaml(self.config))
        cmd = [self.binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
               f"--web.external-url={self.url}", "--log.level=warn"]
        if self.exemplars:
            cmd.append("--enable-feature=exemplar-storage")
        return cmd + self.extra_args


class Alertmanager(_Server, AlertmanagerAPI):
    """An Alertmanager with clustering off (``--cluster.listen-address=``); once started, ``alerts`` and
    ``post_alerts`` talk to it."""

    name = "alertmanager"

    def __init__(self, config: Mapping[str, Any], *, workdir: Path, port: int | None = None,
                 binary: str | None = None, extra_args: Sequence[str] = ()) -> None:
        super().__init__(find_binary(ALERTMANAGER_BINARIES, binary), workdir, port)
        self.config = dict(config)
        self.extra_args = list(extra_args)
        self.config_path = workdir / "alertmanager.yml"

    def command(self) -> list[str]:
        self.config_path.write_text(_dump_yaml(self.config))
        return [self.binary, f"--config.file={self.config_path}", f"--storage.path={self.workdir / 'am'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                f"--web.external-url={self.url}", "--log.level=warn", *self.extra_args]


class Stack:
    """Alertmanager + Prometheus wired together, scraping ``targets`` with ``rule_files`` loaded.

    ``scrape_interval``/``evaluation_interval`` default to 1 s (tests); rule files are copied into the
    work directory, so callers may pass rewritten temporary copies. Use as a context manager, or call
    :meth:`start` / :meth:`stop`. ``workdir=None`` uses a temporary directory removed on stop.
    """

    def __init__(self, *, targets: Sequence[str] = (), rule_files: Sequence[str | Path] = (),
                 alertmanager_config: Mapping[str, Any] | None = None, job: str = "driftwatch",
                 scrape_interval: str = "1s", evaluation_interval: str = "1s", workdir: str | Path | None = None,
                 prometheus_port: int | None = None, alertmanager_port: int | None = None,
                 prometheus_binary: str | None = None, alertmanager_binary: str | None = None) -> None:
        for t in targets:
            host, _, port = t.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"targets: {t!r} is not host:port")
        self._tmp = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="driftwatch-stack-") if workdir is None else workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.job = job
        self.targets = list(targets)
        self.alertmanager: Alertmanager | None = None
        if alertmanager_config is not None:
            (self.workdir / "alertmanager").mkdir(exist_ok=True)
            self.alertmanager = Alertmanager(alertmanager_config, workdir=self.workdir / "alertmanager",
                                             port=alertmanager_port, binary=alertmanager_binary)
        ams = [f"127.0.0.1:{self.alertmanager.port}"] if self.alertmanager is not None else []
        (self.workdir / "prometheus").mkdir(exist_ok=True)
        self.prometheus = Prometheus(
            prometheus_config(targets=self.targets, job=job, alertmanagers=ams, scrape_interval=scrape_interval,
                              evaluation_interval=evaluation_interval),
            workdir=self.workdir / "prometheus", rule_files=rule_files, port=prometheus_port,
            binary=prometheus_binary)

    def start(self, timeout: float = 15.0) -> Stack:
        try:
            if self.alertmanager is not None:
                self.alertmanager.start(timeout)
            self.prometheus.start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_until_scraping(self, timeout: float = 20.0) -> None:
        """Wait until every target is up and (with an Alertmanager) Prometheus has discovered it."""
        want = len(self.targets)

        def scraping() -> bool:
            if not self.prometheus.running:
                raise _ExitedError(f"prometheus exited: {self.prometheus.log_tail()}")
            up = [t for t in self.prometheus.targets() if t["health"] == "up"]
            if len(up) < want:
                return False
            return self.alertmanager is None or bool(self.prometheus.alertmanagers())

        poll(scraping, timeout=timeout, what=f"{want} target(s) up and the Alertmanager discovered", interval=0.1)

    def stop(self) -> None:
        self.prometheus.stop()
        if self.alertmanager is not None:
            self.alertmanager.stop()
        if self._tmp and os.environ.get("DRIFTWATCH_KEEP_STACK") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
