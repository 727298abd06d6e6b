"""Expiry: a job nobody paid before payByTime fails PAYMENT_EXPIRED exactly once, and
stays so across later monitor rounds and a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentjobs.server.domain import EventType, InvoiceStatus, JobStatus
from agentjobs.server.payments.sandbox import SandboxConflictError, SandboxPaymentService
from tests.services.agents import ScriptedAgent
from tests.services.conftest import serve
from tests.services.support import event_types, invoice, poll_round, start, watch_until

# The payment service takes a payByTime from 5 minutes ago on; submitResultTime must be
# 15 minutes away at least.
SHORT_PAY_WINDOW = {"pay_window_s": 0.3, "result_window_s": 3600, "expiry_grace_s": 0}


async def test_an_unpaid_job_expires_once(
    tmp_path: Path, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    async with serve(tmp_path, payment_service, scripted.agent, **SHORT_PAY_WINDOW) as server:
        job = await start(server, text="too late")
        expired = await watch_until(server, job.job_id)
        assert expired.status is JobStatus.FAILED
        assert expired.error is not None and expired.error.reason == "PAYMENT_EXPIRED"
        for _ in range(3):
            assert await poll_round(server)
        # The chain refuses funds after payByTime.
        with pytest.raises(SandboxConflictError):
            await payment_service.lock_funds(job.blockchain_identifier)

    async with serve(tmp_path, payment_service, scripted.agent, **SHORT_PAY_WINDOW) as server:
        for _ in range(2):
            assert await poll_round(server)
        after_restart = await server.app.jobs.get_job(job.job_id)
        assert after_restart.status is JobStatus.FAILED
        assert after_restart.error == expired.error
        types = await event_types(server, job.job_id)
        assert types == [EventType.CREATED, EventType.PAYMENT_REQUESTED, EventType.PAYMENT_EXPIRED]
        assert (await invoice(server, job)).status is InvoiceStatus.EXPIRED
        report = await server.app.earnings.report()
        assert report.total(InvoiceStatus.EXPIRED).count == 1
    assert scripted.calls == []
