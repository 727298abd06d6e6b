"""Payment service faults: down at start, 5xx bursts, latency above the timeout, dropped
connections and 409 storms. StartJob answers a clear error and leaves no orphan job, the
monitor catches up afterwards, and no job is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.testing import TEST_OPERATOR_TOKEN, running_server
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.support import error_details, free_port

API_KEY = "faults-test-payment-key"
AGENT_IDENTIFIER = "faultstest" + "0" * 60
OPERATOR = (("authorization", f"Bearer {TEST_OPERATOR_TOKEN}"),)


def start_request(text: str = "fault") -> jobs_pb2.StartJobRequest:
    data = struct_pb2.Struct()
    data.update({"text": text})
    return jobs_pb2.StartJobRequest(identifier_from_purchaser="aabbccddeeff0011", input_data=data)


async def job_count(stub: jobs_pb2_grpc.JobServiceStub) -> int:
    # Listing is an operator call (docs/SECURITY.md).
    page = await stub.ListJobs(jobs_pb2.ListJobsRequest(page_size=1000), metadata=OPERATOR)
    return len(page.jobs)


async def final_state(stub: jobs_pb2_grpc.JobServiceStub, job_id: str) -> jobs_pb2.Job:
    last = None
    async with asyncio.timeout(30):
        async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
            last = update.job
    assert last is not None
    return last


@dataclass
class Rig:
    sandbox: SandboxPaymentService
    stub: jobs_pb2_grpc.JobServiceStub


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """A server whose payment service is a sandbox the test controls (the buyer pays
    only when told to)."""
    sandbox = SandboxPaymentService(api_key=API_KEY, lock_after=None, settle_after=0.02)
    url = await sandbox.start("127.0.0.1", 0)
    try:
        async with (
            running_server(
                tmp_path,
                payment_service_url=url,
                payment_api_key=API_KEY,
                agent_identifier=AGENT_IDENTIFIER,
                payment_timeout_s=0.5,
            ) as server,
            grpc.aio.insecure_channel(server.grpc_target) as channel,
        ):
            yield Rig(sandbox, jobs_pb2_grpc.JobServiceStub(channel))
    finally:
        await sandbox.stop()


async def test_payment_service_down_at_start_then_up(tmp_path: Path) -> None:
    port = free_port()
    async with (
        running_server(
            tmp_path,
            payment_service_url=f"http://127.0.0.1:{port}/api/v1",
            payment_api_key=API_KEY,
            agent_identifier=AGENT_IDENTIFIER,
            payment_timeout_s=0.5,
        ) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.StartJob(start_request())
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_details(raised.value)[0] == "PAYMENT_SERVICE_UNAVAILABLE"
        assert await job_count(stub) == 0

        sandbox = SandboxPaymentService(api_key=API_KEY, lock_after=0, settle_after=0.02)
        await sandbox.start("127.0.0.1", port)
        try:
            started = await stub.StartJob(start_request("now up"))
            final = await final_state(stub, started.job_id)
            assert final.status == jobs_pb2.JOB_STATUS_COMPLETED
            assert final.result == "NOW UP!"
        finally:
            await sandbox.stop()


async def test_5xx_burst_fails_start_cleanly_and_monitor_catches_up(rig: Rig) -> None:
    before = await rig.stub.StartJob(start_request("before the burst"))

    rig.sandbox.faults.error_rate = 1.0
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await rig.stub.StartJob(start_request("during the burst"))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await job_count(rig.stub) == 1, "a failed StartJob left a job behind"
    # The buyer pays while the service answers 500 to everyone, the monitor included.
    await rig.sandbox.lock_funds(before.blockchain_identifier)
    status = await rig.stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=before.job_id))
    assert status.status == jobs_pb2.JOB_STATUS_AWAITING_PAYMENT

    rig.sandbox.faults.error_rate = 0.0
    final = await final_state(rig.stub, before.job_id)
    assert final.status == jobs_pb2.JOB_STATUS_COMPLETED
    assert rig.sandbox.accepted_submissions(before.blockchain_identifier) == 1


async def test_latency_above_timeout_is_unavailable_not_a_hang(rig: Rig) -> None:
    rig.sandbox.faults.latency_s = 3.0
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        # The deadline is generous: the gateway's own 0.5 s timeout must answer first.
        await rig.stub.StartJob(start_request(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await job_count(rig.stub) == 0

    rig.sandbox.faults.latency_s = 0.0
    started = await rig.stub.StartJob(start_request("fast again"))
    await rig.sandbox.lock_funds(started.blockchain_identifier)
    assert (await final_state(rig.stub, started.job_id)).status == jobs_pb2.JOB_STATUS_COMPLETED


async def test_dropped_connections_fail_cleanly(rig: Rig) -> None:
    rig.sandbox.faults.drop_next = 2
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await rig.stub.StartJob(start_request())
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await job_count(rig.stub) == 0
    started = await rig.stub.StartJob(start_request("after drops"))
    assert started.blockchain_identifier


async def test_409_storm_on_submit_result_still_completes_once(rig: Rig) -> None:
    started = await rig.stub.StartJob(start_request("storm"))
    rig.sandbox.faults.conflict_next = 5
    await rig.sandbox.lock_funds(started.blockchain_identifier)
    final = await final_state(rig.stub, started.job_id)
    assert final.status == jobs_pb2.JOB_STATUS_COMPLETED
    assert final.result == "STORM!"
    assert rig.sandbox.faults.conflict_next == 0, "the 409s were not all consumed"
    assert rig.sandbox.accepted_submissions(started.blockchain_identifier) == 1
