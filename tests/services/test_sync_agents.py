"""Agents as people write them: a synchronous handler (CrewAI's `crew.kickoff(...)`,
LangChain's `invoke`) runs on a worker thread, so while it blocks for seconds the
service keeps answering; `request_input` works from it and blocks until answered."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from agentjobs.server.agent import Agent, request_input
from agentjobs.server.domain import JobStatus
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.services.agents import APPROVAL_QUESTION, INPUT_SCHEMA
from tests.services.conftest import serve
from tests.services.support import start, watch_until

BLOCK_S = 2.0


class BlockingCrew:
    """A synchronous agent that blocks its thread, then asks a person."""

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.blocking = threading.Event()

    def kickoff(self, identifier_from_purchaser: str, input_data: dict[str, Any]) -> str:
        self.threads.append(threading.current_thread().name)
        self.blocking.set()
        time.sleep(BLOCK_S)  # the agent's own blocking work (an LLM call), not a test wait
        answer = request_input(APPROVAL_QUESTION, "Ship it?")
        verdict = "shipped" if answer["approve"] else "held back"
        return f"{input_data.get('text', '')}: {verdict}"


async def test_a_blocking_sync_agent_leaves_the_service_responsive_and_can_ask(
    tmp_path: Path, payment_service: SandboxPaymentService
) -> None:
    crew = BlockingCrew()
    agent = Agent(handler=crew.kickoff, input_schema=INPUT_SCHEMA, name="crew")
    async with (
        serve(tmp_path, payment_service, agent) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job = await start(server, text="release")
        await payment_service.lock_funds(job.blockchain_identifier)
        assert await asyncio.wait_for(asyncio.to_thread(crew.blocking.wait, 10), 15)
        # While the handler's thread sleeps, status reads answer at once: the event loop
        # is free (a handler on the loop would hold every read for BLOCK_S).
        began = time.monotonic()
        for _ in range(20):
            async with asyncio.timeout(0.5):
                status = await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=job.job_id))
            assert status.status == jobs_pb2.JOB_STATUS_RUNNING
        assert time.monotonic() - began < BLOCK_S
        asking = await watch_until(
            server, job.job_id, lambda j: j.status is JobStatus.AWAITING_INPUT
        )
        assert asking.input_schema == APPROVAL_QUESTION
        await server.app.jobs.provide_input(job.job_id, asking.status_id, {"approve": True})
        done = await watch_until(server, job.job_id)
    assert (done.status, done.result) == (JobStatus.COMPLETED, "release: shipped")
    assert crew.threads and crew.threads[0].startswith("agent")
