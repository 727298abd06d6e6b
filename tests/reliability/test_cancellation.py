"""Clients that give up at every point of a call's life, many times, against the real
`agentjobs-server` process: before the request is sent, while the server begins it,
after a stream's first message (Ctrl-C on `agentjobs watch`: it used to kill the server
with SIGSEGV), in the middle of a stream while the job moves, at a deadline, and by
dropping the whole connection. The server keeps serving, gives every slot back (the
per-client stream cap would show a leak), counts the cancellations as such, and still
shuts down cleanly."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import aiohttp
import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.reliability.server_process import ServerProcess, start_server_process

pytestmark = pytest.mark.slow

API_KEY = "cancel-test-payment-key"
AGENT_IDENTIFIER = "canceltest" + "0" * 60
IDENT = "aabbccddeeff0011"
# Above what one round holds at once (14 calls), so a leaked slot shows at the end.
WATCH_CAP = 20
ROUNDS = 25
# Calls a client may lose on purpose; anything else is a failure of the server.
GAVE_UP = {grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED}
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def start_request(text: str, review: bool = False) -> jobs_pb2.StartJobRequest:
    data = struct_pb2.Struct()
    data.update({"text": text, "ask_for_review": review})
    return jobs_pb2.StartJobRequest(identifier_from_purchaser=IDENT, input_data=data)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxPaymentService]:
    service = SandboxPaymentService(api_key=API_KEY, lock_after=None, settle_after=0.05)
    await service.start("127.0.0.1", 0)
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def server(tmp_path: Path, sandbox: SandboxPaymentService) -> AsyncIterator[ServerProcess]:
    process = await start_server_process(
        tmp_path,
        {
            "PAYMENT_SERVICE_URL": sandbox.url,
            "PAYMENT_API_KEY": API_KEY,
            "AGENT_IDENTIFIER": AGENT_IDENTIFIER,
            "AGENTJOBS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cancel.db'}",
            "AGENTJOBS_MONITOR_INTERVAL_S": "0.05",
            "AGENTJOBS_SUBMIT_MARGIN_S": "0",
            "AGENTJOBS_MAX_WATCHES_PER_PEER": str(WATCH_CAP),
            "PYTHONFAULTHANDLER": "1",
        },
    )
    try:
        yield process
    finally:
        if process.process.returncode is None:
            await process.terminate()


async def tolerate(call: Awaitable[object]) -> None:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        assert error.code() in GAVE_UP, (error.code(), error.details())
    except asyncio.CancelledError:
        pass


async def give_up_at_random(stub: jobs_pb2_grpc.JobServiceStub, job_id: str) -> None:
    """One call, abandoned at a random point of its life."""
    how = random.randrange(8)
    if how == 0:  # before anything reached the server
        call = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id))
        call.cancel()
        await tolerate(call.read())
    elif how == 1:  # while the server begins the call
        call = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id))
        await asyncio.sleep(random.uniform(0, 0.005))
        call.cancel()
        await tolerate(call.read())
    elif how == 2:  # after the first message: Ctrl-C on `agentjobs watch`
        call = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id))
        await call.read()
        call.cancel()
    elif how == 3:  # at a deadline, while the stream waits for the next event
        call = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), timeout=0.05)
        await tolerate(_drain(call))
    elif how == 4:  # a unary read abandoned in flight
        unary = stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=job_id))
        await asyncio.sleep(random.uniform(0, 0.003))
        unary.cancel()
        await tolerate(unary)
    elif how == 5:  # StartJob abandoned while the server asks the payment service
        start = stub.StartJob(start_request("abandoned"))
        await asyncio.sleep(random.uniform(0, 0.02))
        start.cancel()
        await tolerate(start)
    elif how == 6:  # a deadline shorter than the call
        await tolerate(stub.StartJob(start_request("too slow"), timeout=0.002))
    else:  # ProvideInput abandoned in flight (the job asks nothing: an error is fine)
        answer = stub.ProvideInput(
            jobs_pb2.ProvideInputRequest(job_id=job_id, status_id="s"), timeout=0.003
        )
        try:
            await answer
        except grpc.aio.AioRpcError as error:
            assert error.code() in GAVE_UP | {grpc.StatusCode.FAILED_PRECONDITION}


async def _drain(call: grpc.aio.UnaryStreamCall) -> None:
    async for _ in call:
        pass


async def drop_connection_after_first_message(target: str, job_id: str) -> None:
    async with grpc.aio.insecure_channel(target, options=OWN_CONNECTION) as channel:
        call = jobs_pb2_grpc.JobServiceStub(channel).WatchJob(
            jobs_pb2.WatchJobRequest(job_id=job_id)
        )
        await call.read()
    # Leaving the block closes the channel under the open stream.


async def watch_while_it_moves(
    stub: jobs_pb2_grpc.JobServiceStub,
    sandbox: SandboxPaymentService,
    started: jobs_pb2.StartJobResponse,
) -> None:
    """A stream cancelled in the middle: after some of the events of a job that runs."""
    call = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=started.job_id))
    await call.read()
    await sandbox.lock_funds(started.blockchain_identifier)
    for _ in range(random.randint(1, 2)):
        await call.read()
    call.cancel()


async def test_cancelling_at_every_point_leaves_the_server_serving(
    server: ServerProcess, sandbox: SandboxPaymentService
) -> None:
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        waiting = await stub.StartJob(start_request("stays unpaid"))
        cancelled = 0
        for round_number in range(ROUNDS):
            moving = await stub.StartJob(start_request(f"moves {round_number}"))
            tasks: list[Awaitable[None]] = [
                give_up_at_random(stub, waiting.job_id) for _ in range(12)
            ]
            tasks.append(drop_connection_after_first_message(server.grpc_target, waiting.job_id))
            tasks.append(watch_while_it_moves(stub, sandbox, moving))
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            cancelled += len(tasks)
            assert server.process.returncode is None, f"the server died:\n{server.text[-3000:]}"

        # Every slot came back: the client may hold its whole share of streams again.
        held = await hold_watches(stub, waiting.job_id, WATCH_CAP)
        for call in held:
            call.cancel()
        # Health, the other calls and a whole job still work.
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        await stub.GetAvailability(jobs_pb2.GetAvailabilityRequest(), timeout=5)
        finished = await stub.StartJob(start_request("after it all"))
        await sandbox.lock_funds(finished.blockchain_identifier)
        last = None
        async with asyncio.timeout(20):
            async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=finished.job_id)):
                last = update.job
        assert last is not None and last.result == "AFTER IT ALL!"
    assert cancelled >= ROUNDS * 14
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.http_url}/metrics") as response,
    ):
        metrics = await response.text()
    assert 'code="CANCELLED",method="/agentjobs.v1.JobService/WatchJob"' in metrics
    assert await server.terminate() == 0
    assert "Fatal Python error" not in server.text and "Traceback" not in server.text


async def hold_watches(
    stub: jobs_pb2_grpc.JobServiceStub, job_id: str, count: int, within_s: float = 15
) -> list[grpc.aio.UnaryStreamCall]:
    """`count` open streams, retried while the server still frees the slots of the
    streams cancelled just before (it learns of a cancellation a moment later)."""
    held: list[grpc.aio.UnaryStreamCall] = []
    async with asyncio.timeout(within_s):
        while len(held) < count:
            call = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id))
            try:
                await call.read()
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
                await asyncio.sleep(0.05)
                continue
            held.append(call)
    return held


async def test_sigint_to_a_watching_cli_never_harms_the_server(
    server: ServerProcess,
) -> None:
    """What an operator does: `agentjobs watch <id>`, then Ctrl-C, over and over."""
    from tests.client.helpers import AGENTJOBS

    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        started = await stub.StartJob(start_request("watched"))
        for _ in range(10):
            cli = await asyncio.create_subprocess_exec(
                str(AGENTJOBS),
                "watch",
                started.job_id,
                "--target",
                server.grpc_target,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            assert cli.stdout is not None
            await asyncio.wait_for(cli.stdout.readline(), 30)  # the first update is shown
            cli.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(cli.wait(), 30) == 130
            assert server.process.returncode is None
        await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=started.job_id), timeout=5)
