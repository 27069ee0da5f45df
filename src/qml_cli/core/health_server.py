"""`qml health serve`: the health document over HTTP for container probes.

`/health` is the full document (200 for pass or warn, 503 for fail), `/readyz`
the readiness subset (database at head, Redis), and `/livez` returns 200 while the
process serves requests. The quantum self-test takes about a second, so its
result is reused for `quantum_ttl_s`.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy.engine import Engine

from qml_cli import __version__
from qml_cli.core import clock, health
from qml_cli.core.logs import get_logger

log = get_logger("health")


class _QuantumCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.lock = threading.Lock()
        self.value: dict[str, list[dict]] | None = None
        self.measured = 0.0

    def get(self) -> dict[str, list[dict]]:
        with self.lock:
            if self.value is None or time.monotonic() - self.measured > self.ttl_s:
                self.value = health.check_quantum(clock.now())
                self.measured = time.monotonic()
            return self.value


class HealthServer(ThreadingHTTPServer):
    """An HTTP server of `/health`, `/livez` and `/readyz`."""

    daemon_threads = True

    def __init__(
        self, host: str, port: int, engine: Engine, quantum_ttl_s: float = 300.0
    ) -> None:
        self.engine = engine
        self.quantum = _QuantumCache(quantum_ttl_s)
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def document(self, path: str) -> dict[str, Any] | None:
        """Return the document served at `path`, or None for an unknown path."""
        if path == "/livez":
            return {"status": "pass", "releaseId": __version__}
        if path == "/readyz":
            return health.readiness(self.engine)
        if path == "/health":
            document = health.health(self.engine, quantum=False)
            document["checks"].update(self.quantum.get())
            document["status"] = health.overall(document["checks"])
            return document
        return None


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer
    server_version = f"qml/{__version__}"

    def _send(self, include_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        try:
            document = self.server.document(path)
        except Exception as exc:  # a probe must get a response, never a dropped socket
            log.error("health check raised", extra={"error": repr(exc)})
            document = {"status": "fail", "output": f"{type(exc).__name__}: {exc}"}
        if document is None:
            code, document = (
                404,
                {
                    "status": "fail",
                    "output": f"no such path {path}; use /health, /livez or /readyz",
                },
            )
        else:
            code = health.http_status(document)
        body = json.dumps(document, default=str).encode()
        self.send_response(code)
        self.send_header("Content-Type", health.MEDIA_TYPE)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if include_body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._send(include_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(include_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format % args, extra={"operation": "health_serve"})
