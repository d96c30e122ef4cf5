"""The HTTP endpoints for probes and Prometheus: ``/healthz``, ``/readyz`` and ``/metrics``.

``/healthz`` returns 200 while the controller's threads run. ``/readyz``
returns 200 once the pod and namespace caches are filled and, on the leader,
while etcd responds. A standby with filled caches is ready too, so a rolling
update can proceed. Both send a short text reason with their status.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)

# Each check returns (ok, reason).
Check = Callable[[], tuple[bool, str]]


class HealthServer:
    """Serves the three endpoints on a thread; port 0 picks a free port."""

    def __init__(
        self,
        bind_address: str,
        port: int,
        *,
        liveness: Check,
        readiness: Check,
        registry: CollectorRegistry,
    ) -> None:
        handler = _handler_class(liveness, readiness, registry)
        self._server = ThreadingHTTPServer((bind_address, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """Return the address and port the server listens on."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Start serving in a background thread."""
        self._thread.start()
        host, port = self.address
        logger.info("Serving /healthz, /readyz and /metrics on http://%s:%d.", host, port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def _handler_class(
    liveness: Check, readiness: Check, registry: CollectorRegistry
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/livez"):
                self._send_check(liveness)
            elif path == "/readyz":
                self._send_check(readiness)
            else:
                self._send(404, b"not found: use /healthz, /readyz or /metrics\n", "text/plain")

        def _send_check(self, check: Check) -> None:
            ok, reason = check()
            self._send(200 if ok else 503, f"{reason}\n".encode(), "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Probes arrive every few seconds; their access lines would drown the log.
            logger.debug("%s %s", self.address_string(), format % args)

    return Handler
