"""Issue 4, the happy path end to end over gRPC and the sandbox's real HTTP: start ->
lock -> run -> submit -> completed -> ResultSubmitted -> withdrawn, with the books, the
hashes and the job's history checked at each step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from masumi.helper_functions import create_masumi_input_hash, create_masumi_output_hash

from agentjobs.server.domain import Amount, EventType, InvoiceStatus, JobStatus
from agentjobs.server.domain.payment import PaymentSourceType
from agentjobs.server.payments.gateway import OnChainState
from agentjobs.server.payments.sandbox import (
    ManualClock,
    SandboxPaymentService,
    add_request_observer,
)
from agentjobs.server.repository.base import Watermark
from agentjobs.server.services.monitor import watermark_names
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.services.agents import ScriptedAgent
from tests.services.conftest import API_KEY, serve
from tests.services.support import (
    history,
    invoice,
    poll_round,
    purchaser,
    watch_until,
)

PRICE = Amount(amount=10_000_000, unit="")
JOB_LIFECYCLE = [
    EventType.CREATED,
    EventType.PAYMENT_REQUESTED,
    EventType.FUNDS_LOCKED,
    EventType.STARTED,
    EventType.RESULT_STORED,
    EventType.RESULT_SUBMITTED,
    EventType.COMPLETED,
]
PAYMENT_EVENTS = {EventType.PAYMENT_STATE_CHANGED, EventType.RESULT_CONFIRMED, EventType.WITHDRAWN}


@pytest.fixture
def submitted_hashes() -> Iterator[list[str]]:
    """The submitResultHash of every submit-result any sandbox receives."""
    hashes: list[str] = []

    def record(_method: str, path: str, body: Any) -> None:
        if path == "/payment/submit-result":
            hashes.append(body["submitResultHash"])

    remove = add_request_observer(record)
    yield hashes
    remove()


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


async def watch_to_the_end(stub: jobs_pb2_grpc.JobServiceStub, job_id: str) -> jobs_pb2.Job:
    last = None
    async with asyncio.timeout(10):
        async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
            last = update.job
    assert last is not None
    return last


@pytest.fixture
async def stepped_chain() -> AsyncIterator[tuple[SandboxPaymentService, ManualClock]]:
    """A sandbox whose chain takes each step only when the test moves its clock."""
    clock = ManualClock()
    service = SandboxPaymentService(api_key=API_KEY, lock_after=None, settle_after=1, clock=clock)
    await service.start("127.0.0.1", 0)
    try:
        yield service, clock
    finally:
        await service.stop()


async def test_a_paid_job_completes_is_submitted_once_and_is_withdrawn(
    tmp_path: Path,
    stepped_chain: tuple[SandboxPaymentService, ManualClock],
    scripted: ScriptedAgent,
    submitted_hashes: list[str],
) -> None:
    payment_service, chain_clock = stepped_chain
    identifier = purchaser()
    async with (
        serve(tmp_path, payment_service, scripted.agent) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        started = await stub.StartJob(
            jobs_pb2.StartJobRequest(
                identifier_from_purchaser=identifier,
                input_data=struct({"text": "hello masumi", "mode": "hold"}),
            )
        )
        bid = started.blockchain_identifier
        payment = payment_service.payment(bid)
        assert payment["inputHash"] == started.input_hash
        assert int(payment["payByTime"]) == started.pay_by_time
        job = await server.app.jobs.get_job(started.job_id)
        assert (await invoice(server, job)).status is InvoiceStatus.PENDING

        await payment_service.lock_funds(bid)
        chain_clock.advance(1)  # the buyer's transaction confirms
        await watch_until(server, job.job_id, lambda j: j.status is JobStatus.RUNNING)
        async with asyncio.timeout(10):
            await scripted.wait_for_calls(1)
        paid = await invoice(server, job)
        assert (paid.status, paid.on_chain_state) == (InvoiceStatus.PAID, OnChainState.FUNDS_LOCKED)
        assert paid.paid_at is not None
        assert payment_service.accepted_submissions(bid) == 0

        scripted.gate.set()
        final = await watch_to_the_end(stub, job.job_id)
        assert final.status == jobs_pb2.JOB_STATUS_COMPLETED
        assert final.result == "HELLO MASUMI!"
        expected_hash = create_masumi_output_hash("HELLO MASUMI!", identifier)
        assert payment_service.accepted_submissions(bid) == 1
        assert submitted_hashes == [expected_hash]
        # Accepted by the payment service, not on chain yet: unconfirmed.
        assert (await invoice(server, job)).status is InvoiceStatus.SUBMITTED

        # The payment service's submit-result job (every 15 s) builds the transaction,
        # which then confirms.
        chain_clock.advance(60)
        async with asyncio.timeout(10):
            await payment_service.wait_for(bid, on_chain_state=OnChainState.RESULT_SUBMITTED)
        assert await poll_round(server)
        landed = await invoice(server, job)
        assert (landed.status, landed.on_chain_state) == (
            InvoiceStatus.CONFIRMED,
            OnChainState.RESULT_SUBMITTED,
        )

        # The seller's wallet withdraws some 10 minutes after unlockTime.
        unlock_ms = int(payment_service.payment(bid)["unlockTime"])
        chain_clock.advance((unlock_ms - chain_clock.now_ms()) / 1000 + 15 * 60)
        async with asyncio.timeout(10):
            await payment_service.wait_for(bid, on_chain_state=OnChainState.WITHDRAWN)
        assert await poll_round(server)
        withdrawn = await invoice(server, job)
        assert (withdrawn.status, withdrawn.on_chain_state) == (
            InvoiceStatus.WITHDRAWN,
            OnChainState.WITHDRAWN,
        )
        assert payment_service.payment(bid)["resultHash"] == expected_hash

        report = await server.app.earnings.report()
        assert report.total(InvoiceStatus.WITHDRAWN).count == 1
        assert report.total(InvoiceStatus.WITHDRAWN).amounts == (PRICE,)
        for unsettled in (InvoiceStatus.PENDING, InvoiceStatus.PAID):
            assert report.total(unsettled).count == 0
        assert report.jobs_by_status[JobStatus.COMPLETED] == 1

        events = await history(server, job.job_id)
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        assert [e.type for e in events if e.type not in PAYMENT_EVENTS] == JOB_LIFECYCLE
        payment_events = [(e.type, e.detail) for e in events if e.type in PAYMENT_EVENTS]
        assert payment_events == [
            (EventType.RESULT_CONFIRMED, "the result hash is on chain"),
            (EventType.WITHDRAWN, OnChainState.WITHDRAWN),
        ]
        types = [e.type for e in events]
        # The chain can only have taken the result after we submitted it.
        assert types.index(EventType.RESULT_CONFIRMED) > types.index(EventType.RESULT_SUBMITTED)


async def test_replayed_diff_pages_change_nothing(
    server_with_a_withdrawn_job: tuple[Any, str, SandboxPaymentService],
) -> None:
    server, job_id, payment_service = server_with_a_withdrawn_job
    job = await server.app.jobs.get_job(job_id)
    before = (await history(server, job_id), await invoice(server, job))

    # As after a crash between applying pages and saving the watermark: every page
    # since the beginning comes again.
    for name in watermark_names(PaymentSourceType.V1):
        await server.app.repository.set_watermark(
            name, Watermark(last_update=datetime(2020, 1, 1, tzinfo=UTC))
        )
    for _ in range(2):
        assert await poll_round(server)

    assert (await history(server, job_id), await invoice(server, job)) == before
    assert payment_service.accepted_submissions(job.blockchain_identifier) == 1


@pytest.fixture
async def server_with_a_withdrawn_job(
    tmp_path: Path,
    stepped_chain: tuple[SandboxPaymentService, ManualClock],
    scripted: ScriptedAgent,
) -> Any:
    payment_service, chain_clock = stepped_chain
    async with serve(tmp_path, payment_service, scripted.agent) as server:
        job = await server.app.jobs.start_job(purchaser(), {"text": "replay"})
        await payment_service.lock_funds(job.blockchain_identifier)
        chain_clock.advance(1)
        assert (await watch_until(server, job.job_id)).status is JobStatus.COMPLETED
        chain_clock.advance(60)
        unlock_ms = int(payment_service.payment(job.blockchain_identifier)["unlockTime"])
        chain_clock.advance((unlock_ms - chain_clock.now_ms()) / 1000 + 15 * 60)
        async with asyncio.timeout(10):
            await payment_service.wait_for(
                job.blockchain_identifier, on_chain_state=OnChainState.WITHDRAWN
            )
        assert await poll_round(server)
        assert (await invoice(server, job)).status is InvoiceStatus.WITHDRAWN
        yield server, job.job_id, payment_service


async def test_empty_input_is_hashed_as_an_empty_object(
    tmp_path: Path, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    identifier = purchaser()
    async with (
        serve(tmp_path, payment_service, scripted.agent) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        started = await stub.StartJob(
            jobs_pb2.StartJobRequest(identifier_from_purchaser=identifier)
        )
        empty_hash = create_masumi_input_hash({}, identifier)
        assert started.input_hash == empty_hash
        assert payment_service.payment(started.blockchain_identifier)["inputHash"] == empty_hash

        await payment_service.lock_funds(started.blockchain_identifier)
        final = await watch_to_the_end(stub, started.job_id)
        assert final.status == jobs_pb2.JOB_STATUS_COMPLETED
        assert final.result == "!"
        assert scripted.calls == [{}]
