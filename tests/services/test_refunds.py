"""Refunds and disputes as the payment contracts define them, on V1 and V2, against a
sandbox that plays the chain on upstream's rules (time moves when the test says so).

V1: a seller's authorize-refund executes only from Disputed; a buyer whose job got no
result takes the money back after submitResultTime. V2: once the buyer asked for a
refund (RefundRequested) the seller authorizes it and the buyer withdraws at once. A
dispute (a result submitted, a refund asked for) is a person's decision: attention, and
the operator's AuthorizeRefund where the contract allows it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentjobs.server.domain import EventType, InvoiceStatus, JobStatus
from agentjobs.server.domain.lifecycle import AttentionReason
from agentjobs.server.domain.payment import OnChainState, PaymentSourceType
from agentjobs.server.payments.sandbox import (
    V1,
    V2,
    ManualClock,
    SandboxPaymentService,
    add_request_observer,
)
from agentjobs.server.payments.sandbox.registry import AgentListing
from agentjobs.server.testing import RunningServer
from tests.services.agents import ScriptedAgent
from tests.services.conftest import serve
from tests.services.support import history, invoice, poll_round, start, watch_until

AUTHORIZE_REFUND = ("POST", "/api/v1/payment/authorize-refund")
MINUTE = 60


@dataclass
class Chain:
    """A sandbox on a manual clock: the chain, the buyer and the payment service's jobs
    act when the test moves time."""

    service: SandboxPaymentService
    clock: ManualClock
    source: PaymentSourceType
    authorized: asyncio.Condition

    async def authorize_requested(self, count: int = 1) -> None:
        """Until the payment service has received `count` authorize-refund calls."""
        async with asyncio.timeout(10), self.authorized:
            await self.authorized.wait_for(lambda: self.authorize_calls >= count)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def past_submit_result_time(self, bid: str) -> None:
        """The buyer's refund window opens at submitResultTime (its service withdraws
        some minutes after)."""
        srt = int(self.service.payment(bid)["submitResultTime"])
        self.advance(max(0.0, (srt - self.clock.now_ms()) / 1000) + 15 * MINUTE)

    def run_jobs(self) -> None:
        """The payment service's chain jobs pick up what was asked and confirm it."""
        self.advance(MINUTE)

    def after_the_seller_cooldown(self) -> None:
        # Upstream's seller jobs skip a payment for ~24 min after a seller transaction.
        self.advance(25 * MINUTE)

    @property
    def authorize_calls(self) -> int:
        return self.service.request_counts[AUTHORIZE_REFUND]

    async def until(self, bid: str, state: str) -> None:
        try:
            async with asyncio.timeout(10):
                await self.service.wait_for(bid, on_chain_state=state)
        except TimeoutError:
            raise AssertionError(f"not {state}: {self.service.payment(bid)}") from None


@pytest.fixture(params=[PaymentSourceType.V1, PaymentSourceType.V2], ids=["V1", "V2"])
async def chain(request: pytest.FixtureRequest) -> AsyncIterator[Chain]:
    source: PaymentSourceType = request.param
    clock = ManualClock()
    service = SandboxPaymentService(
        api_key="services-test-payment-key",
        lock_after=None,
        settle_after=0.01,
        job_interval=0.01,
        decision_interval=0.01,
        clock=clock,
        agent=AgentListing(source_type=V1 if source is PaymentSourceType.V1 else V2),
    )
    await service.start("127.0.0.1", 0)
    chain = Chain(service, clock, source, asyncio.Condition())
    loop = asyncio.get_running_loop()

    async def tell() -> None:
        async with chain.authorized:
            chain.authorized.notify_all()

    telling: set[asyncio.Task[None]] = set()

    def seen(_method: str, path: str, _body: Any) -> None:
        if path == "/payment/authorize-refund":
            task = loop.create_task(tell())
            telling.add(task)
            task.add_done_callback(telling.discard)

    remove = add_request_observer(seen)
    try:
        yield chain
    finally:
        remove()
        await service.stop()


def serve_on(
    tmp_path: Path, chain: Chain, scripted: ScriptedAgent, **overrides: Any
) -> AbstractAsyncContextManager[RunningServer]:
    if chain.source is PaymentSourceType.V2:
        overrides.setdefault("payment_source_index", 0)
    return serve(tmp_path, chain.service, scripted.agent, **overrides)


async def test_a_failed_paid_job_returns_the_money_as_its_contract_allows(
    tmp_path: Path, chain: Chain, scripted: ScriptedAgent, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve_on(tmp_path, chain, scripted) as server:
        job = await start(server, text="boom", mode="raise")
        bid = job.blockchain_identifier
        caplog.set_level(logging.WARNING)
        await chain.service.lock_funds(bid)
        failed = await watch_until(server, job.job_id)
        assert failed.error is not None and failed.error.reason == "AGENT_ERROR"
        assert chain.authorize_calls == 0  # nothing any seller call could do yet

        await chain.service.request_refund(bid)
        assert await poll_round(server)
        if chain.source is PaymentSourceType.V2:
            # V2: a refund asked for is authorized at once; the buyer then withdraws.
            await chain.authorize_requested()
            # The chain executes it; the buyer's service withdraws at once.
            chain.run_jobs()
        else:
            # V1: authorize-refund would never execute from RefundRequested: the buyer
            # takes the money back after submitResultTime, with no call of ours.
            chain.past_submit_result_time(bid)
        await chain.until(bid, OnChainState.REFUND_WITHDRAWN)
        assert await poll_round(server)

        refunded = await invoice(server, job)
        assert (refunded.status, refunded.on_chain_state) == (
            InvoiceStatus.REFUNDED,
            OnChainState.REFUND_WITHDRAWN,
        )
        assert chain.authorize_calls == (1 if chain.source is PaymentSourceType.V2 else 0)
        assert [e.type for e in await history(server, job.job_id)][-1] is EventType.REFUNDED
        assert (await server.app.jobs.get_job(job.job_id)).error == failed.error
        report = await server.app.earnings.report()
        assert report.total(InvoiceStatus.REFUNDED).count == 1
        assert report.total(InvoiceStatus.WITHDRAWN).count == 0
    # Exactly one WARNING line for the failure, saying what becomes of the money.
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and job.job_id in r.getMessage()
    ]
    assert len(warned) == 1, warned
    assert "AGENT_ERROR" in warned[0] and "locked" in warned[0]


async def test_a_dispute_waits_for_the_operator_who_can_refund_it(
    tmp_path: Path, chain: Chain, scripted: ScriptedAgent
) -> None:
    async with serve_on(tmp_path, chain, scripted) as server:
        job = await start(server, text="mine", mode="hold")
        bid = job.blockchain_identifier
        await chain.service.lock_funds(bid)
        async with asyncio.timeout(10):
            await scripted.wait_for_calls(1)
        await chain.service.request_refund(bid)
        assert await poll_round(server)
        # The job keeps working: its result will turn the refund request into a dispute.
        assert (await server.app.jobs.get_job(job.job_id)).status is JobStatus.RUNNING

        scripted.gate.set()
        completed = await watch_until(server, job.job_id)
        assert completed.status is JobStatus.COMPLETED
        chain.run_jobs()
        await chain.until(bid, OnChainState.DISPUTED)
        assert await poll_round(server)

        disputed = await server.app.jobs.get_job(job.job_id)
        assert disputed.attention is not None
        assert disputed.attention.reason == AttentionReason.DISPUTED
        assert f"agentjobs refund {job.job_id}" in disputed.attention.action
        assert (await invoice(server, job)).status is InvoiceStatus.DISPUTED
        assert chain.authorize_calls == 0  # a dispute is a person's decision
        page = await server.app.operator.attention()
        assert [j.job_id for j in page.items] == [job.job_id]

        await server.app.operator.refund(job.job_id)
        await chain.authorize_requested()
        chain.after_the_seller_cooldown()
        if chain.source is PaymentSourceType.V2:
            chain.run_jobs()  # RefundAuthorized, and the buyer's service withdraws at once
        else:
            # V1: AuthorizeRefund takes the payment back to RefundRequested; the buyer
            # withdraws after submitResultTime.
            await chain.until(bid, OnChainState.REFUND_REQUESTED)
            chain.past_submit_result_time(bid)
        await chain.until(bid, OnChainState.REFUND_WITHDRAWN)
        assert await poll_round(server)
        settled = await server.app.jobs.get_job(job.job_id)
        assert settled.attention is None
        assert (await invoice(server, job)).status is InvoiceStatus.REFUNDED
        assert chain.authorize_calls == 1
        assert (await server.app.operator.attention()).items == []


async def test_a_refund_paid_out_under_a_running_job_fails_it(
    tmp_path: Path, chain: Chain, scripted: ScriptedAgent
) -> None:
    async with serve_on(tmp_path, chain, scripted) as server:
        job = await start(server, text="interrupted", mode="hold")
        bid = job.blockchain_identifier
        await chain.service.lock_funds(bid)
        async with asyncio.timeout(10):
            await scripted.wait_for_calls(1)
        await chain.service.request_refund(bid)
        # The buyer's refund window opens before the agent is done.
        chain.past_submit_result_time(bid)
        await chain.until(bid, OnChainState.REFUND_WITHDRAWN)

        failed = await watch_until(server, job.job_id)
        assert failed.status is JobStatus.FAILED
        assert failed.error is not None and failed.error.reason == "REFUNDED"
        assert (await invoice(server, job)).status is InvoiceStatus.REFUNDED
        async with asyncio.timeout(10):
            await scripted.wait_until_idle()  # the handler was stopped, not left running
        assert len(scripted.calls) == 1
        assert chain.service.accepted_submissions(bid) == 0


async def test_a_refund_asked_before_the_job_started_never_runs_it(
    tmp_path: Path, chain: Chain, scripted: ScriptedAgent
) -> None:
    # Rounds only when the test asks: the buyer locks and asks for the money back
    # between two of them.
    async with serve_on(tmp_path, chain, scripted, monitor_interval_s=3600) as server:
        job = await start(server, text="changed my mind")
        bid = job.blockchain_identifier
        await chain.service.lock_funds(bid)
        await chain.service.request_refund(bid)
        assert await poll_round(server)

        failed = await server.app.jobs.get_job(job.job_id)
        assert failed.status is JobStatus.FAILED
        assert failed.error is not None and failed.error.reason == "REFUND_REQUESTED"
        if chain.source is PaymentSourceType.V2:
            await chain.authorize_requested()
            # The chain executes it; the buyer's service withdraws at once.
            chain.run_jobs()
        else:
            chain.past_submit_result_time(bid)
        await chain.until(bid, OnChainState.REFUND_WITHDRAWN)
        assert await poll_round(server)
        assert (await invoice(server, job)).status is InvoiceStatus.REFUNDED
    assert scripted.calls == []


async def test_funds_locked_after_we_expired_the_job_need_a_person(
    tmp_path: Path, chain: Chain, scripted: ScriptedAgent
) -> None:
    """The payment service saw the buyer's lock only after our payByTime + grace (it
    lags the chain): the job stays failed, the invoice shows the money in escrow, a
    person is told, and the money goes back the way the contract allows."""
    async with serve_on(
        tmp_path, chain, scripted, pay_window_s=0.3, result_window_s=3600, expiry_grace_s=0
    ) as server:
        job = await start(server, text="late")
        expired = await watch_until(server, job.job_id)
        assert expired.error is not None and expired.error.reason == "PAYMENT_EXPIRED"
        bid = job.blockchain_identifier

        # On the chain's clock (which stood still) the lock came in time; we see it only
        # now, after payByTime + grace on ours.
        await chain.service.lock_funds(bid)
        assert await poll_round(server)
        assert (await invoice(server, job)).status is InvoiceStatus.PAID
        flagged = await server.app.jobs.get_job(job.job_id)
        assert flagged.attention is not None
        assert flagged.attention.reason == AttentionReason.FUNDS_LOCKED_AFTER_FAILURE
        assert (flagged.status, flagged.error) == (JobStatus.FAILED, expired.error)
    assert scripted.calls == []


async def test_a_scheduled_refund_survives_a_restart(
    tmp_path: Path, chain: Chain, scripted: ScriptedAgent
) -> None:
    if chain.source is PaymentSourceType.V1:
        pytest.skip("V1 schedules no refund of its own (the buyer withdraws)")
    async with serve_on(
        tmp_path, chain, scripted, shutdown_grace_s=0, monitor_interval_s=3600
    ) as server:
        job = await start(server, text="restarted", mode="hold_raise")
        bid = job.blockchain_identifier
        await chain.service.lock_funds(bid)
        async with asyncio.timeout(10):
            await scripted.wait_for_calls(1)
        await chain.service.request_refund(bid)
        assert await poll_round(server)
        # Stopped while the agent runs: the refund waits for the job's outcome.

    async with serve_on(tmp_path, chain, scripted) as server:
        async with asyncio.timeout(10):
            await scripted.wait_for_calls(2)  # run again after the restart
        scripted.gate.set()  # ... and fails
        failed = await watch_until(server, job.job_id)
        assert failed.error is not None and failed.error.reason == "AGENT_ERROR"
        await chain.authorize_requested()
        chain.run_jobs()  # RefundAuthorized, and the buyer's service withdraws at once
        await chain.until(bid, OnChainState.REFUND_WITHDRAWN)
        assert await poll_round(server)
        assert (await invoice(server, job)).status is InvoiceStatus.REFUNDED
    assert chain.authorize_calls == 1
