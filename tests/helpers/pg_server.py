"""A throwaway PostgreSQL server for the tests (and benchmarks/bench_ledger.py).

``PostgresServer().start()`` runs ``initdb`` in a fresh temporary directory and starts ``postgres`` on
127.0.0.1 with a port picked at run time (its Unix socket in the same directory), waits until it accepts
connections (``pg_isready``, polled), and ``stop()`` shuts it down and removes the directory. The
binaries come from the Debian package ``postgresql`` (``/usr/lib/postgresql/<major>/bin``), which
``make test`` installs. initdb and postgres refuse to run as root: as root (CI, containers) they run as
the ``postgres`` system user the package creates, via ``setpriv`` (or ``runuser``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

__all__ = ["PostgresServer", "postgres_bin_dir"]

PASSWORD = "s3cret-Pa55"  # the superuser's password (scram-sha-256 over TCP); tests check it never leaks
USER = "driftwatch"


def postgres_bin_dir() -> str:
    """The directory holding initdb/postgres/pg_isready (newest major version), or a one-line error."""
    candidates = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(os.path.join(d, "initdb"))]
    if not candidates and shutil.which("initdb") and shutil.which("pg_ctl"):
        return os.path.dirname(shutil.which("initdb") or "")
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
                           "`make test` installs the Debian package postgresql")
    return max(candidates, key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory. ``fsync=False`` trades crash safety of the
    *server* for speed (the tests kill clients, never the server); benchmarks keep it on."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.bin = postgres_bin_dir()
        self.fsync = fsync
        self.port = 0
        self.dir = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        self._uid: int | None = None

    # -- running as the postgres user when we are root -------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        return [*self._as, *args]

    def start(self) -> PostgresServer:
        self.dir = tempfile.mkdtemp(prefix="driftwatch-pg-")
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root, and there is no `postgres` user to run the server as: "
                                   "`make test` installs the Debian package postgresql") from None
            self._uid = pw.pw_uid
            os.chmod(self.dir, 0o700)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            # setpriv execs the command (runuser would stay in between and not pass signals on)
            self._as = (["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
                        if shutil.which("setpriv") else ["runuser", "-u", "postgres", "--"])
        data = os.path.join(self.dir, "data")
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        if self._uid is not None:
            os.chown(pwfile, self._uid, -1)
        init = subprocess.run(
            self._cmd(f"{self.bin}/initdb", "-D", data, "-U", USER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                      "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync"),
            capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.strip().splitlines()[-1:]}")
        for attempt in range(5):  # the port was free a moment ago; another process may take it first
            self.port = _free_port()
            if self._launch():
                return self
            self._kill()
            if attempt == 4:
                raise RuntimeError(f"postgres did not start: {self.log_tail()}")
        return self

    def _launch(self) -> bool:
        """Start the postgres process on ``self.port``; ``True`` once it accepts connections."""
        log = open(os.path.join(self.dir, "postgres.log"), "ab")  # noqa: SIM115  # closed by stop()
        self.proc = subprocess.Popen(
            self._cmd(f"{self.bin}/postgres", "-D", os.path.join(self.dir, "data"), "-h", "127.0.0.1", "-p",
                      str(self.port), "-k", self.dir, "-c", f"fsync={'on' if self.fsync else 'off'}",
                      "-c", "max_connections=200", "-c", "shared_buffers=32MB"),
            stdout=log, stderr=subprocess.STDOUT)
        self._log = log
        return self._wait_ready()

    def stop_process(self) -> None:
        """Shut the server down (fast shutdown: clients disconnected), keeping its data: a restart's first half."""
        self._kill()

    def start_process(self) -> None:
        """Start the server again on the same port and data (after :meth:`stop_process`)."""
        if not self._launch():
            raise RuntimeError(f"postgres did not restart: {self.log_tail()}")

    def _wait_ready(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            ready = subprocess.run([f"{self.bin}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True, timeout=10)
            if ready.returncode == 0:
                return True
            time.sleep(0.02)
        return False

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "postgres.log"), errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-3:])
        except OSError:
            return "(no log)"

    # -- URLs and databases ------------------------------------------------------------------------
    def url(self, database: str = "postgres", *, password: str = PASSWORD, user: str = USER) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser, outside a transaction (CREATE DATABASE …)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def admin_in(self, url: str, sql: str) -> None:
        """Run one statement in the database of ``url`` as the superuser."""
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str) -> str:
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    # -- stop --------------------------------------------------------------------------------------
    def _kill(self) -> None:
        """Stop the postgres process (SIGINT: fast shutdown, clients disconnected; SIGKILL after 15 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        self._kill()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
