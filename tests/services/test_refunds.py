"""The refund policy of the payment monitor (see its docstring): a failed job's refund
is authorized, a running job keeps working (its result makes the payment Disputed), a
refund paid out under a running job fails it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agentjobs.server.domain import EventType, InvoiceStatus, JobStatus
from agentjobs.server.payments.gateway import NextAction, OnChainState
from agentjobs.server.payments.sandbox import ManualClock, SandboxPaymentService
from agentjobs.server.testing import RunningServer
from tests.services.agents import ScriptedAgent
from tests.services.conftest import API_KEY, serve
from tests.services.support import history, invoice, poll_round, start, watch_until

AUTHORIZE_REFUND = ("POST", "/api/v1/payment/authorize-refund")


async def test_a_failed_jobs_refund_is_authorized(
    server: RunningServer, payment_service: SandboxPaymentService
) -> None:
    job = await start(server, text="boom", mode="raise")
    bid = job.blockchain_identifier
    await payment_service.lock_funds(bid)
    failed = await watch_until(server, job.job_id)
    assert failed.error is not None and failed.error.reason == "AGENT_ERROR"

    await payment_service.request_refund(bid)
    async with asyncio.timeout(10):
        await payment_service.wait_for(bid, on_chain_state=OnChainState.REFUND_WITHDRAWN)
    assert await poll_round(server)

    refunded = await invoice(server, job)
    assert (refunded.status, refunded.on_chain_state) == (
        InvoiceStatus.REFUNDED,
        OnChainState.REFUND_WITHDRAWN,
    )
    assert payment_service.request_counts[AUTHORIZE_REFUND] == 1
    events = await history(server, job.job_id)
    assert [e.type for e in events][-1] is EventType.REFUNDED
    assert any(e.detail.startswith("refund authorized") for e in events)
    assert (await server.app.jobs.get_job(job.job_id)).error == failed.error
    report = await server.app.earnings.report()
    assert report.total(InvoiceStatus.REFUNDED).count == 1
    assert report.total(InvoiceStatus.WITHDRAWN).count == 0


async def test_a_running_job_keeps_working_and_its_result_is_disputed(
    server: RunningServer, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    job = await start(server, text="mine", mode="hold")
    bid = job.blockchain_identifier
    await payment_service.lock_funds(bid)
    async with asyncio.timeout(10):
        await scripted.wait_for_calls(1)

    await payment_service.request_refund(bid)
    assert await poll_round(server)
    assert (await server.app.jobs.get_job(job.job_id)).status is JobStatus.RUNNING
    assert bid in server.app.monitor.undecided_refunds

    scripted.gate.set()
    completed = await watch_until(server, job.job_id)
    assert completed.status is JobStatus.COMPLETED
    async with asyncio.timeout(10):
        await payment_service.wait_for(bid, on_chain_state=OnChainState.DISPUTED)
    assert await poll_round(server)

    disputed = await invoice(server, job)
    assert (disputed.status, disputed.on_chain_state) == (InvoiceStatus.PAID, OnChainState.DISPUTED)
    assert payment_service.request_counts[AUTHORIZE_REFUND] == 0
    assert not server.app.monitor.undecided_refunds
    details = [e.detail for e in await history(server, job.job_id)]
    assert OnChainState.REFUND_REQUESTED in details
    assert OnChainState.DISPUTED in details


async def test_a_refund_request_is_decided_when_the_running_job_fails(
    server: RunningServer, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    job = await start(server, text="doomed", mode="hold_raise")
    bid = job.blockchain_identifier
    await payment_service.lock_funds(bid)
    async with asyncio.timeout(10):
        await scripted.wait_for_calls(1)
    await payment_service.request_refund(bid)
    assert await poll_round(server)
    assert bid in server.app.monitor.undecided_refunds
    assert payment_service.request_counts[AUTHORIZE_REFUND] == 0

    scripted.gate.set()  # the agent fails after the buyer asked
    failed = await watch_until(server, job.job_id)
    assert failed.error is not None and failed.error.reason == "AGENT_ERROR"

    async with asyncio.timeout(10):
        await payment_service.wait_for(bid, on_chain_state=OnChainState.REFUND_WITHDRAWN)
    assert await poll_round(server)
    assert (await invoice(server, job)).status is InvoiceStatus.REFUNDED


async def test_a_refund_paid_out_under_a_running_job_fails_it(
    server: RunningServer, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    job = await start(server, text="interrupted", mode="hold")
    bid = job.blockchain_identifier
    await payment_service.lock_funds(bid)
    async with asyncio.timeout(10):
        await scripted.wait_for_calls(1)
    await payment_service.request_refund(bid)
    # The operator refunds by hand (the payment service's own dashboard or API).
    await server.app.payments.gateway.authorize_refund(bid)

    failed = await watch_until(server, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.reason == "REFUNDED"
    assert (await invoice(server, job)).status is InvoiceStatus.REFUNDED
    async with asyncio.timeout(10):
        await scripted.wait_until_idle()  # the handler was stopped, not left running
    assert len(scripted.calls) == 1
    assert payment_service.accepted_submissions(bid) == 0


async def test_a_refund_asked_before_the_job_started_is_authorized(
    tmp_path: Path, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    # Rounds only when the test asks: the buyer locks and asks for the money back
    # between two of them.
    async with serve(tmp_path, payment_service, scripted.agent, monitor_interval_s=3600) as server:
        job = await start(server, text="changed my mind")
        bid = job.blockchain_identifier
        await payment_service.lock_funds(bid)
        await payment_service.request_refund(bid)
        assert await poll_round(server)

        failed = await server.app.jobs.get_job(job.job_id)
        assert failed.status is JobStatus.FAILED
        assert failed.error is not None and failed.error.reason == "REFUND_REQUESTED"
        state = payment_service.payment(bid)
        assert state["NextAction"]["requestedAction"] == NextAction.AUTHORIZE_REFUND_REQUESTED
        async with asyncio.timeout(10):
            await payment_service.wait_for(bid, on_chain_state=OnChainState.REFUND_WITHDRAWN)
        assert await poll_round(server)
        assert (await invoice(server, job)).status is InvoiceStatus.REFUNDED
    assert scripted.calls == []


async def test_funds_locked_after_we_expired_the_job_are_refunded(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    """The payment service saw the buyer's lock only after our payByTime had passed (it
    lags the chain): the job stays failed, the invoice is paid, the refund authorized."""
    lagging = SandboxPaymentService(
        api_key=API_KEY, lock_after=None, settle_after=0, clock=ManualClock()
    )
    await lagging.start("127.0.0.1", 0)
    try:
        async with serve(
            tmp_path, lagging, scripted.agent, pay_window_s=0.3, result_window_s=3600
        ) as server:
            job = await start(server, text="late")
            expired = await watch_until(server, job.job_id)
            assert expired.error is not None and expired.error.reason == "PAYMENT_EXPIRED"
            bid = job.blockchain_identifier

            await lagging.lock_funds(bid)
            assert await poll_round(server)
            assert (await invoice(server, job)).status is InvoiceStatus.PAID
            await lagging.request_refund(bid)
            assert await poll_round(server)
            async with asyncio.timeout(10):
                await lagging.wait_for(bid, on_chain_state=OnChainState.REFUND_WITHDRAWN)
            assert await poll_round(server)

            assert (await invoice(server, job)).status is InvoiceStatus.REFUNDED
            still = await server.app.jobs.get_job(job.job_id)
            assert (still.status, still.error) == (JobStatus.FAILED, expired.error)
        assert scripted.calls == []
    finally:
        await lagging.stop()


async def test_an_undecided_refund_request_survives_a_restart(
    tmp_path: Path, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    async with serve(tmp_path, payment_service, scripted.agent, shutdown_grace_s=0) as server:
        job = await start(server, text="restarted", mode="hold_raise")
        bid = job.blockchain_identifier
        await payment_service.lock_funds(bid)
        async with asyncio.timeout(10):
            await scripted.wait_for_calls(1)
        await payment_service.request_refund(bid)
        assert await poll_round(server)
        assert bid in server.app.monitor.undecided_refunds

    async with serve(tmp_path, payment_service, scripted.agent) as server:
        assert await poll_round(server)
        assert bid in server.app.monitor.undecided_refunds
        async with asyncio.timeout(10):
            await scripted.wait_for_calls(2)  # run again after the restart
        scripted.gate.set()  # ... and fails
        failed = await watch_until(server, job.job_id)
        assert failed.error is not None and failed.error.reason == "AGENT_ERROR"
        async with asyncio.timeout(10):
            await payment_service.wait_for(bid, on_chain_state=OnChainState.REFUND_WITHDRAWN)
        assert await poll_round(server)
        assert (await invoice(server, job)).status is InvoiceStatus.REFUNDED
    assert payment_service.request_counts[AUTHORIZE_REFUND] == 1
