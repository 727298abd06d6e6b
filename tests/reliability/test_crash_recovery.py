"""Crash: a server subprocess under steady load is SIGKILLed several times and restarted
on the same database. Every job the caller was answered for reaches COMPLETED, none is
lost or stuck, a retried StartJob never makes a second job, and no payment gets two
accepted submit-results (the sandbox counts them)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.testing import TEST_OPERATOR_TOKEN
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.reliability.server_process import ServerProcess, start_server_process

pytestmark = pytest.mark.slow

API_KEY = "crash-test-payment-key"
AGENT_IDENTIFIER = "crashtest" + "0" * 60
# Listing jobs is an operator call (docs/SECURITY.md).
OPERATOR = (("authorization", f"Bearer {TEST_OPERATOR_TOKEN}"),)
KILLS = 3
WORKERS = 4
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
}


@dataclass
class Load:
    """Callers that start jobs without pause and retry each StartJob with its request_id
    until some server instance answers it."""

    stub: jobs_pb2_grpc.JobServiceStub | None = None
    up: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    # request_id -> (job_id, text) of every answered StartJob.
    answered: dict[str, tuple[str, str]] = field(default_factory=dict)
    retried: int = 0

    async def worker(self) -> None:
        while not self.stopping:
            request_id, text = str(uuid.uuid4()), f"job {uuid.uuid4().hex[:8]}"
            data = struct_pb2.Struct()
            data.update({"text": text})
            request = jobs_pb2.StartJobRequest(
                identifier_from_purchaser=uuid.uuid4().hex[:16],
                input_data=data,
                request_id=request_id,
            )
            while True:
                await self.up.wait()
                assert self.stub is not None
                try:
                    started = await self.stub.StartJob(request, timeout=5)
                except grpc.aio.AioRpcError as error:
                    assert error.code() in RETRYABLE, error
                    self.retried += 1
                    # Back off until the next server instance is up.
                    await asyncio.sleep(0.05)
                    continue
                previous = self.answered.setdefault(request_id, (started.job_id, text))
                assert previous[0] == started.job_id, "a retry made a second job"
                break


async def all_jobs(stub: jobs_pb2_grpc.JobServiceStub) -> list[jobs_pb2.Job]:
    jobs: list[jobs_pb2.Job] = []
    token = ""
    while True:
        page = await stub.ListJobs(
            jobs_pb2.ListJobsRequest(page_size=1000, page_token=token), metadata=OPERATOR
        )
        jobs.extend(page.jobs)
        if not page.next_page_token:
            return jobs
        token = page.next_page_token


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxPaymentService]:
    service = SandboxPaymentService(api_key=API_KEY, lock_after=0.3, settle_after=0.05)
    await service.start("127.0.0.1", 0)
    try:
        yield service
    finally:
        await service.stop()


async def test_sigkill_under_load_loses_nothing(
    tmp_path: Path, sandbox: SandboxPaymentService
) -> None:
    env = {
        "PAYMENT_SERVICE_URL": sandbox.url,
        "PAYMENT_API_KEY": API_KEY,
        "AGENT_IDENTIFIER": AGENT_IDENTIFIER,
        "AGENTJOBS_AGENT": "tests.reliability.agents:slow_shout",
        "AGENTJOBS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}",
        "AGENTJOBS_MONITOR_INTERVAL_S": "0.05",
        "AGENTJOBS_SUBMIT_MARGIN_S": "0",
        "AGENTJOBS_CHAIN_PICKUP_S": "0",
        "AGENTJOBS_SHUTDOWN_GRACE_S": "5",
        "AGENTJOBS_LEASE_S": "2",
        "AGENTJOBS_WORKER_POLL_S": "0.1",
        "AGENTJOBS_OPERATOR_TOKEN": TEST_OPERATOR_TOKEN,
    }
    load = Load()
    workers = [asyncio.create_task(load.worker()) for _ in range(WORKERS)]
    seen_at_kill: Counter[int] = Counter()
    server: ServerProcess | None = None
    # Channels stay open until the workers are done: closing one under an in-flight call
    # cancels the caller's task instead of failing the call with UNAVAILABLE.
    channels = contextlib.AsyncExitStack()
    try:
        for _ in range(KILLS):
            server = await start_server_process(tmp_path, env)
            channel = await channels.enter_async_context(
                grpc.aio.insecure_channel(server.grpc_target)
            )
            load.stub = jobs_pb2_grpc.JobServiceStub(channel)
            load.up.set()
            await asyncio.sleep(random.uniform(1.0, 2.0))  # steady load until the kill
            seen_at_kill.update(job.status for job in await all_jobs(load.stub))
            load.up.clear()
            await server.kill()

        server = await start_server_process(tmp_path, env)
        async with grpc.aio.insecure_channel(server.grpc_target) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            load.stub = stub
            load.up.set()
            load.stopping = True
            await asyncio.wait_for(asyncio.gather(*workers), 60)

            async with asyncio.timeout(90):
                while True:
                    jobs = await all_jobs(stub)
                    if all(job.status == jobs_pb2.JOB_STATUS_COMPLETED for job in jobs):
                        break
                    await asyncio.sleep(0.2)  # the server's own progress, polled
        assert await server.terminate() == 0, server.text
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await channels.aclose()
        if server is not None and server.process.returncode is None:
            await server.kill()

    # The kills landed while jobs were in flight, not only between them.
    assert seen_at_kill[jobs_pb2.JOB_STATUS_AWAITING_PAYMENT] > 0, seen_at_kill
    assert seen_at_kill[jobs_pb2.JOB_STATUS_RUNNING] > 0, seen_at_kill
    assert load.retried > 0, "no StartJob was cut off by a kill"

    by_id = {job.job_id: job for job in jobs}
    assert set(by_id) == {job_id for job_id, _ in load.answered.values()}, "lost or extra jobs"
    for job_id, text in load.answered.values():
        job = by_id[job_id]
        assert job.result == text.upper() + "!"
        assert sandbox.accepted_submissions(job.blockchain_identifier) == 1, job
