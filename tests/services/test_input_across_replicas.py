"""A job awaiting input holds no lease: the answer given to any replica resumes it. The
replica whose handler waits for the answer gets it first (the handler goes on where it
stopped); when that replica is gone, another runs the job again with the earlier
answers replayed. Two replicas in this process on one PostgreSQL schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import pytest

from agentjobs.server.domain import EventType, JobStatus
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.testing import RunningServer
from tests.repository.conftest import POSTGRES_URL, require_postgres
from tests.services.agents import ScriptedAgent
from tests.services.conftest import serve
from tests.services.support import history, start, watch_until

pytestmark = pytest.mark.postgres


@pytest.fixture
async def schema_url() -> AsyncIterator[str]:
    await require_postgres()
    schema = f"agentjobs_hitl_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


async def ran_on(server: RunningServer, job_id: str) -> list[str]:
    return [e.detail for e in await history(server, job_id) if e.type is EventType.STARTED]


async def two_replicas(
    stack: AsyncExitStack,
    tmp_path: Path,
    payment_service: SandboxPaymentService,
    scripted: ScriptedAgent,
    url: str,
) -> tuple[RunningServer, RunningServer]:
    servers = []
    for name in ("replica-a", "replica-b"):
        directory = tmp_path / name
        directory.mkdir()
        servers.append(
            await stack.enter_async_context(
                serve(
                    directory,
                    payment_service,
                    scripted.agent,
                    database_url=url,
                    replica_id=name,
                    lease_s=2,
                )
            )
        )
    return servers[0], servers[1]


async def test_an_answer_to_another_replica_resumes_the_waiting_handler(
    tmp_path: Path, payment_service: SandboxPaymentService, scripted: ScriptedAgent, schema_url: str
) -> None:
    async with AsyncExitStack() as stack:
        a, b = await two_replicas(stack, tmp_path, payment_service, scripted, schema_url)
        job = await start(a, text="hi", mode="ask")
        await payment_service.lock_funds(job.blockchain_identifier)
        asking = await watch_until(a, job.job_id, lambda j: j.status is JobStatus.AWAITING_INPUT)
        (runner,) = await ran_on(a, job.job_id)
        other = b if runner.endswith("replica-a") else a

        await other.app.jobs.provide_input(job.job_id, asking.status_id, {"colour": "red"})
        approval = await watch_until(
            other,
            job.job_id,
            lambda j: j.status is JobStatus.AWAITING_INPUT and j.status_id != asking.status_id,
        )
        await other.app.jobs.provide_input(job.job_id, approval.status_id, {"approve": True})
        done = await watch_until(other, job.job_id)
    assert (done.status, done.result) == (JobStatus.COMPLETED, "hi in red, approved")
    # The handler that asked went on where it stopped: it ran once.
    assert len(scripted.calls) == 1


async def test_when_the_waiting_replica_is_gone_another_runs_the_job_with_the_answers(
    tmp_path: Path, payment_service: SandboxPaymentService, scripted: ScriptedAgent, schema_url: str
) -> None:
    async with AsyncExitStack() as stack:
        a, b = await two_replicas(stack, tmp_path, payment_service, scripted, schema_url)
        job = await start(a, text="hi", mode="ask")
        await payment_service.lock_funds(job.blockchain_identifier)
        asking = await watch_until(a, job.job_id, lambda j: j.status is JobStatus.AWAITING_INPUT)
        (runner,) = await ran_on(a, job.job_id)
        holder, survivor = (a, b) if runner.endswith("replica-a") else (b, a)
        await survivor.app.jobs.provide_input(job.job_id, asking.status_id, {"colour": "blue"})
        approval = await watch_until(
            survivor,
            job.job_id,
            lambda j: j.status is JobStatus.AWAITING_INPUT and j.status_id != asking.status_id,
        )
        # The replica whose handler waits stops; the second answer reaches the other one.
        await holder.app.stop()
        await survivor.app.jobs.provide_input(job.job_id, approval.status_id, {"approve": False})
        done = await asyncio.wait_for(watch_until(survivor, job.job_id, within_s=30), 30)
        runs = await ran_on(survivor, job.job_id)
    assert (done.status, done.result) == (JobStatus.COMPLETED, "hi in blue, declined")
    # Run again on the survivor, the first answer replayed to it.
    assert len(scripted.calls) == 2
    assert runs[-1].endswith(survivor.app.replica_id)
