"""Helpers of the money-path suites: a server clock the test moves, a sandbox whose chain
moves only when told, a recorder of what the sandbox received and answered, and the
gRPC / HTTP calls the tests make."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from google.protobuf import struct_pb2

from agentjobs.server.agent import Agent
from agentjobs.server.app import App
from agentjobs.server.domain import Job
from agentjobs.server.payments.sandbox import (
    ManualClock,
    SandboxPaymentService,
    add_request_observer,
    add_response_observer,
)
from agentjobs.server.services.core import Clock
from agentjobs.server.testing import TEST_OPERATOR_TOKEN, RunningServer, settings_for_tests
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc, operator_pb2_grpc
from tests.services.conftest import AGENT_IDENTIFIER, API_KEY

MINUTE = 60
OPERATOR = (("authorization", f"Bearer {TEST_OPERATOR_TOKEN}"),)
POST_PAYMENT = ("POST", "/api/v1/payment")
SUBMIT_RESULT = ("POST", "/api/v1/payment/submit-result")
RECOVERY = ("POST", "/api/v1/payment/error-state-recovery")


class SteppedClock(Clock):
    """The server's clock: wall time plus whatever the test has added. Moving it lets a
    test reach payByTime or the last moment to submit without waiting for it."""

    def __init__(self) -> None:
        self._offset_ms = 0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(milliseconds=self._offset_ms)

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self._offset_ms

    def advance(self, seconds: float) -> None:
        self._offset_ms += round(seconds * 1000)

    def advance_to(self, epoch_ms: int) -> None:
        """On to `epoch_ms` (never backwards)."""
        self._offset_ms += max(0, epoch_ms - self.now_ms())


@asynccontextmanager
async def serve_as(
    tmp_path: Path,
    payment_service: SandboxPaymentService,
    agent: Agent,
    *,
    clock: Clock | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningServer]:
    """Like conftest.serve, but any setting may be overridden (the API key, the agent
    identifier) and the server's clock may be replaced."""
    values: dict[str, Any] = {
        "payment_service_url": payment_service.url,
        "payment_api_key": API_KEY,
        "agent_identifier": AGENT_IDENTIFIER,
    }
    values.update(overrides)
    app = App(settings_for_tests(tmp_path, **values), agent=agent, clock=clock)
    await app.start()
    try:
        yield RunningServer(
            app=app,
            grpc_target=app.grpc_target,
            http_url=app.http_url,
            operator_token=TEST_OPERATOR_TOKEN,
        )
    finally:
        await app.stop()


def serve_clocked(
    tmp_path: Path,
    payment_service: SandboxPaymentService,
    agent: Agent,
    clock: Clock,
    **overrides: Any,
) -> AbstractAsyncContextManager[RunningServer]:
    """A server whose clock is `clock`. Leases last an hour unless said otherwise, so
    moving the clock never makes a held step look abandoned."""
    overrides.setdefault("lease_s", 3600)
    return serve_as(tmp_path, payment_service, agent, clock=clock, **overrides)


@asynccontextmanager
async def sandbox(**knobs: Any) -> AsyncIterator[SandboxPaymentService]:
    """A sandbox on loopback: the buyer pays only when told; the chain's jobs run every
    10 ms (their order and windows are upstream's) unless `knobs` say otherwise."""
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "lock_after": None,
        "settle_after": 0.02,
        "job_interval": 0.01,
        "decision_interval": 0.01,
    }
    values.update(knobs)
    port = values.pop("port", 0)
    service = SandboxPaymentService(**values)
    await service.start("127.0.0.1", port)
    try:
        yield service
    finally:
        await service.stop()


@asynccontextmanager
async def stepped_sandbox(**knobs: Any) -> AsyncIterator[tuple[SandboxPaymentService, ManualClock]]:
    """A sandbox whose chain (and clock) moves only when the test advances it."""
    clock = ManualClock()
    async with sandbox(clock=clock, **knobs) as service:
        yield service, clock


@dataclass
class Exchange:
    method: str
    path: str
    body: Any
    status: int | None = None


@dataclass
class SandboxTraffic:
    """Every request any sandbox in this process received, and every answer it gave
    (paths relative to /api/v1). `wait` blocks until a predicate over them holds."""

    requests: list[Exchange] = field(default_factory=list)
    answers: list[Exchange] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _seen_request(self, method: str, path: str, body: Any) -> None:
        self.requests.append(Exchange(method, path, body))
        self._wake()

    def _seen_answer(self, method: str, path: str, status: int, body: Any) -> None:
        self.answers.append(Exchange(method, path, body, status))
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def bodies(self, path: str, method: str = "POST") -> list[Any]:
        return [r.body for r in self.requests if (r.method, r.path) == (method, path)]

    def answered(self, path: str, status: int | None = None) -> list[Exchange]:
        return [
            a for a in self.answers if a.path == path and (status is None or a.status == status)
        ]

    async def wait(self, done: Callable[[], bool], within_s: float = 10) -> None:
        async with asyncio.timeout(within_s):
            while not done():
                await self._changed.wait()


@contextmanager
def sandbox_traffic() -> Iterator[SandboxTraffic]:
    traffic = SandboxTraffic()
    remove_requests = add_request_observer(traffic._seen_request)
    remove_answers = add_response_observer(traffic._seen_answer)
    try:
        yield traffic
    finally:
        remove_requests()
        remove_answers()


async def requests_report(payment_service: SandboxPaymentService) -> dict[str, Any]:
    """GET /sandbox/requests over HTTP: what the sandbox received."""
    base = payment_service.url.removesuffix("/api/v1")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/sandbox/requests", headers={"token": API_KEY}) as response,
    ):
        assert response.status == 200
        answer: dict[str, Any] = (await response.json())["data"]
        return answer


def request_count(report: dict[str, Any], method: str, path: str) -> int:
    return sum(r["count"] for r in report["requests"] if (r["method"], r["path"]) == (method, path))


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def job_stub(channel: grpc.aio.Channel) -> jobs_pb2_grpc.JobServiceStub:
    return jobs_pb2_grpc.JobServiceStub(channel)


def operator_stub(channel: grpc.aio.Channel) -> operator_pb2_grpc.OperatorServiceStub:
    return operator_pb2_grpc.OperatorServiceStub(channel)


async def watch_to_the_end(
    stub: jobs_pb2_grpc.JobServiceStub, job_id: str, within_s: float = 10
) -> jobs_pb2.Job:
    """The job as WatchJob's last update shows it (the stream ends at a terminal status)."""
    last = None
    async with asyncio.timeout(within_s):
        async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
            last = update.job
    assert last is not None
    return last


async def job_until(
    server: RunningServer, job_id: str, done: Callable[[Job], bool], within_s: float = 10
) -> Job:
    """The job once `done` holds for it, woken by every write to it (terminal or not:
    a completed job's payment still changes)."""
    repository = server.app.repository
    async with asyncio.timeout(within_s):
        with repository.changes.subscribe(job_id) as changed:
            while True:
                changed.clear()
                job = await repository.get(job_id)
                if done(job):
                    return job
                await changed.wait()


async def post_json(
    http: aiohttp.ClientSession, path: str, body: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(path, json=body) as response:
        return response.status, await response.json()


async def get_json(http: aiohttp.ClientSession, path: str) -> tuple[int, dict[str, Any]]:
    async with http.get(path) as response:
        return response.status, await response.json()
