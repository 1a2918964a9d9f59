"""Issue 11, item 4: a ledger URL's password is never printed — not in CLI errors, not in the agent's log, not
where a driver's message repeats the URL — however odd the password (``#``, ``?``, ``/``), the host or the
scheme. Against the throwaway PostgreSQL server, with real psycopg errors."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import time

import pytest

import driftwatch
from driftwatch.ledger import LedgerError, mask_password, open_ledger, parse_location
from driftwatch.testing import capture
from tests.helpers.servers import free_port

PY = sys.executable
_roles = itertools.count()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "driftwatch", *args], capture_output=True, text=True, timeout=60)


def _role(postgres, password: str) -> str:
    """A login role with ``password`` on the test server, owner of a new database; its URL, password as typed."""
    name = f"leaky{next(_roles)}"
    quoted = password.replace("'", "''")
    postgres.admin(f"CREATE ROLE {name} LOGIN PASSWORD '{quoted}'")
    postgres.admin(f"CREATE DATABASE {name} OWNER {name}")
    return f"postgresql://{name}:{password}@127.0.0.1:{postgres.port}/{name}"


@pytest.mark.parametrize("special", ["#", "?", "/"])
def test_a_password_with_url_characters_is_never_printed(postgres, special: str) -> None:
    """Reproduction: a password holding ``#``, ``?`` or ``/`` written into the URL as is (on main the masking URL
    parser took it for the fragment, query or path and printed it whole, e.g. in `driftwatch show`'s "not found"
    line and in connection errors). The ledger's location, open_ledger's error and the CLI's one line never hold
    it, and the CLI still works with it where the driver accepts it."""
    secret = f"pw{special}Tail-9x7"
    url = _role(postgres, secret)
    assert secret not in mask_password(url) and ":***@" in mask_password(url)
    try:
        led = open_ledger(url)
    except LedgerError as exc:  # "/" breaks libpq's URI syntax: the driver's own error
        message = str(exc)
        assert secret not in message and "Tail-9x7" not in message, message
        assert "\n" not in message
    else:
        assert secret not in led.location
        led.close()
    show = _cli("show", "deadbeef", "--ledger", url)
    assert show.returncode == 1 and show.stderr.count("\n") == 1, show.stderr
    assert "Tail-9x7" not in show.stderr + show.stdout, show.stderr
    assert show.stderr.startswith("driftwatch: error: ")


def test_the_same_password_percent_encoded_connects(postgres) -> None:
    """Positive control: the percent-encoded URL of such a role connects, and its location is masked too."""
    secret = "pw#?/Tail-9x7"
    url = _role(postgres, secret)
    encoded = url.replace(secret, "pw%23%3F%2FTail-9x7")
    led = open_ledger(encoded)
    try:
        assert led.changes() == []
        assert "Tail-9x7" not in led.location and ":***@" in led.location
    finally:
        led.close()


def test_a_malformed_host_the_driver_repeats_is_scrubbed(postgres) -> None:
    """Reproduction: a malformed host (an unclosed IPv6 bracket); psycopg's error repeats the whole URI, and on
    main printed the password with it. Now the library error, the CLI line and the agent's log hold no password."""
    secret = "Hunter2-do-not-print"
    url = f"postgresql://agent:{secret}@[::1/ledger"
    with pytest.raises(LedgerError) as info:
        open_ledger(url)
    assert "IPv6" in str(info.value) or "]" in str(info.value)  # the driver's message is still there
    assert secret not in str(info.value), info.value
    out = _cli("history", "--ledger", url)
    assert out.returncode == 1 and secret not in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_an_unknown_scheme_never_prints_the_password() -> None:
    """Reproduction: ``mysql://user:pa#ss@host/db`` (on main the error printed ``pa#ss``)."""
    secret = "pa#ssWord-99"
    with pytest.raises(LedgerError) as info:
        parse_location(f"mysql://me:{secret}@db.example/x")
    assert secret not in str(info.value) and "unknown ledger URL scheme" in str(info.value)
    out = _cli("history", "--ledger", f"mysql://me:{secret}@db.example/x")
    assert out.returncode == 1 and "ssWord-99" not in out.stderr and "unknown ledger URL scheme" in out.stderr


def test_the_agents_log_never_holds_the_password(postgres, caplog) -> None:
    """The agent's side: a ledger URL the writer cannot connect to (wrong password, holding ``#``): the host's
    calls return, the failures are counted, and no logged line (nor the location) holds the password."""
    secret = "pw#Agent-Secret-77"
    url = f"postgresql://nobody:{secret}@127.0.0.1:{postgres.port}/postgres"
    caplog.set_level(logging.WARNING, logger="driftwatch")
    with capture(ledger=url, ledger_drain_s=0.2) as cap:
        assert driftwatch.track("bot", "p", "v1") is None
        assert driftwatch.track("bot", "p", "v2") is not None
        deadline = time.monotonic() + 30
        while not cap.runtime.error_counts.get("ledger") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cap.runtime.error_counts["ledger"] >= 1
        assert cap.value("driftwatch_internal_errors_total", stage="ledger") >= 1
        assert cap.runtime.pending_writes == 2
        assert "Secret-77" not in cap.runtime.ledger.location
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "password authentication failed" in logged  # the driver's reason is kept
    assert "Secret-77" not in logged, logged


def test_a_refused_connection_with_a_slash_in_the_password(tmp_path) -> None:
    """A password with ``/`` makes libpq read the user info as host and port: its error quotes the parts it
    misread; none of the password may show."""
    secret = "ab/Slash-Secret-5"
    url = f"postgresql://me:{secret}@127.0.0.1:{free_port()}/x"
    with pytest.raises(LedgerError) as info:
        open_ledger(url)
    assert "Slash-Secret-5" not in str(info.value), info.value


def test_scrub_masks_every_url_and_known_secret() -> None:
    """The one scrubber: URLs in a text (user info and ``password=``), and the passwords of given URLs however
    a parser split them."""
    from driftwatch.ledger import scrub

    url = "postgresql://me:p@ss/w#rd?x@db:5432/x?sslmode=require"
    assert mask_password(url) == "postgresql://me:***@db:5432/x?sslmode=require"
    text = 'could not parse "postgresql://me:p@ss/w#rd?x@db:5432/x": near "w#rd?x", password=p@ss/w#rd?x'
    cleaned = scrub(text, url)
    assert "w#rd" not in cleaned and "p@ss" not in cleaned, cleaned
    assert scrub("host=db password='se cret' user=me") == "host=db password=*** user=me"
    assert mask_password("postgres://db/x?user=me&password=pw") == "postgres://db/x?user=me&password=***"
    assert mask_password("postgresql://me@db/x") == "postgresql://me@db/x"  # nothing to mask
