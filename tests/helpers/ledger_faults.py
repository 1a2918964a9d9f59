"""Faults of the ledger, made for real: another process holding an SQLite file locked, a TCP server that
accepts and never answers (a black-holed PostgreSQL host), a TCP proxy in front of a real PostgreSQL server
that can stop forwarding mid-run, a small full filesystem, a command run as an unprivileged user.

Shared by the tests in tests/faults/ and benchmarks/bench_ledger_faults.py.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import driftwatch

__all__ = ["BlackHole", "TCPProxy", "as_nobody", "hold_exclusive_lock", "rewriting_agent", "small_filesystem",
           "wait_until"]

PY = sys.executable

def rewriting_agent(agent: str = "host") -> Callable[[], str]:
    """A watched agent that rewrites its tracked prompt on every call (one ledger write per call, the worst
    case) and returns ``"normal result"``; the prompts are ``"{agent} prompt v1"``, ``v2`` …"""
    state = {"i": 0}

    @driftwatch.watch(agent=agent)
    def run() -> str:
        state["i"] += 1
        driftwatch.track(agent, "prompt", f"{agent} prompt v{state['i']}")
        return "normal result"

    return run


_LOCKER = textwrap.dedent("""
    import select, sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
    conn.execute("BEGIN EXCLUSIVE")
    sys.stdout.write("locked\\n"); sys.stdout.flush()
    select.select([sys.stdin], [], [], float(sys.argv[2]))  # until the test closes stdin, or the time is up
    conn.execute("COMMIT")
""")


@contextlib.contextmanager
def hold_exclusive_lock(path: str, seconds: float = 600.0) -> Iterator[subprocess.Popen[str]]:
    """Another process holds ``BEGIN EXCLUSIVE`` on the SQLite file at ``path`` for the block (at most
    ``seconds``: a host that waits for the lock is not stuck forever)."""
    proc = subprocess.Popen([PY, "-c", _LOCKER, path, str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


class BlackHole:
    """A TCP server on loopback that accepts connections and never sends a byte (a PostgreSQL host that
    stopped answering: the connection opens, the handshake never completes)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, password: str = "pw") -> str:
        return f"postgresql://agent:{password}@127.0.0.1:{self.port}/ledger"

    def _accept(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.sock], [], [], 0.1)
            if ready:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)  # held open, never read, never answered

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


class TCPProxy:
    """A loopback TCP proxy to ``target_port``. :meth:`black_hole` stops forwarding in both directions while
    keeping every connection open (and accepting new ones that go nowhere): the server seems to hang.
    :meth:`resume` forwards again, including what was held back."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.forwarding = threading.Event()
        self.forwarding.set()
        self._stop = False
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def url(self, real_url: str, real_port: int) -> str:
        return real_url.replace(f":{real_port}/", f":{self.port}/")

    def black_hole(self) -> None:
        self.forwarding.clear()

    def resume(self) -> None:
        self.forwarding.set()

    def _loop(self) -> None:
        while not self._stop:
            socks: list[socket.socket] = [self.sock]
            if self.forwarding.is_set():
                socks += [s for pair in self._pairs for s in pair]
            ready, _, _ = select.select(socks, [], [], 0.05)
            for s in ready:
                if s is self.sock:
                    client, _ = self.sock.accept()
                    upstream = socket.create_connection(self.target)
                    self._pairs.append((client, upstream))
                    continue
                if not self.forwarding.is_set():
                    continue
                pair = next((p for p in self._pairs if s in p), None)
                if pair is None:  # its pair closed earlier in this round
                    continue
                other = pair[1] if s is pair[0] else pair[0]
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    for c in pair:
                        c.close()
                    self._pairs.remove(pair)
                    continue
                try:
                    other.sendall(data)
                except OSError:  # the other side is gone: close the pair
                    for c in pair:
                        c.close()
                    self._pairs.remove(pair)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        for pair in self._pairs:
            for c in pair:
                c.close()
        self.sock.close()


@contextlib.contextmanager
def small_filesystem(size_kb: int) -> Iterator[str]:
    """A tmpfs of ``size_kb`` KiB mounted on a new directory (needs root and mount(2); ``OSError`` otherwise)."""
    where = tempfile.mkdtemp(prefix="driftwatch-full-")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", where],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        os.rmdir(where)
        raise OSError(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", where], check=False)
        shutil.rmtree(where, ignore_errors=True)


def as_nobody(cmd: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` as the unprivileged user ``nobody`` (from root, with setpriv): a user that can only read
    what is world-readable and write nothing it does not own."""
    pw = pwd.getpwnam("nobody")
    prefix = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"]
    env = {**os.environ, "HOME": "/tmp"}
    return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120, env=env,  # type: ignore[call-overload]  # kwargs pass through
                          check=False, **kwargs)


def wait_until(predicate: object, timeout: float = 30.0) -> bool:
    """Poll ``predicate()`` every 10 ms until it is true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]  # a callable
            return True
        time.sleep(0.01)
    return bool(predicate())  # type: ignore[operator]  # a callable
