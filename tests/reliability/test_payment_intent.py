"""A server killed (SIGKILL) after the payment service created a job's payment and
before the server stored its answer: the job was written as an intent before POST
/payment, so the payment is found again (by its input hash, and our job id in its
metadata) and never asked for twice."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from agentjobs.server.payments.sandbox import SandboxPaymentService, add_response_observer
from agentjobs.server.testing import TEST_OPERATOR_TOKEN
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.reliability.server_process import ServerProcess, start_server_process
from tests.services.conftest import AGENT_IDENTIFIER, API_KEY

pytestmark = pytest.mark.slow

IDENTIFIER = "aabbccddeeff0011"
POST_PAYMENT = ("POST", "/api/v1/payment")


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxPaymentService]:
    service = SandboxPaymentService(
        api_key=API_KEY, lock_after=None, settle_after=0.02, job_interval=0.05
    )
    await service.start("127.0.0.1", 0)
    try:
        yield service
    finally:
        await service.stop()


def env(tmp_path: Path, sandbox: SandboxPaymentService) -> dict[str, str]:
    return {
        "PAYMENT_SERVICE_URL": sandbox.url,
        "PAYMENT_API_KEY": API_KEY,
        "AGENT_IDENTIFIER": AGENT_IDENTIFIER,
        "AGENTJOBS_AGENT": "tests.reliability.agents:slow_shout",
        "AGENTJOBS_DATABASE_URL": f"sqlite:///{tmp_path / 'intent.db'}",
        "AGENTJOBS_OPERATOR_TOKEN": TEST_OPERATOR_TOKEN,
        "AGENTJOBS_MONITOR_INTERVAL_S": "0.1",
        "AGENTJOBS_SUBMIT_MARGIN_S": "0",
        "AGENTJOBS_CHAIN_PICKUP_S": "0",
        "AGENTJOBS_LEASE_S": "2",
        "AGENTJOBS_WORKER_POLL_S": "0.1",
    }


def start_request(text: str, request_id: str | None) -> jobs_pb2.StartJobRequest:
    data = struct_pb2.Struct()
    data.update({"text": text})
    return jobs_pb2.StartJobRequest(
        identifier_from_purchaser=IDENTIFIER, input_data=data, request_id=request_id or ""
    )


def kill_on_the_payments_answer(process: ServerProcess) -> asyncio.Event:
    """SIGKILL the server the moment the payment service has created the payment,
    before its answer leaves."""
    killed = asyncio.Event()

    def observe(method: str, path: str, status: int, _body: Any) -> None:
        if (method, "/api/v1" + path) == POST_PAYMENT and status == 200 and not killed.is_set():
            os.kill(process.process.pid, signal.SIGKILL)
            killed.set()

    remove = add_response_observer(observe)
    killed.remove = remove  # type: ignore[attr-defined]
    return killed


async def killed_start(
    tmp_path: Path, sandbox: SandboxPaymentService, text: str, request_id: str | None
) -> None:
    process = await start_server_process(tmp_path, env(tmp_path, sandbox))
    killed = kill_on_the_payments_answer(process)
    try:
        async with grpc.aio.insecure_channel(process.grpc_target) as channel:
            with pytest.raises(grpc.aio.AioRpcError):
                await jobs_pb2_grpc.JobServiceStub(channel).StartJob(
                    start_request(text, request_id), timeout=10
                )
        assert killed.is_set()
        await process.wait()
    finally:
        killed.remove()  # type: ignore[attr-defined]
        if process.process.returncode is None:
            await process.kill()


async def watch(stub: jobs_pb2_grpc.JobServiceStub, job_id: str) -> jobs_pb2.Job:
    last = None
    async with asyncio.timeout(30):
        async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
            last = update.job
    assert last is not None
    return last


def payments_for(sandbox: SandboxPaymentService, text_hash: str) -> int:
    return sum(1 for p in sandbox.ledger if p.input_hash == text_hash)


async def test_a_retry_with_the_request_id_gets_the_payment_the_first_call_created(
    tmp_path: Path, sandbox: SandboxPaymentService
) -> None:
    await killed_start(tmp_path, sandbox, "intent", "order-1")
    assert sandbox.request_counts[POST_PAYMENT] == 1

    process = await start_server_process(tmp_path, env(tmp_path, sandbox))
    try:
        async with grpc.aio.insecure_channel(process.grpc_target) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            again = await stub.StartJob(start_request("intent", "order-1"), timeout=30)
            # The payment the first call created, not a second one.
            assert sandbox.request_counts[POST_PAYMENT] == 1
            assert payments_for(sandbox, again.input_hash) == 1
            payment = sandbox.payment(again.blockchain_identifier)
            assert payment["inputHash"] == again.input_hash
            assert payment["metadata"] == f"agentjobs:job={again.job_id}"
            # The same answer for every later retry, and the job runs once paid.
            third = await stub.StartJob(start_request("intent", "order-1"), timeout=10)
            assert (third.job_id, third.blockchain_identifier) == (
                again.job_id,
                again.blockchain_identifier,
            )
            await sandbox.lock_funds(again.blockchain_identifier)
            final = await watch(stub, again.job_id)
            assert (final.status, final.result) == (jobs_pb2.JOB_STATUS_COMPLETED, "INTENT!")
            assert sandbox.accepted_submissions(again.blockchain_identifier) == 1
            assert sandbox.request_counts[POST_PAYMENT] == 1
    finally:
        await process.terminate()


async def test_without_a_retry_the_monitor_finds_the_payment_and_the_paid_job_runs(
    tmp_path: Path, sandbox: SandboxPaymentService
) -> None:
    await killed_start(tmp_path, sandbox, "nobody retried", None)
    (payment,) = [p for p in sandbox.ledger]
    # The buyer got the terms some other way (or pays anyway): the job must run.
    await sandbox.lock_funds(payment.blockchain_identifier)

    process = await start_server_process(tmp_path, env(tmp_path, sandbox))
    try:
        async with grpc.aio.insecure_channel(process.grpc_target) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            # The payment names its job (our private metadata); nobody else knows it.
            assert payment.metadata is not None
            job_id = payment.metadata.removeprefix("agentjobs:job=")
            final = await watch(stub, job_id)
            assert (final.status, final.result) == (
                jobs_pb2.JOB_STATUS_COMPLETED,
                "NOBODY RETRIED!",
            )
            assert final.blockchain_identifier == payment.blockchain_identifier
            assert sandbox.request_counts[POST_PAYMENT] == 1
            listed = await stub.ListJobs(
                jobs_pb2.ListJobsRequest(),
                metadata=(("authorization", f"Bearer {TEST_OPERATOR_TOKEN}"),),
                timeout=10,
            )
            assert [j.job_id for j in listed.jobs] == [job_id]
            assert sandbox.accepted_submissions(payment.blockchain_identifier) == 1
    finally:
        await process.terminate()
