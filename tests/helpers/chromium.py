"""A page in a real headless Chromium (the Debian package), and the console lines it logged."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
          "--enable-logging=stderr", "--v=0"]


def chromium(page: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    """Run Chromium headless on ``page`` with ``mode`` (``--dump-dom``, ``--screenshot=…``) in a fresh profile."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("chromium is missing: `make test` installs the Debian package chromium")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", *mode, page.as_uri()],
                              capture_output=True, text=True, timeout=90, check=False)


def console_errors(stderr: str) -> list[str]:
    """Chromium's console and failed-load lines (what a page's console would show)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Failed to load resource" in line]
