"""Expiry with a grace (issue 11, item 4). The payment service can report a lock made in
time on chain only after payByTime (confirmations, its tx-sync interval): a lock it
reports within `expiry_grace_s` after payByTime still runs the job; after the grace the
job expires PAYMENT_EXPIRED, once, after one more look at the payment. A payment the
service no longer knows (404: a fresh sandbox on the same port) still expires on time.

The server's clock is moved by the test; the sandbox's chain clock stands still, so on
the chain's own time the buyer locked before payByTime."""

from __future__ import annotations

from pathlib import Path

from agentjobs.server.domain import EventType, InvoiceStatus, JobStatus
from agentjobs.server.domain.lifecycle import AttentionReason
from agentjobs.server.domain.steps import Step
from agentjobs.server.payments.sandbox import SandboxPaymentService
from tests.services.agents import ScriptedAgent
from tests.services.conftest import API_KEY
from tests.services.money import (
    SteppedClock,
    sandbox,
    serve_clocked,
    stepped_sandbox,
)
from tests.services.support import event_types, invoice, poll_round, start, watch_until

GRACE_S = 300
WINDOWS = {"pay_window_s": 600, "result_window_s": 3600, "expiry_grace_s": GRACE_S}
RESOLVE = ("POST", "/api/v1/payment/resolve-blockchain-identifier")


async def test_a_lock_reported_within_the_grace_runs_the_job_and_none_after_it_expires(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    clock = SteppedClock()
    async with (
        stepped_sandbox() as (payment_service, _chain_clock),
        serve_clocked(tmp_path, payment_service, scripted.agent, clock, **WINDOWS) as server,
    ):
        late = await start(server, text="paid in time")
        unpaid = await start(server, text="never paid")
        for job in (late, unpaid):
            assert (job.step, job.run_at) == (Step.EXPIRE, job.pay_by_time + GRACE_S * 1000)

        # payByTime has passed on our clock; the payment service has seen nothing yet.
        clock.advance_to(late.pay_by_time + (GRACE_S - 60) * 1000)
        assert await poll_round(server)
        for job in (late, unpaid):
            assert (await server.app.jobs.get_job(job.job_id)).status is JobStatus.AWAITING_PAYMENT

        # Now it reports the buyer's lock (made in time on chain): the job runs.
        await payment_service.lock_funds(late.blockchain_identifier)
        assert await poll_round(server)
        done = await watch_until(server, late.job_id)
        assert (done.status, done.result) == (JobStatus.COMPLETED, "PAID IN TIME!")
        assert done.attention is None
        assert (await invoice(server, late)).status is InvoiceStatus.SUBMITTED

        # The grace is over: the unpaid one expires, after one more look at its payment.
        reads = payment_service.request_counts[RESOLVE]
        clock.advance_to(unpaid.pay_by_time + (GRACE_S + 1) * 1000)
        expired = await watch_until(server, unpaid.job_id)
        assert expired.status is JobStatus.FAILED
        assert expired.error is not None and expired.error.reason == "PAYMENT_EXPIRED"
        assert payment_service.request_counts[RESOLVE] > reads
        assert (await invoice(server, unpaid)).status is InvoiceStatus.EXPIRED
        types = await event_types(server, unpaid.job_id)
        assert types == [EventType.CREATED, EventType.PAYMENT_REQUESTED, EventType.PAYMENT_EXPIRED]
        assert (await server.app.jobs.get_job(late.job_id)).status is JobStatus.COMPLETED

        # A lock reported after the grace cannot run the job: a person is told.
        await payment_service.lock_funds(unpaid.blockchain_identifier)
        assert await poll_round(server)
        flagged = await server.app.jobs.get_job(unpaid.job_id)
        assert flagged.status is JobStatus.FAILED
        assert flagged.attention is not None
        assert flagged.attention.reason == AttentionReason.FUNDS_LOCKED_AFTER_FAILURE
    assert [call["text"] for call in scripted.calls] == ["paid in time"]


async def test_a_payment_the_service_forgot_still_expires_on_time(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    clock = SteppedClock()
    async with sandbox() as first:
        port = int(first.url.split(":")[2].split("/")[0])
        async with serve_clocked(tmp_path, first, scripted.agent, clock, **WINDOWS) as server:
            job = await start(server, text="forgotten")
            await first.stop()
            # The payment service was reset: same address, none of its payments.
            fresh = SandboxPaymentService(api_key=API_KEY, lock_after=None)
            await fresh.start("127.0.0.1", port)
            try:
                assert await poll_round(server)
                clock.advance_to(job.pay_by_time + (GRACE_S - 60) * 1000)
                assert await poll_round(server)
                waiting = await server.app.jobs.get_job(job.job_id)
                assert waiting.status is JobStatus.AWAITING_PAYMENT
                assert waiting.run_at == job.pay_by_time + GRACE_S * 1000

                clock.advance_to(job.pay_by_time + (GRACE_S + 1) * 1000)
                expired = await watch_until(server, job.job_id)
                assert expired.status is JobStatus.FAILED
                assert expired.error is not None and expired.error.reason == "PAYMENT_EXPIRED"
                assert fresh.request_counts[RESOLVE] >= 1  # it asked, and heard 404
                assert (await invoice(server, job)).status is InvoiceStatus.EXPIRED
                expired_at = max(
                    e.created_at for e in await server.app.repository.events(job.job_id)
                )
                assert int(expired_at.timestamp() * 1000) >= job.pay_by_time + GRACE_S * 1000
            finally:
                await fresh.stop()
    assert scripted.calls == []
