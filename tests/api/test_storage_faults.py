"""Database faults of the moment answer UNAVAILABLE (HTTP 503, reason STORAGE_UNAVAILABLE),
which clients retry, and quickly: a write-locked SQLite file, a PostgreSQL that went
away. Never INTERNAL, never after 30 s."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import grpc
import pytest
from google.protobuf import struct_pb2
from sqlalchemy import exc as sa_exc

from agentjobs.server.api.errors import http_body, to_rpc_status
from agentjobs.server.domain import StorageUnavailableError
from agentjobs.server.repository.drivers.sqlite import (
    WRITE_BUSY_TIMEOUT_MS as SQLITE_BUSY_TIMEOUT_MS,
)
from agentjobs.server.repository.drivers.storage_errors import is_storage_fault
from agentjobs.server.testing import running_server
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.repository.conftest import POSTGRES_URL, fresh_backend
from tests.support import error_details, free_port

IDENT = "aabbccddeeff0011"
# A client's default deadline (agentjobs.client): the answer must come well before it.
CLIENT_DEADLINE_S = 10.0


def start_request(text: str) -> jobs_pb2.StartJobRequest:
    data = struct_pb2.Struct()
    data.update({"text": text})
    return jobs_pb2.StartJobRequest(identifier_from_purchaser=IDENT, input_data=data)


@contextlib.contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """Another connection (another process, as far as the server knows) holds the
    database's write lock."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_write_locked_sqlite_answers_unavailable_before_the_deadline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert SQLITE_BUSY_TIMEOUT_MS / 1000 < CLIENT_DEADLINE_S / 2
    async with (
        running_server(tmp_path, sandbox_lock_after_s=3600) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
        aiohttp.ClientSession(base_url=server.http_url) as http,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        earlier = await stub.StartJob(start_request("before the lock"))
        with write_locked(tmp_path / "agentjobs.db"):
            began = time.monotonic()

            async def over_grpc() -> grpc.aio.AioRpcError:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.StartJob(start_request("locked out"), timeout=CLIENT_DEADLINE_S)
                return caught.value

            async def over_http() -> tuple[int, dict[str, object]]:
                async with http.post(
                    "/start_job",
                    json={"identifier_from_purchaser": IDENT, "input_data": {"text": "x"}},
                ) as response:
                    return response.status, await response.json()

            error, (status, body) = await asyncio.gather(over_grpc(), over_http())
            took = time.monotonic() - began
            # Reads never wait for the writer (WAL).
            read = await stub.GetJobStatus(
                jobs_pb2.GetJobStatusRequest(job_id=earlier.job_id), timeout=2
            )
            assert read.job_id == earlier.job_id
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert error_details(error)[0] == "STORAGE_UNAVAILABLE"
        assert status == 503
        assert body["error"]["reason"] == "STORAGE_UNAVAILABLE"  # type: ignore[index]
        assert took < CLIENT_DEADLINE_S - 2, f"answered after {took:.1f}s"
        # Logged for the operator, without the statement's parameters (the buyer's input).
        assert "database write failed: OperationalError: database is locked" in caplog.text
        assert "locked out" not in caplog.text
        # The lock is gone: the same call works.
        assert (await stub.StartJob(start_request("after the lock"))).job_id


async def test_a_job_that_cannot_be_stored_requests_no_payment(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, sandbox_lock_after_s=3600) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        with (
            write_locked(tmp_path / "agentjobs.db"),
            pytest.raises(grpc.aio.AioRpcError),
        ):
            await stub.StartJob(start_request("no orphan"), timeout=CLIENT_DEADLINE_S)
        assert server.sandbox.request_counts[("POST", "/api/v1/payment")] == 0


class TcpProxy:
    """A TCP forwarder to PostgreSQL that the test can take down and bring back, as a
    database restart or a network cut would."""

    def __init__(self, port: int, upstream: tuple[str, int]) -> None:
        self.port = port
        self._upstream = upstream
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._writers |= {writer, up_writer}

        async def copy(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    target.write(data)
                    await target.drain()
            target.transport.abort()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.mark.postgres
async def test_postgresql_gone_answers_unavailable_and_comes_back(tmp_path: Path) -> None:
    async with fresh_backend("postgres", tmp_path) as backend:
        proxy = TcpProxy(free_port(), ("127.0.0.1", 5432))
        await proxy.up()
        host_port = POSTGRES_URL.split("@", 1)[1].split("/", 1)[0]
        url = backend.url.replace(host_port, f"127.0.0.1:{proxy.port}")
        try:
            async with (
                running_server(tmp_path, database_url=url, sandbox_lock_after_s=3600) as server,
                grpc.aio.insecure_channel(server.grpc_target) as channel,
            ):
                stub = jobs_pb2_grpc.JobServiceStub(channel)
                started = await stub.StartJob(start_request("stored"))
                await proxy.down()
                for call in (
                    stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=started.job_id)),
                    stub.StartJob(start_request("while down")),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await call
                    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
                    assert error_details(caught.value)[0] == "STORAGE_UNAVAILABLE"
                    assert "5432" not in (caught.value.details() or "")
                await proxy.up()
                again = await stub.GetJobStatus(
                    jobs_pb2.GetJobStatusRequest(job_id=started.job_id), timeout=10
                )
                assert again.job_id == started.job_id
        finally:
            if proxy._server is not None:
                await proxy.down()


def test_faults_of_the_moment_are_told_from_bugs() -> None:
    locked = sa_exc.OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
    assert is_storage_fault(locked)
    assert is_storage_fault(
        sa_exc.OperationalError("x", {}, sqlite3.OperationalError("disk I/O error"))
    )
    assert not is_storage_fault(
        sa_exc.OperationalError("x", {}, sqlite3.OperationalError("no such table: jobs"))
    )
    assert is_storage_fault(ConnectionRefusedError(111, "refused"))
    assert is_storage_fault(sa_exc.TimeoutError("QueuePool limit reached"))
    for transient in (
        asyncpg.exceptions.ConnectionDoesNotExistError("closed"),
        asyncpg.exceptions.CannotConnectNowError("starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating"),
        asyncpg.exceptions.TooManyConnectionsError("too many"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock"),
    ):
        wrapped = sa_exc.DBAPIError("SELECT 1", {}, RuntimeError("adapted"))
        wrapped.orig.__cause__ = transient  # type: ignore[union-attr]
        assert is_storage_fault(wrapped), transient
    for bug in (
        asyncpg.exceptions.UniqueViolationError("duplicate"),
        asyncpg.exceptions.UntranslatableCharacterError("\\u0000"),
        sa_exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")),
        ValueError("not a database problem"),
    ):
        assert not is_storage_fault(bug), bug


def test_storage_unavailable_maps_to_unavailable_and_503_without_details() -> None:
    error = StorageUnavailableError("the job store is unavailable for a write")
    status = to_rpc_status(error)
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    http_status, body = http_body(error)
    assert http_status == 503
    assert body["error"]["reason"] == "STORAGE_UNAVAILABLE"  # type: ignore[index]
