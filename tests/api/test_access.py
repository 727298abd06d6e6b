"""Who may see and do what (docs/SECURITY.md, api/access.py), over a real channel: calls
keyed by a job id are open to whoever holds it; listing jobs, channelz and the operator
service need the operator token; a method nobody put in the table is closed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_channelz.v1 import channelz_pb2, channelz_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agentjobs.server.api.access import GRPC_METHODS, HTTP_PATHS, Access, grpc_rule
from agentjobs.server.api.http_front import create_http_app
from agentjobs.server.testing import RunningServer, running_server, server_in_thread
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc, operator_pb2
from tests.client.helpers import assert_ok, assert_one_error_line, run_cli
from tests.support import error_details

IDENT = "aabbccddeeff0011"
NO_TOKEN: tuple[tuple[str, str], ...] = ()
WRONG_TOKEN = (("authorization", "Bearer not-the-token"),)


def operator(server: RunningServer) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {server.operator_token}"),)


def test_every_method_of_our_services_has_a_decided_access() -> None:
    for module in (jobs_pb2, operator_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                name = f"/{service.full_name}/{method.name}"
                assert name in GRPC_METHODS, f"{name} is missing from api/access.py"
    assert grpc_rule("/agentjobs.v1.JobService/ListJobs").access is Access.OPERATOR
    assert grpc_rule("/some.new.Service/Anything").access is Access.OPERATOR
    for service in channelz_pb2.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            assert grpc_rule(f"/{service.full_name}/{method.name}").access is Access.OPERATOR


def test_the_http_front_serves_exactly_the_paths_of_the_table() -> None:
    from agentjobs.server.api.metrics import Metrics

    class NoJobs:  # the app only reads routes here
        pass

    app = create_http_app(
        NoJobs(),  # type: ignore[arg-type]
        metrics=Metrics(),
        is_serving=lambda: True,
        max_body_bytes=1024,
    )
    served = {
        (method, getattr(route, "path", ""))
        for route in app.routes
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    }
    assert served == set(HTTP_PATHS)
    assert all(access is not Access.OPERATOR for access in HTTP_PATHS.values())


@pytest.mark.parametrize(
    ("metadata", "code"),
    [(NO_TOKEN, grpc.StatusCode.UNAUTHENTICATED), (WRONG_TOKEN, grpc.StatusCode.PERMISSION_DENIED)],
)
async def test_list_jobs_needs_the_operator_token(
    server: RunningServer,
    channel: grpc.aio.Channel,
    metadata: tuple[tuple[str, str], ...],
    code: grpc.StatusCode,
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    data = struct_pb2.Struct()
    data.update({"text": "a buyer's secret"})
    await stub.StartJob(jobs_pb2.StartJobRequest(identifier_from_purchaser=IDENT, input_data=data))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListJobs(jobs_pb2.ListJobsRequest(), metadata=metadata)
    assert refused.value.code() == code
    assert error_details(refused.value)[0] == code.name
    assert "a buyer's secret" not in str(refused.value.details())
    listed = await stub.ListJobs(jobs_pb2.ListJobsRequest(), metadata=operator(server))
    assert [dict(j.input_data) for j in listed.jobs] == [{"text": "a buyer's secret"}]


async def test_without_a_configured_token_listing_is_closed(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, operator_token=None) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await jobs_pb2_grpc.JobServiceStub(channel).ListJobs(
                jobs_pb2.ListJobsRequest(), metadata=(("authorization", "Bearer anything"),)
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "no operator token is configured" in (refused.value.details() or "")


async def test_channelz_needs_the_operator_token(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    stub = channelz_pb2_grpc.ChannelzStub(channel)
    for metadata, code in (
        (NO_TOKEN, grpc.StatusCode.UNAUTHENTICATED),
        (WRONG_TOKEN, grpc.StatusCode.PERMISSION_DENIED),
    ):
        for call in (
            stub.GetServers(channelz_pb2.GetServersRequest(), metadata=metadata),
            stub.GetTopChannels(channelz_pb2.GetTopChannelsRequest(), metadata=metadata),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == code
    servers = await stub.GetServers(channelz_pb2.GetServersRequest(), metadata=operator(server))
    assert servers.server


async def test_job_id_holders_need_no_token(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    """GetJobStatus, WatchJob and ProvideInput are the buyer's, by the job id alone."""
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    data = struct_pb2.Struct()
    data.update({"text": "mine", "ask_for_review": True})
    started = await stub.StartJob(
        jobs_pb2.StartJobRequest(identifier_from_purchaser=IDENT, input_data=data)
    )
    status = await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=started.job_id))
    assert status.status == jobs_pb2.JOB_STATUS_AWAITING_PAYMENT
    watch = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=started.job_id))
    assert (await watch.read()).job.job_id == started.job_id
    await server.sandbox.lock_funds(started.blockchain_identifier)
    async with asyncio.timeout(15):
        while (update := await watch.read()).job.status != jobs_pb2.JOB_STATUS_AWAITING_INPUT:
            assert update.job.status == jobs_pb2.JOB_STATUS_RUNNING
    answer = struct_pb2.Struct()
    answer.update({"approve": True})
    receipt = await stub.ProvideInput(
        jobs_pb2.ProvideInputRequest(
            job_id=started.job_id, status_id=update.job.status_id, input_data=answer
        )
    )
    assert len(receipt.input_hash) == 64
    watch.cancel()


async def test_public_calls_need_no_token(channel: grpc.aio.Channel) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    await stub.GetAvailability(jobs_pb2.GetAvailabilityRequest())
    await stub.GetInputSchema(jobs_pb2.GetInputSchemaRequest())
    await stub.GetDemo(jobs_pb2.GetDemoRequest())
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
    await reflection.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    assert (await reflection.read()).list_services_response.service
    await reflection.done_writing()


def test_the_list_command_sends_the_token(tmp_path: Path) -> None:
    with server_in_thread(tmp_path, sandbox_lock_after_s=3600) as server:
        target = {"AGENTJOBS_TARGET": server.grpc_target}
        assert_one_error_line(run_cli("list", env=target), 6, "UNAUTHENTICATED")
        assert_one_error_line(
            run_cli("list", "--token", "wrong", env=target), 6, "PERMISSION_DENIED"
        )
        listed = assert_ok(run_cli("list", "--json", "--token", server.operator_token, env=target))
        assert listed.json()["jobs"] == []
        from_env = {**target, "AGENTJOBS_TOKEN": server.operator_token}
        assert assert_ok(run_cli("list", "--json", env=from_env)).json()["jobs"] == []
