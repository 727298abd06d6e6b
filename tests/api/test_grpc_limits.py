"""Fair limits on the gRPC port: idle WatchJob streams from one client cannot take the
capacity of the others, one connection holds a bounded number of streams, and the
health service answers however busy the server is."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentjobs.server.testing import RunningServer, running_server
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.support import error_details

IDENT = "aabbccddeeff0011"
# Channels to one target share one connection unless told not to (grpc's global
# subchannel pool): "another client" must really be another connection.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


async def unpaid_job(stub: jobs_pb2_grpc.JobServiceStub) -> str:
    data = struct_pb2.Struct()
    data.update({"text": "held open"})
    started = await stub.StartJob(
        jobs_pb2.StartJobRequest(identifier_from_purchaser=IDENT, input_data=data)
    )
    return started.job_id


async def first_message(
    call: grpc.aio.UnaryStreamCall,
) -> jobs_pb2.WatchJobResponse | grpc.aio.AioRpcError:
    try:
        message = await call.read()
    except grpc.aio.AioRpcError as error:
        return error
    assert isinstance(message, jobs_pb2.WatchJobResponse), message
    return message


async def until_idle(server: RunningServer, within_s: float = 10) -> None:
    """Until the server has seen every cancellation and given every slot back."""
    limits = server.app.grpc.limits
    await asyncio.wait_for(limits.wait_for(lambda: limits.in_flight == 0), within_s)


async def test_health_is_answered_at_the_rpc_limit(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, sandbox_lock_after_s=3600, max_concurrent_rpcs=2) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job_id = await unpaid_job(stub)
        watches = [stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)) for _ in "ab"]
        for watch in watches:
            assert isinstance(await first_message(watch), jobs_pb2.WatchJobResponse)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetAvailability(jobs_pb2.GetAvailabilityRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_details(refused.value)[0] == "TOO_MANY_REQUESTS"
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(20):
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        health_watch = health.Watch(health_pb2.HealthCheckRequest())
        assert (await health_watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        health_watch.cancel()
        for watch in watches:
            watch.cancel()
        await until_idle(server)
        await stub.GetAvailability(jobs_pb2.GetAvailabilityRequest(), timeout=5)


async def test_watch_streams_per_client_are_capped(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, sandbox_lock_after_s=3600, max_watches_per_peer=3) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
        grpc.aio.insecure_channel(server.grpc_target, options=OWN_CONNECTION) as other_connection,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job_id = await unpaid_job(stub)
        held = [stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)) for _ in range(3)]
        for watch in held:
            assert isinstance(await first_message(watch), jobs_pb2.WatchJobResponse)
        # The cap is per client address, not per connection.
        other = jobs_pb2_grpc.JobServiceStub(other_connection)
        extra = other.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id))
        refused = await first_message(extra)
        assert isinstance(refused, grpc.aio.AioRpcError)
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_details(refused)[0] == "TOO_MANY_STREAMS"
        # Unary calls of the same client are not affected.
        await other.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=job_id), timeout=5)
        held.pop().cancel()
        limits = server.app.grpc.limits
        await asyncio.wait_for(limits.wait_for(lambda: limits.watches("127.0.0.1") == 2), 10)
        again = other.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id))
        assert isinstance(await first_message(again), jobs_pb2.WatchJobResponse)
        for watch in (*held, again):
            watch.cancel()
        await until_idle(server)


async def test_one_connection_holds_a_bounded_number_of_streams(tmp_path: Path) -> None:
    async with (
        running_server(
            tmp_path, sandbox_lock_after_s=3600, grpc_max_streams_per_connection=3
        ) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
        grpc.aio.insecure_channel(server.grpc_target, options=OWN_CONNECTION) as other_connection,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job_id = await unpaid_job(stub)
        watches = [stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)) for _ in range(5)]
        reads = [asyncio.ensure_future(first_message(watch)) for watch in watches]
        done, waiting = await asyncio.wait(reads, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        async with asyncio.timeout(10):
            while len(done) < 3:
                more, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                done |= more
        # Several round trips on another connection: time enough for the client to start
        # the two queued streams, were the server to allow them.
        other = jobs_pb2_grpc.JobServiceStub(other_connection)
        for _ in range(5):
            await other.GetAvailability(jobs_pb2.GetAvailabilityRequest(), timeout=5)
        assert len(done) == 3 and len(waiting) == 2
        assert server.app.grpc.limits.watches("127.0.0.1") == 3
        open_ones = [w for w, r in zip(watches, reads, strict=True) if r in done]
        open_ones[0].cancel()
        # A stream slot freed on the connection: one queued stream starts.
        async with asyncio.timeout(10):
            started, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        assert isinstance(started.pop().result(), jobs_pb2.WatchJobResponse)
        for watch in watches:
            watch.cancel()
        await until_idle(server)


@pytest.mark.slow
async def test_a_thousand_idle_watches_on_one_channel_starve_no_one(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, sandbox_lock_after_s=3600) as server,
        grpc.aio.insecure_channel(server.grpc_target) as greedy,
        grpc.aio.insecure_channel(server.grpc_target, options=OWN_CONNECTION) as polite,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(greedy)
        job_id = await unpaid_job(stub)
        watches = [stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)) for _ in range(1000)]
        firsts = await asyncio.wait_for(
            asyncio.gather(*(first_message(watch) for watch in watches)), 120
        )
        admitted = [f for f in firsts if isinstance(f, jobs_pb2.WatchJobResponse)]
        codes = Counter(f.code() for f in firsts if isinstance(f, grpc.aio.AioRpcError))
        limit = server.app.settings.max_watches_per_peer
        assert len(admitted) == limit
        # Beyond the connection's stream cap the server refuses the stream (HTTP/2
        # REFUSED_STREAM: UNAVAILABLE, retryable), beyond the client's share of watches
        # it answers RESOURCE_EXHAUSTED: either way at once, nothing held.
        assert set(codes) <= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}
        assert sum(codes.values()) == 1000 - limit
        # Everyone else is served: health, and every unary call.
        other = jobs_pb2_grpc.JobServiceStub(polite)
        health = health_pb2_grpc.HealthStub(polite)
        for _ in range(10):
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            await other.GetAvailability(jobs_pb2.GetAvailabilityRequest(), timeout=5)
            await other.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=job_id), timeout=5)
        assert await unpaid_job(other)
        assert server.app.grpc.limits.in_flight <= limit + 1
        for watch in watches:
            watch.cancel()
        await until_idle(server, within_s=30)
