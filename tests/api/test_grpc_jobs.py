"""JobService over a real channel to a real server, with the sandbox payment service."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from agentjobs.client import AsyncJobClient
from agentjobs.server.testing import RunningServer
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.support import error_details

IDENT = "aabbccddeeff0011"


def struct(**values: Any) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


async def start(
    stub: jobs_pb2_grpc.JobServiceStub, text: str = "hello", **extra: Any
) -> jobs_pb2.StartJobResponse:
    return await stub.StartJob(
        jobs_pb2.StartJobRequest(
            identifier_from_purchaser=IDENT, input_data=struct(text=text, **extra)
        )
    )


async def watch_until_terminal(
    stub: jobs_pb2_grpc.JobServiceStub, job_id: str, on_first: object = None
) -> list[jobs_pb2.WatchJobResponse]:
    seen = []
    async with asyncio.timeout(15):
        async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
            seen.append(update)
            if len(seen) == 1 and callable(on_first):
                await on_first()
    return seen


async def test_start_job_answers_the_payment_fields_exactly(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    started = await start(stub)
    assert started.status == jobs_pb2.JOB_STATUS_AWAITING_PAYMENT
    assert started.identifier_from_purchaser == IDENT
    assert len(started.input_hash) == 64
    payment = await server.app.payments.gateway.get_payment(started.blockchain_identifier)
    assert payment.on_chain_state is None
    job = await server.app.repository.get(started.job_id)
    assert (started.pay_by_time, started.submit_result_time, started.unlock_time) == (
        job.pay_by_time,
        job.submit_result_time,
        job.unlock_time,
    )
    assert started.external_dispute_unlock_time == job.external_dispute_unlock_time
    assert started.pay_by_time > 1_000_000_000_000  # milliseconds, not seconds
    assert started.seller_vkey and started.agent_identifier


async def test_watch_sees_every_transition_to_completed(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    started = await start(stub, "watch me")

    async def pay() -> None:
        await server.sandbox.lock_funds(started.blockchain_identifier)

    seen = await watch_until_terminal(stub, started.job_id, on_first=pay)
    assert seen[0].job.status == jobs_pb2.JOB_STATUS_AWAITING_PAYMENT
    assert not seen[0].HasField("event")
    types = [jobs_pb2.JobEventType.Name(u.event.type) for u in seen[1:]]
    assert types == [
        "JOB_EVENT_TYPE_FUNDS_LOCKED",
        "JOB_EVENT_TYPE_STARTED",
        "JOB_EVENT_TYPE_RESULT_STORED",
        "JOB_EVENT_TYPE_RESULT_SUBMITTED",
        "JOB_EVENT_TYPE_COMPLETED",
    ]
    sequences = [u.event.sequence for u in seen[1:]]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    final = seen[-1].job
    assert final.status == jobs_pb2.JOB_STATUS_COMPLETED and final.result == "WATCH ME!"
    status = await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=started.job_id))
    assert status.result == "WATCH ME!" and status.status == jobs_pb2.JOB_STATUS_COMPLETED


async def test_human_input_round_trip(server: RunningServer, channel: grpc.aio.Channel) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    started = await start(stub, "review me", ask_for_review=True)
    awaiting: asyncio.Future[jobs_pb2.Job] = asyncio.get_running_loop().create_future()

    async def follow() -> list[jobs_pb2.WatchJobResponse]:
        seen = []
        async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=started.job_id)):
            seen.append(update)
            if update.job.status == jobs_pb2.JOB_STATUS_AWAITING_INPUT and not awaiting.done():
                awaiting.set_result(update.job)
        return seen

    watcher = asyncio.create_task(follow())
    await server.sandbox.lock_funds(started.blockchain_identifier)
    job = await asyncio.wait_for(awaiting, 10)
    assert [f.id for f in job.input_schema.input_data] == ["approve"]
    status = await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=started.job_id))
    assert status.status_id == job.status_id and status.input_schema.input_data[0].id == "approve"

    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await stub.ProvideInput(
            jobs_pb2.ProvideInputRequest(
                job_id=started.job_id, status_id="not-the-status", input_data=struct(approve=True)
            )
        )
    assert wrong.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(wrong.value)[0] == "STATUS_ID_MISMATCH"

    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stub.ProvideInput(
            jobs_pb2.ProvideInputRequest(
                job_id=started.job_id, status_id=job.status_id, input_data=struct(approve="yes")
            )
        )
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input_data.approve" in error_details(invalid.value)[1]

    answer = jobs_pb2.ProvideInputRequest(
        job_id=started.job_id,
        status_id=job.status_id,
        input_data=struct(approve=True),
        request_id="answer-1",
    )
    receipt = await stub.ProvideInput(answer)
    assert len(receipt.input_hash) == 64 and receipt.signature == ""
    again = await stub.ProvideInput(answer)  # a retry of the same request_id
    assert again.input_hash == receipt.input_hash

    seen = await asyncio.wait_for(watcher, 10)
    assert seen[-1].job.status == jobs_pb2.JOB_STATUS_COMPLETED
    assert seen[-1].job.result == "REVIEW ME!"
    types = [jobs_pb2.JobEventType.Name(u.event.type) for u in seen[1:]]
    assert "JOB_EVENT_TYPE_INPUT_REQUESTED" in types and "JOB_EVENT_TYPE_INPUT_PROVIDED" in types

    with pytest.raises(grpc.aio.AioRpcError) as late:
        await stub.ProvideInput(
            jobs_pb2.ProvideInputRequest(
                job_id=started.job_id, status_id=job.status_id, input_data=struct(approve=True)
            )
        )
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_start_job_is_idempotent_on_request_id(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    request = jobs_pb2.StartJobRequest(
        identifier_from_purchaser=IDENT, input_data=struct(text="once"), request_id="retry-me"
    )
    first, second, third = await asyncio.gather(*(stub.StartJob(request) for _ in range(3)))
    assert first.job_id == second.job_id == third.job_id
    assert first.blockchain_identifier == third.blockchain_identifier
    assert await server.app.repository.count() == 1

    request.input_data.CopyFrom(struct(text="something else"))
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await stub.StartJob(request)
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_details(reused.value)[0] == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize(
    ("identifier", "input_data", "field"),
    [
        ("not-hex-at-all!", {"text": "x"}, "identifier_from_purchaser"),
        ("abc", {"text": "x"}, "identifier_from_purchaser"),
        ("", {"text": "x"}, "identifier_from_purchaser"),
        (IDENT, {}, "input_data.text"),
        (IDENT, {"text": ""}, "input_data.text"),
        (IDENT, {"text": "x" * 1001}, "input_data.text"),
        (IDENT, {"text": 5}, "input_data.text"),
    ],
)
async def test_start_job_rejects_bad_input_with_field_violations(
    server: RunningServer,
    channel: grpc.aio.Channel,
    identifier: str,
    input_data: dict[str, Any],
    field: str,
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.StartJob(
            jobs_pb2.StartJobRequest(
                identifier_from_purchaser=identifier, input_data=struct(**input_data)
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _reason, fields = error_details(caught.value)
    assert field in fields
    assert await server.app.repository.count() == 0


async def test_unknown_job_is_not_found(channel: grpc.aio.Channel) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    for call in (
        stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id="nope")),
        stub.ProvideInput(jobs_pb2.ProvideInputRequest(job_id="nope", status_id="x")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_details(caught.value)[0] == "JOB_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as streamed:
        async for _ in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id="nope")):
            pass
    assert streamed.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_jobs_pages_and_filters(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    # ListJobs shows every caller's jobs: the operator token is needed.
    operator = (("authorization", f"Bearer {server.operator_token}"),)
    created = [(await start(stub, f"job {i}")).job_id for i in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListJobs(
            jobs_pb2.ListJobsRequest(page_size=2, page_token=token), metadata=operator
        )
        assert len(page.jobs) <= 2
        seen += [j.job_id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(created))
    running = await stub.ListJobs(
        jobs_pb2.ListJobsRequest(status=jobs_pb2.JOB_STATUS_RUNNING), metadata=operator
    )
    assert list(running.jobs) == []
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.ListJobs(jobs_pb2.ListJobsRequest(page_token="garbage!"), metadata=operator)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(bad.value)[0] == "INVALID_PAGE_TOKEN"
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await stub.ListJobs(jobs_pb2.ListJobsRequest(page_size=-1), metadata=operator)
    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_availability_schema_and_demo(channel: grpc.aio.Channel) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    availability = await stub.GetAvailability(jobs_pb2.GetAvailabilityRequest())
    assert availability.availability == jobs_pb2.AVAILABILITY_AVAILABLE
    assert availability.type == "masumi-agent" and availability.sandbox
    assert "SANDBOX" in availability.message
    assert len(availability.agent_identifier) >= 57
    schema = await stub.GetInputSchema(jobs_pb2.GetInputSchemaRequest())
    assert [f.id for f in schema.input_schema.input_data] == ["text", "ask_for_review"]
    text = schema.input_schema.input_data[0]
    assert [(v.validation, v.value) for v in text.validations] == [("min", "1"), ("max", "1000")]
    demo = await stub.GetDemo(jobs_pb2.GetDemoRequest())
    assert demo.output["result"] == "HELLO MASUMI!"


async def test_request_id_is_echoed(channel: grpc.aio.Channel) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    call = stub.GetAvailability(
        jobs_pb2.GetAvailabilityRequest(), metadata=(("x-request-id", "trace-42"),)
    )
    await call
    assert ("x-request-id", "trace-42") in tuple(await call.trailing_metadata())
    # Nothing in the headers: an UNAVAILABLE before the answer stays retryable.
    assert "x-request-id" not in dict(await call.initial_metadata())


async def test_errors_carry_the_request_id_in_trailers(channel: grpc.aio.Channel) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    call = stub.GetJobStatus(
        jobs_pb2.GetJobStatusRequest(job_id="nope"), metadata=(("x-request-id", "trace-43"),)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert ("x-request-id", "trace-43") in tuple(caught.value.trailing_metadata() or ())
    # No response headers before the error: that is what keeps UNAVAILABLE retryable.
    assert "x-request-id" not in dict(caught.value.initial_metadata() or ())


async def test_client_retries_an_unavailable_payment_service_once_more(
    server: RunningServer,
) -> None:
    """The payment service drops the first payment request: the server answers
    UNAVAILABLE before any response, the client's retry policy tries again with the same
    request_id, and exactly one job and one payment come of it."""
    server.sandbox.faults.drop_next = 1
    async with AsyncJobClient(server.grpc_target) as client:
        started = await client.start_job({"text": "retried"})
    assert started.status == jobs_pb2.JOB_STATUS_AWAITING_PAYMENT
    assert server.sandbox.request_counts[("POST", "/api/v1/payment")] == 2
    assert server.sandbox.faults.drop_next == 0
    assert await server.app.repository.count() == 1
