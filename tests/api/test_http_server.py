"""The HTTP server's sockets: accepted connections must have TCP_NODELAY, or Nagle's
algorithm and the client's delayed ACK hold keep-alive responses back ~40 ms."""

from __future__ import annotations

import asyncio
import socket

from fastapi import FastAPI

from agentjobs.server.api.http_server import HttpServer


async def test_accepted_connections_have_tcp_nodelay() -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    server = HttpServer(app, "127.0.0.1:0")
    await server.start()
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET /ping HTTP/1.1\r\nhost: x\r\n\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        connections = server._server.server_state.connections
        assert connections
        for connection in connections:
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        writer.close()
        await writer.wait_closed()
    finally:
        await server.stop()
