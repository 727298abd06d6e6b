"""The HTTP front's connection limits over real sockets: a header timeout, a body
timeout, an idle keep-alive timeout, a request limit per connection and a connection
cap, so no number of slow or idle clients exhausts the process's file descriptors."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentjobs.server.testing import RunningServer, running_server
from tests.reliability.server_process import start_server_process

SHORT: dict[str, Any] = {
    "http_header_timeout_s": 0.5,
    "http_body_timeout_s": 0.5,
    "http_keepalive_timeout_s": 0.5,
}


@pytest.fixture
async def short_timeouts(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path, sandbox_lock_after_s=3600, **SHORT) as server:
        yield server


async def connect(server: RunningServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(server.app.http.host, server.app.http.port)


async def closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), within_s)


async def test_500_partial_header_connections_are_closed_after_the_header_timeout(
    short_timeouts: RunningServer,
) -> None:
    connections = [await connect(short_timeouts) for _ in range(500)]
    for _reader, writer in connections:
        writer.write(b"GET /status?job_id=x HTTP/1.1\r\nhost: x\r\nx-slow: ")
    await asyncio.gather(*(writer.drain() for _, writer in connections))
    answers = await asyncio.gather(*(closed_by_server(reader, 15) for reader, _ in connections))
    assert answers == [b""] * 500, "closed without an answer: no request was complete"
    for _, writer in connections:
        writer.close()
    async with aiohttp.ClientSession() as http, http.get(f"{short_timeouts.http_url}/healthz") as r:
        assert r.status == 200


async def test_a_connection_that_sends_nothing_is_closed(short_timeouts: RunningServer) -> None:
    reader, writer = await connect(short_timeouts)
    assert await closed_by_server(reader, 10) == b""
    writer.close()


async def test_a_body_that_never_completes_is_cut_off(short_timeouts: RunningServer) -> None:
    reader, writer = await connect(short_timeouts)
    writer.write(
        b"POST /start_job HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b'content-length: 1000\r\n\r\n{"identifier_from'
    )
    await writer.drain()
    assert await closed_by_server(reader, 10) == b""
    writer.close()
    assert await short_timeouts.app.repository.count() == 0


async def test_an_idle_keep_alive_connection_is_closed(short_timeouts: RunningServer) -> None:
    reader, writer = await connect(short_timeouts)
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    await writer.drain()
    answer = await closed_by_server(reader, 10)
    assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" not in answer.lower()
    writer.close()


async def test_a_keep_alive_connection_serves_a_bounded_number_of_requests(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, http_max_requests_per_connection=3) as server:
        reader, writer = await connect(server)
        heads = []
        for _ in range(3):
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            heads.append(head.lower())
        assert all(b"connection: close" not in head for head in heads[:2])
        assert b"connection: close" in heads[2]
        assert await closed_by_server(reader, 10) == b""
        writer.close()


async def test_connections_beyond_the_cap_are_turned_away_at_once(tmp_path: Path) -> None:
    async with running_server(
        tmp_path, http_max_connections=20, http_header_timeout_s=30
    ) as server:
        held = [await connect(server) for _ in range(20)]
        # The server has registered them all once it answers on one of them.
        reader, writer = held[0]
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        turned_away = [await connect(server) for _ in range(50)]
        answers = await asyncio.gather(*(closed_by_server(r, 10) for r, _ in turned_away))
        for answer in answers:
            assert answer.startswith(b"HTTP/1.1 503")
            assert b'"reason": "TOO_MANY_CONNECTIONS"' in answer
        assert len(server.app.http._server.server_state.connections) <= 20
        for _, w in (*held, *turned_away):
            w.close()


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
async def test_a_flood_of_idle_connections_does_not_exhaust_descriptors(tmp_path: Path) -> None:
    """~20k idle connections, scaled to the process: the server runs with a descriptor
    limit of 1024 and takes 3,000 connections that send half a request; it stays within
    its limit, keeps answering gRPC health, and answers HTTP again once they are cut."""
    wanted = 3000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted + 200:
        pytest.skip(f"the test process itself needs {wanted + 200} descriptors (ulimit -n)")
    # The child inherits the limit in force when it is started.
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        server = await start_server_process(
            tmp_path,
            {
                "AGENTJOBS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'flood.db'}",
                "AGENTJOBS_HTTP_HEADER_TIMEOUT_S": "2",
            },
        )
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    host, port = server.http_url.removeprefix("http://").split(":")
    sockets: list[socket.socket] = []
    peak = 0
    try:
        for index in range(wanted):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            sockets.append(sock)
            if index % 500 == 0:
                peak = max(peak, open_fds(server.process.pid))
        peak = max(peak, open_fds(server.process.pid))
        assert server.process.returncode is None
        assert peak < 1024, f"the server held {peak} descriptors"
        async with grpc.aio.insecure_channel(server.grpc_target) as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        # Past the header timeout every one of them is closed: HTTP answers again.
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(30):
                while True:
                    async with http.get(f"{server.http_url}/healthz") as response:
                        if response.status == 200:
                            break
                        assert response.status == 503
                    await asyncio.sleep(0.2)
    finally:
        for sock in sockets:
            sock.close()
        await server.terminate()
