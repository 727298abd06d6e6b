"""ProvideInput replays (AIP-155), over real gRPC and HTTP: the same request_id with the
same body answers the first receipt again; with another body or another status_id it is
ALREADY_EXISTS (IDEMPOTENCY_KEY_REUSED), as for StartJob, never the first receipt (the
caller would believe an answer went in that never did)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import struct_pb2

from agentjobs.server.testing import RunningServer
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.support import error_details

IDENT = "aabbccddeeff0011"


def struct(**values: Any) -> struct_pb2.Struct:
    data = struct_pb2.Struct()
    data.update(values)
    return data


async def awaiting_review(
    server: RunningServer, stub: jobs_pb2_grpc.JobServiceStub
) -> jobs_pb2.Job:
    """A paid demo job that asks a person to approve its answer."""
    started = await stub.StartJob(
        jobs_pb2.StartJobRequest(
            identifier_from_purchaser=IDENT,
            input_data=struct(text="replay me", ask_for_review=True),
        )
    )
    await server.sandbox.lock_funds(started.blockchain_identifier)
    async with asyncio.timeout(15):
        async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=started.job_id)):
            if update.job.status == jobs_pb2.JOB_STATUS_AWAITING_INPUT:
                return update.job
    raise AssertionError("the job never asked for input")


async def completed(stub: jobs_pb2_grpc.JobServiceStub, job_id: str) -> jobs_pb2.Job:
    async with asyncio.timeout(15):
        async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
            if update.job.status in (jobs_pb2.JOB_STATUS_COMPLETED, jobs_pb2.JOB_STATUS_FAILED):
                return update.job
    raise AssertionError("the job never ended")


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.http_url) as session:
        yield session


async def test_grpc_replay_with_another_body_or_status_id_is_already_exists(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    job = await awaiting_review(server, stub)
    first = jobs_pb2.ProvideInputRequest(
        job_id=job.job_id,
        status_id=job.status_id,
        input_data=struct(approve=True),
        request_id="answer-1",
    )
    receipt = await stub.ProvideInput(first)
    assert (await completed(stub, job.job_id)).result == "REPLAY ME!"

    again = await stub.ProvideInput(first)
    assert again.input_hash == receipt.input_hash

    for changed in (
        jobs_pb2.ProvideInputRequest(
            job_id=job.job_id,
            status_id=job.status_id,
            input_data=struct(approve=False),
            request_id="answer-1",
        ),
        jobs_pb2.ProvideInputRequest(
            job_id=job.job_id,
            status_id="another-status",
            input_data=struct(approve=True),
            request_id="answer-1",
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await stub.ProvideInput(changed)
        assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error_details(reused.value)[0] == "IDEMPOTENCY_KEY_REUSED"
    final = await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=job.job_id))
    assert final.result == "REPLAY ME!", "the first answer is the one that counted"


async def test_http_replay_with_another_body_or_status_id_is_409(
    server: RunningServer, channel: grpc.aio.Channel, http: aiohttp.ClientSession
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    job = await awaiting_review(server, stub)
    answer = {"job_id": job.job_id, "status_id": job.status_id, "input_data": {"approve": False}}
    key = {"Idempotency-Key": "http-answer-1"}
    async with http.post("/provide_input", json=answer, headers=key) as response:
        assert response.status == 200
        receipt = await response.json()
    assert (await completed(stub, job.job_id)).result == "The reviewer declined the answer."
    async with http.post("/provide_input", json=answer, headers=key) as response:
        assert (response.status, await response.json()) == (200, receipt)
    for changed in (
        {**answer, "input_data": {"approve": True}},
        {**answer, "status_id": "another-status"},
    ):
        async with http.post("/provide_input", json=changed, headers=key) as response:
            assert response.status == 409
            error = (await response.json())["error"]
            assert (error["code"], error["reason"]) == ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED")


async def test_the_question_schema_refuses_unknown_answer_fields(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    job = await awaiting_review(server, stub)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ProvideInput(
            jobs_pb2.ProvideInputRequest(
                job_id=job.job_id,
                status_id=job.status_id,
                input_data=struct(approve=True, comment="x" * 100_000),
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(refused.value)[1] == {
        "input_data.comment": "is not a field of the schema of the input the job asks for"
    }
    still = await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=job.job_id))
    assert still.status == jobs_pb2.JOB_STATUS_AWAITING_INPUT
