"""Per-request plumbing of the HTTP front, as plain ASGI (cheaper than Starlette's
BaseHTTPMiddleware on the hot /status path): the request id (kept from `x-request-id`
or made, echoed, in every log line), Prometheus counts and latency, the access log."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentjobs.server import telemetry
from agentjobs.server.api.metrics import Metrics
from agentjobs.server.api.request_context import REQUEST_ID_KEY, new_request_id, request_id_var

log = logging.getLogger("agentjobs.access")

# Metric labels only for the paths we serve: a scanner's random paths must not grow the
# label set without bound.
KNOWN_PATHS = frozenset(
    {
        "/start_job",
        "/status",
        "/provide_input",
        "/availability",
        "/input_schema",
        "/demo",
        "/metrics",
        "/healthz",
    }
)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _header(scope, REQUEST_ID_KEY.encode())
        request_id = new_request_id(given.decode("latin-1") if given is not None else None)
        token = request_id_var.set(request_id)
        telemetry.tag_request_id(request_id)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((REQUEST_ID_KEY.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
            self._metrics.http_requests.labels(path, str(status)).inc()
            self._metrics.http_latency.labels(path).observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info("%s %s %d %.1fms", scope["method"], path, status, elapsed * 1000)
            request_id_var.reset(token)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None
