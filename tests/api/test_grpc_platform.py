"""The production plumbing: health, reflection + buf curl, metrics, limits, shutdown,
payment service down."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import aiohttp
import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agentjobs.server.agent import Agent
from agentjobs.server.testing import RunningServer, running_server
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.support import error_details

BUF = Path(sys.executable).parent / "buf"


async def test_health_is_serving(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "agentjobs.v1.JobService", "agentjobs.v1.OperatorService"):
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    answer = await call.read()
    await call.done_writing()
    names = {s.name for s in answer.list_services_response.service}
    assert {
        "agentjobs.v1.JobService",
        "agentjobs.v1.OperatorService",
        "grpc.health.v1.Health",
    } <= names


@pytest.mark.skipif(not BUF.exists() and not shutil.which("buf"), reason="buf-bin not installed")
async def test_buf_curl_starts_a_job_through_reflection(
    server: RunningServer,
) -> None:
    buf = str(BUF if BUF.exists() else shutil.which("buf"))
    body = json.dumps(
        {"identifier_from_purchaser": "aabbccddeeff0011", "input_data": {"text": "via buf"}}
    )
    process = await asyncio.create_subprocess_exec(
        buf,
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "-d",
        body,
        f"http://{server.grpc_target}/agentjobs.v1.JobService/StartJob",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    answer = json.loads(stdout)
    assert answer["status"] == "JOB_STATUS_AWAITING_PAYMENT"
    job = await server.app.repository.get(answer["jobId"])
    assert job.input_data == {"text": "via buf"}
    assert int(answer["payByTime"]) == job.pay_by_time


async def test_metrics_count_rpcs_by_method_and_code(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    await stub.GetAvailability(jobs_pb2.GetAvailabilityRequest())
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id="missing"))
    async with aiohttp.ClientSession() as http, http.get(f"{server.http_url}/metrics") as response:
        text = await response.text()
    service = "/agentjobs.v1.JobService"
    assert f'{{code="OK",method="{service}/GetAvailability"}} 1.0' in text
    assert f'{{code="NOT_FOUND",method="{service}/GetJobStatus"}} 1.0' in text
    assert "agentjobs_grpc_request_duration_seconds_bucket" in text


async def test_oversized_input_is_refused(server: RunningServer, channel: grpc.aio.Channel) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    data = struct_pb2.Struct()
    data.update({"text": "x", "padding": "y" * (2 * 1024 * 1024)})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.StartJob(
            jobs_pb2.StartJobRequest(identifier_from_purchaser="aabbccddeeff0011", input_data=data)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(caught.value)[0] == "INPUT_TOO_LARGE"
    huge = struct_pb2.Struct()
    huge.update({"text": "z" * (5 * 1024 * 1024)})
    with pytest.raises(grpc.aio.AioRpcError) as too_big:
        await stub.StartJob(
            jobs_pb2.StartJobRequest(identifier_from_purchaser="aabbccddeeff0011", input_data=huge)
        )
    assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_payment_service_down_gives_unavailable_and_leaves_no_job(tmp_path: Path) -> None:
    async with running_server(
        tmp_path,
        payment_service_url="http://127.0.0.1:9/api/v1",
        payment_api_key="a-secret-key",
        agent_identifier="a" * 60,
        payment_timeout_s=2,
    ) as server:
        async with grpc.aio.insecure_channel(server.grpc_target) as channel:
            data = struct_pb2.Struct()
            data.update({"text": "nobody home"})
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await jobs_pb2_grpc.JobServiceStub(channel).StartJob(
                    jobs_pb2.StartJobRequest(
                        identifier_from_purchaser="aabbccddeeff0011", input_data=data
                    )
                )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_details(caught.value)[0] == "PAYMENT_SERVICE_UNAVAILABLE"
        assert "a-secret-key" not in (caught.value.details() or "")
        assert await server.app.repository.count() == 0


async def test_shutdown_flips_health_and_lets_a_running_job_finish(tmp_path: Path) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(identifier: str, input_data: dict[str, object]) -> str:
        entered.set()
        await release.wait()
        return "finished during shutdown"

    agent = Agent(handler=slow, input_schema={}, name="slow")
    async with (
        running_server(tmp_path, agent=agent, shutdown_grace_s=10) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        started = await jobs_pb2_grpc.JobServiceStub(channel).StartJob(
            jobs_pb2.StartJobRequest(identifier_from_purchaser="aabbccddeeff0011")
        )
        await asyncio.wait_for(entered.wait(), 10)
        health = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="")
        )
        first = await health.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(server.app.stop())
        flipped = await asyncio.wait_for(health.read(), 10)
        assert flipped.status == health_pb2.HealthCheckResponse.NOT_SERVING
        health.cancel()
        release.set()
        await asyncio.wait_for(stopping, 20)
    async with running_server(tmp_path, agent=agent) as reopened:
        job = await reopened.app.repository.get(started.job_id)
        assert job.status.value == "completed"
        assert job.result == "finished during shutdown"


async def test_rpcs_beyond_the_concurrency_limit_are_resource_exhausted(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, sandbox_lock_after_s=3600, max_concurrent_rpcs=2) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        data = struct_pb2.Struct()
        data.update({"text": "held open"})
        started = await stub.StartJob(
            jobs_pb2.StartJobRequest(identifier_from_purchaser="aabbccddeeff0011", input_data=data)
        )
        # Two WatchJob streams on an unpaid job hold both slots open.
        watches = [stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=started.job_id)) for _ in "ab"]
        for watch in watches:
            assert (await watch.read()).job.job_id == started.job_id
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetAvailability(jobs_pb2.GetAvailabilityRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for watch in watches:
            watch.cancel()
        # The slots come back once the streams end.
        async with asyncio.timeout(10):
            while True:
                try:
                    await stub.GetAvailability(jobs_pb2.GetAvailabilityRequest(), timeout=5)
                    break
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    await asyncio.sleep(0.05)  # the server frees a slot when it sees the cancel
