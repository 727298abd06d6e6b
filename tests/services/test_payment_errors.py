"""A chain action that fails (NextAction WaitingForManualAction with an error) on a
payment whose onChainState does not change is recorded for the operator, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from agentjobs.server.domain import EventType, JobStatus
from agentjobs.server.domain.payment import PaymentSourceType
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.repository.base import Watermark
from agentjobs.server.services.monitor import watermark_names
from agentjobs.server.testing import RunningServer
from tests.services.agents import ScriptedAgent
from tests.services.conftest import serve
from tests.services.support import history, poll_round, start


async def test_a_stuck_payment_is_recorded_once(
    tmp_path: Path, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    # The handler stays held: the server is stopped under it without a grace period.
    async with serve(tmp_path, payment_service, scripted.agent, shutdown_grace_s=0) as server:
        await record_a_stuck_payment(server, payment_service, scripted)


async def record_a_stuck_payment(
    server: RunningServer, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    job = await start(server, text="stuck", mode="hold")
    await payment_service.lock_funds(job.blockchain_identifier)
    async with asyncio.timeout(10):
        await scripted.wait_for_calls(1)

    await payment_service.fail_next_action(job.blockchain_identifier, "node unreachable")
    assert await poll_round(server)
    # Replayed pages bring the same error again.
    for name in watermark_names(PaymentSourceType.V1):
        await server.app.repository.set_watermark(
            name, Watermark(last_update=datetime(2020, 1, 1, tzinfo=UTC))
        )
    assert await poll_round(server)

    notes = [
        e.detail for e in await history(server, job.job_id) if e.type is EventType.ATTENTION_NEEDED
    ]
    assert len(notes) == 1, notes
    assert "waiting for manual action" in notes[0]
    assert "node unreachable" in notes[0]
    attention = (await server.app.jobs.get_job(job.job_id)).attention
    assert attention is not None and attention.reason == "PAYMENT_ERROR"
    assert (await server.app.jobs.get_job(job.job_id)).status is JobStatus.RUNNING
