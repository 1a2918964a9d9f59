"""Private files: what driftwatch writes holds prompts, so a file it creates is readable by its owner only.

Every file driftwatch creates — the SQLite ledger (SQLite gives its ``-wal`` and ``-shm`` the ledger's
mode), the HTML report, the audit log — is created through :func:`create_private` or :func:`open_private`
with mode :data:`DEFAULT_MODE` (``0600``) whatever the umask; the ``file_mode`` setting
(``DRIFTWATCH_FILE_MODE``, e.g. ``0640`` for a group of readers) widens it. A file that exists already keeps
its mode: driftwatch never changes the mode of a file it did not create.
"""

from __future__ import annotations

import os
from typing import IO, Any

__all__ = ["DEFAULT_MODE", "create_private", "open_private"]

#: read and write for the owner only
DEFAULT_MODE = 0o600

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _open_fd(path: str, flags: int, mode: int) -> int:
    """``os.open`` that gives a file it creates exactly ``mode`` (the umask cannot narrow or widen it)."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | _CLOEXEC, mode)
    except FileExistsError:
        return os.open(path, flags | _CLOEXEC)
    if hasattr(os, "fchmod"):
        try:
            os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            raise
    return fd


def create_private(path: str, mode: int = DEFAULT_MODE) -> bool:
    """Create ``path`` empty with ``mode`` unless it exists; ``True`` when this call created it.

    An existing file is never opened: closing any descriptor of a file releases every POSIX lock this process
    holds on it, the SQLite connections' included (another connection would then take itself for the last one
    and delete the ``-wal`` and ``-shm`` under them)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, mode)
    except FileExistsError:
        return False
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return True


def open_private(path: str, how: str = "w", mode: int = DEFAULT_MODE, **kwargs: Any) -> IO[Any]:
    """``open(path, how)`` for a file driftwatch writes (``how``: ``"w"``, ``"a"``, ``"wb"`` or ``"ab"``); a new
    file gets ``mode``. ``kwargs`` go to :func:`open` (``encoding=`` …)."""
    if how not in ("w", "a", "wb", "ab"):
        raise ValueError(f"open_private(how={how!r}): expected 'w', 'a', 'wb' or 'ab'")
    flags = os.O_WRONLY | (os.O_APPEND if how.startswith("a") else os.O_TRUNC)
    fd = _open_fd(path, flags, mode)
    try:
        return open(fd, how, **kwargs)  # the caller owns the file object
    except BaseException:
        os.close(fd)
        raise
