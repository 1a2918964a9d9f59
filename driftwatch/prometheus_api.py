"""The HTTP APIs of Prometheus and Alertmanager, through httpx: the one client driftwatch uses for both.

>>> prom = PrometheusAPI("http://127.0.0.1:9090")
>>> prom.query("driftwatch_drift_alarm > 0")          # instant query: the result list
>>> prom.query_range("up", start, end, step=15)       # one dict (metric, values) per series
>>> prom.ready(), prom.targets(), prom.alerts(), prom.rules()

``driftwatch report --prometheus`` (:class:`driftwatch.report.PrometheusSource`) and the local stack
(:mod:`driftwatch.stack`, whose server objects are clients of their own API) read through these classes.
The httpx client is created (and httpx imported) on first use; ``transport=`` takes an httpx transport
(``httpx.MockTransport``) for tests that cannot reach a real server. Every failure — unreachable server,
an HTTP error, an answer that is not the API's JSON, a failed query — is a :class:`PrometheusAPIError`
with a one-line message that names the server's URL and what failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ["AlertmanagerAPI", "PrometheusAPI", "PrometheusAPIError", "ServerAPI"]


class PrometheusAPIError(Exception):
    """A Prometheus or Alertmanager API call failed; the message is one line naming the server's URL."""


class ServerAPI:
    """What Prometheus and Alertmanager share: a base URL, readiness, configuration reload, one-line errors."""

    #: the server's name in messages
    title = "the server"
    #: the exception raised on failure (a subclass may raise its own, such as ``StackError``)
    error: type[Exception] = PrometheusAPIError

    def __init__(self, url: str, *, transport: httpx.BaseTransport | None = None, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise self.error(f"{url!r}: expected an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._transport = transport
        self._http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        """The httpx client for this server's URL (created on first use, closed by :meth:`close`)."""
        if self._http is None:
            import httpx  # on first use: httpx also loads click and rich when installed, and the CLI starts faster

            self._http = httpx.Client(base_url=self.url, transport=self._transport, timeout=self.timeout)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One HTTP request; an unreachable server raises :attr:`error` (never an httpx exception)."""
        import httpx

        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self.error(f"{self.url}: cannot reach {self.title} ({type(exc).__name__}: {exc})") from None

    def ready(self, timeout: float | None = None) -> bool:
        """``GET /-/ready`` answers 200 (``False`` while the server is unreachable or starting)."""
        import httpx

        try:
            return self.http.get("/-/ready", timeout=self.timeout if timeout is None else timeout).status_code == 200
        except httpx.TransportError:
            return False

    def reload(self) -> None:
        """Re-read the configuration files (``POST /-/reload``; the server needs ``--web.enable-lifecycle``)."""
        r = self.request("POST", "/-/reload")
        if r.status_code != 200:
            raise self.error(f"{self.url}: reload failed: HTTP {r.status_code}: {r.text.strip()[:200]}")


class PrometheusAPI(ServerAPI):
    """Prometheus's HTTP API (``/api/v1``): queries, targets, Alertmanagers, rules and alerts."""

    title = "Prometheus"

    def api(self, path: str, **params: Any) -> Any:
        """``GET /api/v1/<path>`` and return its ``data``."""
        where = f"/api/v1/{path}"
        r = self.request("GET", where, params=params)
        try:
            body = r.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if r.status_code != 200:
                raise self.error(f"{self.url}: {where} answered HTTP {r.status_code}")
            raise self.error(f"{self.url}: {where} did not answer JSON (is this Prometheus?)")
        if r.status_code != 200:  # Prometheus explains a bad query (400, 422) in the body
            detail = f": {body.get('errorType')}: {body.get('error')}" if body.get("error") else ""
            raise self.error(f"{self.url}: {where} answered HTTP {r.status_code}{detail}")
        if body.get("status") != "success":
            raise self.error(f"{self.url}: query failed: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[Any]:
        """An instant query; returns the result list (vector samples, or ``[scalar]``)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self.api("query", **params)
        return data["result"] if data["resultType"] in ("vector", "matrix") else [data["result"]]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query; one ``{"metric": labels, "values": [[t, "v"], ...]}`` per series."""
        return self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}",
                        step=f"{step:.3f}")["result"]

    def targets(self, state: str = "active") -> list[dict[str, Any]]:
        """The scrape targets (``activeTargets``) with their ``health``."""
        return self.api("targets", state=state)["activeTargets"]

    def alertmanagers(self) -> list[str]:
        """The URLs of the Alertmanagers Prometheus has discovered."""
        return [a["url"] for a in self.api("alertmanagers")["activeAlertmanagers"]]

    def rules(self) -> list[dict[str, Any]]:
        """Every recording and alerting rule loaded, across groups."""
        return [r for g in self.api("rules")["groups"] for r in g["rules"]]

    def alerts(self) -> list[dict[str, Any]]:
        """The pending and firing alerts, with ``labels`` and ``state``."""
        return self.api("alerts")["alerts"]


class AlertmanagerAPI(ServerAPI):
    """Alertmanager's HTTP API (``/api/v2``): the alerts it holds, and posting alerts as Prometheus does."""

    title = "Alertmanager"

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds (``GET /api/v2/alerts``), optionally filtered by label equality."""
        r = self.request("GET", "/api/v2/alerts", params=[("filter", f'{k}="{v}"') for k, v in filters.items()])
        if r.status_code != 200:
            raise self.error(f"{self.url}: /api/v2/alerts answered HTTP {r.status_code}: {r.text.strip()[:200]}")
        try:
            return r.json()
        except ValueError:
            raise self.error(f"{self.url}: /api/v2/alerts did not answer JSON (is this Alertmanager?)") from None

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """Send alerts directly (``POST /api/v2/alerts``), as Prometheus would."""
        r = self.request("POST", "/api/v2/alerts", json=[dict(a) for a in alerts])
        if r.status_code != 200:
            raise self.error(f"{self.url}: Alertmanager rejected alerts: HTTP {r.status_code}: {r.text.strip()}")
