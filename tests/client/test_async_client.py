"""AsyncJobClient: every method against a live server on the test's own event loop."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import grpc
import pytest

from agentjobs.client import (
    AlreadyExists,
    AsyncJobClient,
    FailedPrecondition,
    InvalidArgument,
    JobNotFound,
    PermissionDenied,
    Unauthenticated,
)
from agentjobs.server.testing import RunningServer
from agentjobs.v1 import jobs_pb2, operator_pb2


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[AsyncJobClient]:
    async with AsyncJobClient(
        server.grpc_target, operator_token=server.operator_token
    ) as job_client:
        yield job_client


async def until_status(client: AsyncJobClient, job_id: str, status: int) -> jobs_pb2.Job:
    async for update in client.watch(job_id, timeout=20):
        if update.job.status == status:
            return update.job
    raise AssertionError(f"job {job_id} never reached {jobs_pb2.JobStatus.Name(status)}")


async def test_the_agent_describes_itself(client: AsyncJobClient) -> None:
    availability = await client.get_availability()
    assert availability.availability == jobs_pb2.AVAILABILITY_AVAILABLE
    assert availability.type == "masumi-agent"
    schema = (await client.get_input_schema()).input_schema
    assert [f.id for f in schema.input_data] == ["text", "ask_for_review"]
    assert dict((await client.get_demo()).output) == {"result": "HELLO MASUMI!"}


async def test_watch_yields_the_snapshot_then_events_to_the_end(
    server: RunningServer, client: AsyncJobClient
) -> None:
    started = await client.start_job({"text": "async"})
    assert re.fullmatch(r"([0-9a-f]{2}){7,13}", started.identifier_from_purchaser)
    status = await client.get_job_status(started.job_id)
    assert status.status == jobs_pb2.JOB_STATUS_AWAITING_PAYMENT

    updates: list[jobs_pb2.WatchJobResponse] = []
    async with asyncio.timeout(20):
        async for update in client.watch(started.job_id):
            updates.append(update)
            if len(updates) == 1:  # the snapshot is in: now the buyer pays
                await server.sandbox.lock_funds(started.blockchain_identifier)
    snapshot, *events = updates
    assert not snapshot.HasField("event")
    assert snapshot.job.status == jobs_pb2.JOB_STATUS_AWAITING_PAYMENT
    assert [u.event.sequence for u in events] == sorted(u.event.sequence for u in events)
    assert events[0].event.type == jobs_pb2.JOB_EVENT_TYPE_FUNDS_LOCKED
    assert events[-1].event.type == jobs_pb2.JOB_EVENT_TYPE_COMPLETED
    final = await client.wait(started.job_id, timeout=10)
    assert final.status == jobs_pb2.JOB_STATUS_COMPLETED and final.result == "ASYNC!"


async def test_provide_input_and_list_jobs(server: RunningServer, client: AsyncJobClient) -> None:
    started = await client.start_job({"text": "review", "ask_for_review": True})
    other = await client.start_job({"text": "other"})
    await server.sandbox.lock_funds(started.blockchain_identifier)
    asked = await until_status(client, started.job_id, jobs_pb2.JOB_STATUS_AWAITING_INPUT)

    waiting = await client.list_jobs(status="awaiting_input")
    assert [j.job_id for j in waiting.jobs] == [started.job_id]
    assert [j.job_id async for j in client.iter_jobs(page_size=1)] == [
        other.job_id,
        started.job_id,
    ]
    receipt = await client.provide_input(started.job_id, asked.status_id, {"approve": True})
    assert re.fullmatch(r"[0-9a-f]{64}", receipt.input_hash)
    assert (await client.wait(started.job_id, timeout=20)).result == "REVIEW!"


async def test_start_job_is_idempotent_on_request_id(client: AsyncJobClient) -> None:
    first = await client.start_job({"text": "once"}, request_id="async-retry")
    again = await client.start_job({"text": "once"}, request_id="async-retry")
    assert (again.job_id, again.blockchain_identifier) == (
        first.job_id,
        first.blockchain_identifier,
    )
    with pytest.raises(AlreadyExists):
        await client.start_job({"text": "changed"}, request_id="async-retry")
    assert len((await client.list_invoices()).invoices) == 1


async def test_operator_methods(client: AsyncJobClient) -> None:
    kept = await client.start_job({"text": "kept"})
    dropped = await client.start_job({"text": "dropped"})
    cancelled = await client.cancel_job(dropped.job_id, "changed my mind")
    assert cancelled.job.error.message == "changed my mind"
    report = await client.get_earnings_report()
    assert (report.pending.count, report.expired.count) == (1, 1)
    assert [(a.amount, a.unit) for a in report.expired.amounts] == [(10_000_000, "")]
    paid = await client.list_invoices(status=operator_pb2.INVOICE_STATUS_PENDING)
    assert [i.job_id for i in paid.invoices] == [kept.job_id]
    assert [i.job_id async for i in client.iter_invoices(page_size=1)] == [
        dropped.job_id,
        kept.job_id,
    ]


async def test_errors_are_decoded_from_the_rich_status(
    server: RunningServer, client: AsyncJobClient
) -> None:
    with pytest.raises(JobNotFound) as missing:
        await client.get_job_status("no-such-job")
    assert (missing.value.code, missing.value.reason) == (
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    with pytest.raises(JobNotFound):
        await client.wait("no-such-job", timeout=10)

    with pytest.raises(InvalidArgument) as bad:
        await client.start_job({}, identifier_from_purchaser="abc")
    fields = dict(bad.value.field_violations)
    assert "identifier_from_purchaser" in fields
    assert bad.value.reason and "identifier_from_purchaser" in bad.value.describe()

    started = await client.start_job({"text": "unpaid"})
    await client.cancel_job(started.job_id)
    with pytest.raises(FailedPrecondition) as twice:
        await client.cancel_job(started.job_id)
    assert twice.value.code == grpc.StatusCode.FAILED_PRECONDITION

    async with AsyncJobClient(server.grpc_target) as anonymous:
        with pytest.raises(Unauthenticated):
            await anonymous.list_invoices()
    async with AsyncJobClient(server.grpc_target, operator_token="nope") as impostor:
        with pytest.raises(PermissionDenied) as denied:
            await impostor.get_earnings_report()
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
