"""Runs the MIP-003 FastAPI app with uvicorn inside our event loop, on a socket we bind
ourselves (so port 0 works and the port is known before serving), behind the limits
uvicorn lacks.

uvicorn closes a keep-alive connection that stays idle, but nothing else: a connection
that sends half a request line, or headers one byte a minute, or no body after its
headers, stays open for good, and enough of them exhaust the file descriptors (health
checks time out with everything else). The guarded protocol below adds
- a connection cap: beyond it a new connection gets 503 and is closed at once, so the
  process never holds more sockets than the cap (plus the ones being turned away);
- a header timeout: from the connection's start, or the end of the previous response,
  until the request's headers are complete;
- a body timeout: from then until the request's body is complete;
- a request limit per keep-alive connection: the last answer says `connection: close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import socket
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from agentjobs.server import telemetry

log = logging.getLogger(__name__)

# File descriptors kept for everything but HTTP connections (gRPC, the database, the
# payment-service pool, logs).
FD_RESERVE = 256
# The listen backlog, which is also how many connections asyncio accepts in one go
# before any of them is seen (and a connection beyond the cap closed): uvicorn's 2048
# let a burst take 2048 descriptors at once, past the cap.
BACKLOG = 128


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 1000
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keepalive_timeout_s: float = 5.0
    max_requests_per_connection: int = 1000


def _refusal() -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": "UNAVAILABLE",
                "reason": "TOO_MANY_CONNECTIONS",
                "message": "the server holds as many connections as it allows; retry later",
                "field_violations": [],
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


_REFUSAL = _refusal()


def guarded_protocol(limits: HttpLimits) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools, else h11) with the limits of the module doc.

    Only attributes both implementations share are used: `cycle` (the request being
    served, replaced when a new request's headers are complete), its `more_body` and
    `keep_alive`, `server_state.connections`, and the `on_response_complete` hook."""
    base: Any = AutoHTTPProtocol

    class GuardedHttpProtocol(base):
        _timer: asyncio.TimerHandle | None = None
        _requests = 0
        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:
            if len(self.server_state.connections) >= limits.max_connections:
                # Not registered, never read: answered and closed at once.
                self._refused = True
                self.transport = transport
                transport.write(_REFUSAL)
                transport.close()
                return
            super().connection_made(transport)
            self._arm(limits.header_timeout_s)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._refused:
                return
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            before = self.cycle
            super().data_received(data)
            cycle = self.cycle
            if cycle is None:
                return
            if cycle is not before:
                # A new request's headers are complete.
                self._requests += 1
                if self._requests >= limits.max_requests_per_connection:
                    cycle.keep_alive = False
                if cycle.more_body:
                    self._arm(limits.body_timeout_s)
                else:
                    self._disarm()
            elif self._timer is not None and not cycle.more_body and not cycle.response_complete:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm(limits.header_timeout_s)

        def _arm(self, delay: float) -> None:
            self._disarm()
            self._timer = self.loop.call_later(delay, self._timed_out)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _timed_out(self) -> None:
            self._timer = None
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete and not cycle.more_body:
                return  # a whole request is being answered; its end re-arms the timer
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedHttpProtocol


def fitting_connection_cap(wanted: int) -> int:
    """The cap, lowered (with a warning) to what the file-descriptor limit allows."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    room = max(soft - FD_RESERVE - BACKLOG, soft // 2)
    if wanted > room:
        log.warning(
            "AGENTJOBS_HTTP_MAX_CONNECTIONS=%d does not fit the file-descriptor limit %d "
            "(ulimit -n); using %d",
            wanted,
            soft,
            room,
        )
        return room
    return wanted


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The application owns SIGTERM/SIGINT and shuts uvicorn down itself.
        yield


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address must be host:port, got {address!r}")
    return host.strip("[]"), int(port)


class HttpServer:
    def __init__(
        self,
        app: FastAPI,
        address: str,
        limits: HttpLimits | None = None,
        *,
        reuse_port: bool = False,
    ) -> None:
        app = telemetry.asgi_app(app)
        limits = limits or HttpLimits()
        limits = HttpLimits(
            max_connections=fitting_connection_cap(limits.max_connections),
            header_timeout_s=limits.header_timeout_s,
            body_timeout_s=limits.body_timeout_s,
            keepalive_timeout_s=limits.keepalive_timeout_s,
            max_requests_per_connection=limits.max_requests_per_connection,
        )
        self.limits = limits
        host, port = split_address(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says
        # TCP, and accepted sockets inherit the listener's. Without it, Nagle's algorithm
        # and the client's delayed ACK hold each keep-alive response back ~40 ms.
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._socket.bind((host, port))
        self._socket.setblocking(False)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            http=guarded_protocol(limits),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            backlog=BACKLOG,
            timeout_keep_alive=limits.keepalive_timeout_s,  # type: ignore[arg-type]
        )
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises the start-up error
                raise OSError("the HTTP server stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._socket.close()
