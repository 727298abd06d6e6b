"""A server killed (SIGKILL, no shutdown code) in the middle of each phase of a job and
started again on the same SQLite file: nothing is lost and no result is submitted twice.

The server is `agentjobs-server serve` in a subprocess; the sandbox payment service,
the buyer and the chain live in the test process and carry on while it is down."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from agentjobs.server.payments.sandbox import SandboxPaymentService, add_response_observer
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.reliability.server_process import ServerProcess, start_server_process
from tests.services.conftest import AGENT_IDENTIFIER, API_KEY
from tests.services.process_agents import RUN_SOCKET_VARIABLE, STATE_DIR_VARIABLE, runs_of

SUBMIT_RESULT = "/payment/submit-result"
RUNNING = jobs_pb2.JOB_STATUS_RUNNING
COMPLETED = jobs_pb2.JOB_STATUS_COMPLETED
AWAITING_INPUT = jobs_pb2.JOB_STATUS_AWAITING_INPUT
Update = jobs_pb2.WatchJobResponse


@dataclass
class Rig:
    tmp_path: Path
    payment_service: SandboxPaymentService
    # Short: a unix socket path must fit in 108 bytes.
    socket_path: str = ""
    announced: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _heard(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()
        async with self.announced:
            self.announced.notify_all()

    @property
    def state_dir(self) -> Path:
        return self.tmp_path / "agent-state"

    @property
    def env(self) -> dict[str, str]:
        return {
            "PAYMENT_SERVICE_URL": self.payment_service.url,
            "PAYMENT_API_KEY": API_KEY,
            "AGENT_IDENTIFIER": AGENT_IDENTIFIER,
            "AGENTJOBS_AGENT": "tests.services.process_agents:restartable",
            "AGENTJOBS_DATABASE_URL": f"sqlite+aiosqlite:///{self.tmp_path / 'restarts.db'}",
            "AGENTJOBS_MONITOR_INTERVAL_S": "0.05",
            "AGENTJOBS_SUBMIT_MARGIN_S": "0",
            "AGENTJOBS_CHAIN_PICKUP_S": "0",
            "AGENTJOBS_SHUTDOWN_GRACE_S": "1",
            # A restarted server is another replica (another pid): the killed one's
            # steps are taken over when its leases expire.
            "AGENTJOBS_LEASE_S": "1",
            "AGENTJOBS_WORKER_POLL_S": "0.1",
            STATE_DIR_VARIABLE: str(self.state_dir),
            RUN_SOCKET_VARIABLE: self.socket_path,
        }

    @asynccontextmanager
    async def server(self) -> AsyncIterator[tuple[ServerProcess, jobs_pb2_grpc.JobServiceStub]]:
        process = await start_server_process(self.tmp_path, self.env)
        try:
            async with grpc.aio.insecure_channel(process.grpc_target) as channel:
                yield process, jobs_pb2_grpc.JobServiceStub(channel)
        finally:
            if process.process.returncode is None:
                await process.kill()

    def runs(self, identifier: str) -> int:
        return runs_of(self.state_dir, identifier)

    async def wait_for_runs(self, identifier: str, count: int, within_s: float = 10) -> None:
        """Until the agent (in the server process) has started `count` runs: each run
        announces itself on the rig's unix socket."""
        async with asyncio.timeout(within_s), self.announced:
            await self.announced.wait_for(lambda: self.runs(identifier) >= count)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    payment_service = SandboxPaymentService(api_key=API_KEY, lock_after=None, settle_after=0.02)
    await payment_service.start("127.0.0.1", 0)
    (tmp_path / "agent-state").mkdir()
    with tempfile.TemporaryDirectory(prefix="aj-") as short:
        rig = Rig(tmp_path, payment_service, socket_path=f"{short}/runs")
        listening = await asyncio.start_unix_server(rig._heard, rig.socket_path)
        try:
            yield rig
        finally:
            listening.close()
            await listening.wait_closed()
            await payment_service.stop()


@pytest.fixture
def accepted_submissions() -> Iterator[list[str]]:
    """The blockchainIdentifier of every submit-result the sandbox answers 200."""
    accepted: list[str] = []

    def record(_method: str, path: str, status: int, body: Any) -> None:
        if (path, status) == (SUBMIT_RESULT, 200):
            accepted.append(body["data"]["blockchainIdentifier"])

    remove = add_response_observer(record)
    yield accepted
    remove()


async def start(
    stub: jobs_pb2_grpc.JobServiceStub, **input_data: Any
) -> tuple[jobs_pb2.StartJobResponse, str]:
    identifier = secrets.token_hex(8)
    data = struct_pb2.Struct()
    data.update(input_data)
    started = await stub.StartJob(
        jobs_pb2.StartJobRequest(identifier_from_purchaser=identifier, input_data=data)
    )
    return started, identifier


async def watch(
    stub: jobs_pb2_grpc.JobServiceStub,
    job_id: str,
    until: Callable[[Update], bool] = lambda u: (
        u.job.status in (COMPLETED, jobs_pb2.JOB_STATUS_FAILED)
    ),
) -> jobs_pb2.Job:
    """The job once `until` holds for a WatchJob update (or the stream ended)."""
    last = None
    async with asyncio.timeout(30):
        async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
            last = update.job
            if until(update):
                break
    assert last is not None
    return last


def saw_event(event_type: int) -> Callable[[Update], bool]:
    return lambda update: update.HasField("event") and update.event.type == event_type


async def test_paid_while_the_server_was_down(rig: Rig) -> None:
    async with rig.server() as (process, stub):
        started, _ = await start(stub, text="paid in the dark")
        await process.kill()
    await rig.payment_service.lock_funds(started.blockchain_identifier)

    async with rig.server() as (_, stub):
        final = await watch(stub, started.job_id)
    assert (final.status, final.result) == (COMPLETED, "PAID IN THE DARK!")
    assert rig.payment_service.accepted_submissions(started.blockchain_identifier) == 1


async def test_killed_while_the_agent_ran_it_is_run_again(rig: Rig) -> None:
    async with rig.server() as (process, stub):
        started, identifier = await start(stub, text="again", mode="block_first_run")
        await rig.payment_service.lock_funds(started.blockchain_identifier)
        await watch(stub, started.job_id, saw_event(jobs_pb2.JOB_EVENT_TYPE_STARTED))
        # STARTED is written when the step is claimed; the handler begins just after.
        await rig.wait_for_runs(identifier, 1)
        await process.kill()

    async with rig.server() as (_, stub):
        final = await watch(stub, started.job_id)
    assert (final.status, final.result) == (COMPLETED, "AGAIN!")
    assert rig.runs(identifier) == 2
    assert rig.payment_service.accepted_submissions(started.blockchain_identifier) == 1


async def test_killed_with_the_result_stored_it_is_submitted_not_rerun(rig: Rig) -> None:
    refused = asyncio.Event()
    remove = add_response_observer(
        lambda _method, path, status, _body: (
            refused.set() if (path, status) == (SUBMIT_RESULT, 409) else None
        )
    )
    rig.payment_service.faults.conflict_next = 1_000_000  # nothing is taken yet
    try:
        async with rig.server() as (process, stub):
            started, identifier = await start(stub, text="kept")
            await rig.payment_service.lock_funds(started.blockchain_identifier)
            await watch(stub, started.job_id, saw_event(jobs_pb2.JOB_EVENT_TYPE_RESULT_STORED))
            await asyncio.wait_for(refused.wait(), 10)
            await process.kill()
    finally:
        remove()
    rig.payment_service.faults.conflict_next = 0

    async with rig.server() as (_, stub):
        final = await watch(stub, started.job_id)
    assert (final.status, final.result) == (COMPLETED, "KEPT!")
    assert rig.runs(identifier) == 1, "a stored result is submitted, not computed again"
    assert rig.payment_service.accepted_submissions(started.blockchain_identifier) == 1


async def test_killed_after_the_result_was_taken_it_is_never_submitted_again(
    rig: Rig, accepted_submissions: list[str]
) -> None:
    async with rig.server() as (process, stub):
        killed: list[str] = []

        def kill_on_acceptance(_method: str, path: str, status: int, body: Any) -> None:
            # Killed after the service took the result, before the server hears so.
            if path == SUBMIT_RESULT and status == 200 and not killed:
                killed.append(body["data"]["blockchainIdentifier"])
                process.process.kill()

        remove = add_response_observer(kill_on_acceptance)
        try:
            started, identifier = await start(stub, text="once")
            await rig.payment_service.lock_funds(started.blockchain_identifier)
            await asyncio.wait_for(process.wait(), 30)
        finally:
            remove()
    assert killed == [started.blockchain_identifier]

    async with rig.server() as (_, stub):
        final = await watch(stub, started.job_id)
    assert (final.status, final.result) == (COMPLETED, "ONCE!")
    assert rig.payment_service.accepted_submissions(started.blockchain_identifier) == 1
    assert accepted_submissions == [started.blockchain_identifier]
    assert rig.runs(identifier) == 1


async def test_killed_while_awaiting_input_the_answer_resumes_the_job(rig: Rig) -> None:
    async with rig.server() as (process, stub):
        started, identifier = await start(stub, text="tea", mode="ask")
        await rig.payment_service.lock_funds(started.blockchain_identifier)
        first = await watch(stub, started.job_id, lambda u: u.job.status == AWAITING_INPUT)
        await stub.ProvideInput(
            jobs_pb2.ProvideInputRequest(
                job_id=started.job_id,
                status_id=first.status_id,
                input_data=struct({"colour": "red"}),
            )
        )
        second = await watch(
            stub,
            started.job_id,
            lambda u: u.job.status == AWAITING_INPUT and u.job.status_id != first.status_id,
        )
        await process.kill()

    async with rig.server() as (_, stub):
        waiting = await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=started.job_id))
        # The restart changed nothing the person was told.
        assert (waiting.status, waiting.status_id) == (AWAITING_INPUT, second.status_id)
        await stub.ProvideInput(
            jobs_pb2.ProvideInputRequest(
                job_id=started.job_id,
                status_id=second.status_id,
                input_data=struct({"approve": True}),
            )
        )
        final = await watch(stub, started.job_id)
    # Run 2 was handed the colour given to run 1 again.
    assert (final.status, final.result) == (COMPLETED, "tea in red, approved (run 2)")
    assert rig.runs(identifier) == 2
    assert rig.payment_service.accepted_submissions(started.blockchain_identifier) == 1


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message
