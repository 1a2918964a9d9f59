"""A loopback OTLP/HTTP trace receiver that decodes ``ExportTraceServiceRequest`` protobufs.

No OpenTelemetry Collector runs here; this stands in for one on the wire (the real SDK exporter,
protobuf encoding, HTTP and compression are all exercised). It can answer with an error status to
test exporter failures.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


class OTLPReceiver:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if receiver.status != 200:
                    self.send_response(receiver.status)
                    self.end_headers()
                    return
                req = trace_service_pb2.ExportTraceServiceRequest()
                req.ParseFromString(body)
                with receiver._cond:
                    receiver.requests.append(req)
                    receiver._cond.notify_all()
                out = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}/v1/traces"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spans(self) -> list[Any]:
        with self._cond:
            return self.spans_unlocked()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:
        """Wait (without a fixed sleep) until ``count`` spans arrived; returns them."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.spans_unlocked()) >= count, timeout)
            return self.spans_unlocked()

    def spans_unlocked(self) -> list[Any]:
        return [s for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]


def attributes(span: Any) -> dict[str, Any]:
    """A decoded span's attributes as plain Python values."""
    out: dict[str, Any] = {}
    for kv in span.attributes:
        v = kv.value
        kind = v.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [getattr(x, x.WhichOneof("value")) for x in v.array_value.values]
        else:
            out[kv.key] = getattr(v, kind)
    return out
