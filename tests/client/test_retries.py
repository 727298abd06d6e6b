"""Retries come from the service config the clients put on their channel: a call made
while nothing listens yet succeeds once the server comes up within the retry budget."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from agentjobs.client import AsyncJobClient, JobClient, Unavailable
from agentjobs.client.service_config import channel_options
from agentjobs.server.testing import TEST_OPERATOR_TOKEN, running_server, server_in_thread
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.support import free_port


def first_attempt_failed(channel: grpc.Channel) -> threading.Event:
    """Set once the channel's first connection attempt has been refused."""
    failed = threading.Event()

    def on_change(state: grpc.ChannelConnectivity) -> None:
        if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            failed.set()

    channel.subscribe(on_change)
    return failed


def test_without_the_service_config_the_same_call_fails_at_once() -> None:
    # The control: a bare channel gives up on the first refused connection.
    with grpc.insecure_channel(f"127.0.0.1:{free_port()}") as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetAvailability(jobs_pb2.GetAvailabilityRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_service_config_retries_unavailable_on_idempotent_methods() -> None:
    options = dict(channel_options())
    assert options["grpc.enable_retries"] == 1
    (method_config,) = json.loads(options["grpc.service_config"])["methodConfig"]
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    names = method_config["name"]
    assert {"service": "agentjobs.v1.JobService"} in names  # every JobService method
    assert {"service": "agentjobs.v1.OperatorService", "method": "CancelJob"} not in names


def test_a_sync_call_waits_for_a_server_that_comes_up(tmp_path: Path) -> None:
    target = f"127.0.0.1:{free_port()}"
    with JobClient(target, default_timeout=30) as client, ThreadPoolExecutor(1) as pool:
        failed = first_attempt_failed(client.channel)
        call = pool.submit(client.get_availability)
        assert failed.wait(10), "the first attempt should have found nothing listening"
        assert not call.done()  # still retrying
        with server_in_thread(tmp_path, grpc_address=target):
            assert call.result(timeout=30).type == "masumi-agent"


async def test_an_async_start_waits_for_a_server_that_comes_up(tmp_path: Path) -> None:
    target = f"127.0.0.1:{free_port()}"
    # The operator token is for the ListJobs below (listing is an operator call).
    async with AsyncJobClient(
        target, default_timeout=30, operator_token=TEST_OPERATOR_TOKEN
    ) as client:
        call = asyncio.ensure_future(client.start_job({"text": "patient"}, request_id="r-1"))
        channel = client.channel
        async with asyncio.timeout(10):
            state = channel.get_state()
            while state != grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                await channel.wait_for_state_change(state)
                state = channel.get_state()
        assert not call.done()
        async with running_server(tmp_path, grpc_address=target, sandbox_lock_after_s=3600):
            started = await asyncio.wait_for(call, 30)
            assert started.status == jobs_pb2.JOB_STATUS_AWAITING_PAYMENT
            # Retried attempts carried one request_id: one job, not one per attempt.
            assert len((await client.list_jobs()).jobs) == 1


def test_retries_give_up_with_unavailable() -> None:
    with JobClient(f"127.0.0.1:{free_port()}") as client, pytest.raises(Unavailable) as down:
        client.get_demo()
    assert down.value.reason == "UNAVAILABLE"
