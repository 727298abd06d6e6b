"""The runner's limits: the handler's time ends at submitResultTime minus the safety
margin, at most runner_concurrency handlers run at once, and a handler that raises or
returns no text fails the job AGENT_ERROR."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentjobs.server.domain import JobStatus
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.testing import RunningServer
from tests.services.agents import ScriptedAgent
from tests.services.conftest import serve
from tests.services.support import poll_round, start, watch_until

# submitResultTime 16 minutes after StartJob (the payment service wants 15 at least);
# the chain's 5-minute cut-off and a margin leave the handler about one second of it.
SHORT_RESULT_WINDOW = {"pay_window_s": 600, "result_window_s": 960, "submit_margin_s": 659}


async def test_a_slow_agent_runs_out_of_time(
    tmp_path: Path, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    async with serve(tmp_path, payment_service, scripted.agent, **SHORT_RESULT_WINDOW) as server:
        job = await start(server, text="slow", mode="forever")
        await payment_service.lock_funds(job.blockchain_identifier)
        failed = await watch_until(server, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert (failed.error.reason, failed.error.message) == (
        "DEADLINE_EXCEEDED",
        "the agent did not finish in time",
    )
    assert len(scripted.calls) == 1, "the handler was started, then stopped"
    assert scripted.active == 0
    assert payment_service.accepted_submissions(job.blockchain_identifier) == 0


async def test_at_most_runner_concurrency_handlers_run_at_once(
    tmp_path: Path, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    async with serve(
        tmp_path, payment_service, scripted.agent, runner_concurrency=2, monitor_interval_s=3600
    ) as server:
        jobs = [await start(server, text=f"job {n}", mode="hold") for n in range(5)]
        for job in jobs:
            await payment_service.lock_funds(job.blockchain_identifier)
        assert await poll_round(server)  # all five are paid and handed to the runner
        async with asyncio.timeout(10):
            await scripted.wait_for_active(2)
        statuses = {(await server.app.jobs.get_job(j.job_id)).status for j in jobs}
        assert statuses == {JobStatus.RUNNING}
        assert len(scripted.calls) == 2

        scripted.gate.set()
        for job in jobs:
            final = await watch_until(server, job.job_id)
            assert final.status is JobStatus.COMPLETED, final.error
    assert len(scripted.calls) == 5
    assert scripted.max_active == 2


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("raise", "RuntimeError: cannot shout 'oops'"),
        # Its own timeout, not our deadline.
        ("own_timeout", "TimeoutError: its own call timed out"),
        ("empty", "the agent returned an empty result"),
        ("not_str", "the agent returned int, not str"),
    ],
)
async def test_a_broken_agent_fails_the_job(
    server: RunningServer, payment_service: SandboxPaymentService, mode: str, message: str
) -> None:
    job = await start(server, text="oops", mode=mode)
    await payment_service.lock_funds(job.blockchain_identifier)
    failed = await watch_until(server, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert (failed.error.reason, failed.error.message) == ("AGENT_ERROR", message)
    assert failed.result is None
    assert payment_service.accepted_submissions(job.blockchain_identifier) == 0
