"""Submissions followed to the chain (issue 11, item 1), against a sandbox whose chain
moves only when the test moves its clock.

A 200 from submit-result only queues SubmitResultRequested: the job is COMPLETED (the
buyer has the result) and the invoice SUBMITTED (unconfirmed) until the payment
service's chain job has put the hash on chain (CONFIRMED). A submission the chain job
parks in WaitingForManualAction is recovered with POST /payment/error-state-recovery
(retryPreviousAction, updatedAt as the lock; a 409 is tried again) and lands; parked
when no retry could land any more, it is left to a person. And a result that comes
when submitResultTime - now is less than 5 min + the chain job's pickup interval
(`chain_pickup_s`) is never submitted: the chain would ignore it; the job fails
SUBMIT_DEADLINE_PASSED with one WARNING line saying what becomes of the buyer's money
(for every such job, also many at once)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agentjobs.server.domain import EventType, InvoiceStatus, JobStatus
from agentjobs.server.domain.lifecycle import AttentionReason
from agentjobs.server.domain.payment import NextAction, OnChainState
from agentjobs.server.domain.steps import Step
from tests.services.agents import ScriptedAgent
from tests.services.conftest import serve
from tests.services.money import (
    MINUTE,
    RECOVERY,
    SUBMIT_RESULT,
    SteppedClock,
    job_until,
    sandbox,
    sandbox_traffic,
    serve_clocked,
    stepped_sandbox,
)
from tests.services.support import event_types, invoice, poll_round, start, watch_until

CHAIN_PICKUP_S = 300  # the payment service's submit-result job period in its .env.example


async def test_a_submission_is_followed_until_the_chain_has_it(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    async with (
        stepped_sandbox() as (payment_service, chain_clock),
        serve(tmp_path, payment_service, scripted.agent) as server,
    ):
        job = await start(server, text="on chain")
        bid = job.blockchain_identifier
        await payment_service.lock_funds(bid)
        completed = await watch_until(server, job.job_id)
        assert (completed.status, completed.result) == (JobStatus.COMPLETED, "ON CHAIN!")

        # Accepted, queued, not on chain: the books say so, and the job follows it.
        queued = payment_service.payment(bid)
        assert queued["NextAction"]["requestedAction"] == NextAction.SUBMIT_RESULT_REQUESTED
        assert queued["onChainState"] == OnChainState.FUNDS_LOCKED
        assert (await invoice(server, job)).status is InvoiceStatus.SUBMITTED
        assert completed.step is Step.FOLLOW
        assert await poll_round(server)
        assert (await invoice(server, job)).status is InvoiceStatus.SUBMITTED

        chain_clock.advance(MINUTE)  # the chain job picks it up; its transaction confirms
        async with asyncio.timeout(10):
            await payment_service.wait_for(bid, on_chain_state=OnChainState.RESULT_SUBMITTED)
        assert await poll_round(server)
        landed = await invoice(server, job)
        assert (landed.status, landed.on_chain_state) == (
            InvoiceStatus.CONFIRMED,
            OnChainState.RESULT_SUBMITTED,
        )
        followed = await server.app.jobs.get_job(job.job_id)
        # Next look: when the seller's withdrawal is due (unlockTime + its lag).
        assert followed.step is Step.FOLLOW
        assert followed.run_at is not None and followed.run_at > followed.unlock_time
        types = await event_types(server, job.job_id)
        assert types.index(EventType.RESULT_CONFIRMED) > types.index(EventType.COMPLETED)
        assert payment_service.accepted_submissions(bid) == 1
        report = await server.app.earnings.report()
        assert report.total(InvoiceStatus.CONFIRMED).count == 1
        assert report.total(InvoiceStatus.SUBMITTED).count == 0


@pytest.mark.parametrize("races", [0, 1], ids=["first-try", "after-a-409"])
async def test_a_submission_parked_for_manual_action_is_recovered_and_lands(
    tmp_path: Path, scripted: ScriptedAgent, races: int
) -> None:
    """`races`: recoveries that lose a race with another writer (409) first."""
    with sandbox_traffic() as traffic:
        async with (
            stepped_sandbox() as (payment_service, chain_clock),
            serve(tmp_path, payment_service, scripted.agent) as server,
        ):
            job = await start(server, text="parked")
            bid = job.blockchain_identifier
            await payment_service.lock_funds(bid)
            assert (await watch_until(server, job.job_id)).status is JobStatus.COMPLETED
            our_hash = payment_service.payment(bid)["NextAction"]["resultHash"]

            # The chain job fails on our submission right after we made it.
            payment_service.faults.conflict_next = races
            parked = await payment_service.fail_next_action(bid, "wallet out of collateral")
            assert parked["NextAction"]["requestedAction"] == NextAction.WAITING_FOR_MANUAL_ACTION
            await traffic.wait(lambda: bool(traffic.answered("/payment/error-state-recovery", 200)))
            recoveries = traffic.bodies("/payment/error-state-recovery")
            assert len(recoveries) == races + 1
            for recovery in recoveries:
                assert recovery["retryPreviousAction"] is True
                assert recovery["updatedAt"] == parked["updatedAt"]  # the optimistic lock
            answers = [a.status for a in traffic.answered("/payment/error-state-recovery")]
            assert answers == [409] * races + [200]
            retried = payment_service.payment(bid)["NextAction"]
            assert (retried["requestedAction"], retried["resultHash"]) == (
                NextAction.SUBMIT_RESULT_REQUESTED,
                our_hash,
            )

            chain_clock.advance(MINUTE)
            async with asyncio.timeout(10):
                await payment_service.wait_for(bid, on_chain_state=OnChainState.RESULT_SUBMITTED)
            assert await poll_round(server)
            assert (await invoice(server, job)).status is InvoiceStatus.CONFIRMED
            recovered = await server.app.jobs.get_job(job.job_id)
            assert recovered.attention is None
            assert recovered.recoveries == 1
            assert EventType.RECOVERY_REQUESTED in await event_types(server, job.job_id)
            assert payment_service.payment(bid)["resultHash"] == our_hash
            # One submit-result from us; the retry was the payment service's own.
            assert payment_service.request_counts[SUBMIT_RESULT] == 1
            assert payment_service.request_counts[RECOVERY] == races + 1


async def test_a_submission_parked_too_late_is_left_to_a_person(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    """Parked when the chain job could no longer take a retried submission: no recovery
    is attempted; the attention says the buyer can take the money back."""
    clock = SteppedClock()
    async with (
        stepped_sandbox() as (payment_service, _chain_clock),
        serve_clocked(
            tmp_path,
            payment_service,
            scripted.agent,
            clock,
            chain_pickup_s=CHAIN_PICKUP_S,
            result_window_s=3600,
            pay_window_s=600,
        ) as server,
    ):
        job = await start(server, text="too late to retry")
        bid = job.blockchain_identifier
        await payment_service.lock_funds(bid)
        done = await watch_until(server, job.job_id)
        assert done.status is JobStatus.COMPLETED
        clock.advance_to(done.submit_result_time - 5 * MINUTE * 1000 - CHAIN_PICKUP_S * 500)
        await payment_service.fail_next_action(bid, "node unreachable")
        flagged = await job_until(server, job.job_id, lambda j: j.attention is not None)
        assert flagged.attention is not None
        assert flagged.attention.reason == AttentionReason.SUBMISSION_FAILED
        assert "too late to submit again" in flagged.attention.message
        assert "withdraw" in flagged.attention.message
        assert payment_service.request_counts[RECOVERY] == 0
        assert flagged.status is JobStatus.COMPLETED  # the buyer has the result


@pytest.mark.parametrize("late", [False, True], ids=["in-time", "too-late"])
async def test_no_submission_once_the_chain_job_can_no_longer_pick_it_up(
    tmp_path: Path, scripted: ScriptedAgent, caplog: pytest.LogCaptureFixture, late: bool
) -> None:
    clock = SteppedClock()
    async with (
        sandbox() as payment_service,
        serve_clocked(
            tmp_path,
            payment_service,
            scripted.agent,
            clock,
            chain_pickup_s=CHAIN_PICKUP_S,
            submit_margin_s=MINUTE,
            result_window_s=3600,
            pay_window_s=600,
        ) as server,
    ):
        job = await start(server, text="slow", mode="hold")
        bid = job.blockchain_identifier
        await payment_service.lock_funds(bid)
        async with asyncio.timeout(10):
            await scripted.wait_for_calls(1)
        paid = await server.app.jobs.get_job(job.job_id)
        last_moment = paid.submit_result_time - 5 * MINUTE * 1000 - CHAIN_PICKUP_S * 1000
        assert paid.deadline == last_moment - MINUTE * 1000  # the agent was told to hurry

        # The agent's answer comes just before / just after the last moment.
        clock.advance_to(last_moment + (5_000 if late else -5_000))
        caplog.set_level(logging.WARNING)
        scripted.gate.set()
        final = await watch_until(server, job.job_id)

        if not late:
            assert final.status is JobStatus.COMPLETED, final.error
            assert payment_service.accepted_submissions(bid) == 1
            return
        assert final.status is JobStatus.FAILED
        assert final.error is not None and final.error.reason == "SUBMIT_DEADLINE_PASSED"
        assert payment_service.request_counts[SUBMIT_RESULT] == 0
        assert (await invoice(server, job)).status is InvoiceStatus.PAID
        untouched = payment_service.payment(bid)
        assert (untouched["onChainState"], untouched["NextAction"]["requestedAction"]) == (
            OnChainState.FUNDS_LOCKED,
            NextAction.WAITING_FOR_EXTERNAL_ACTION,
        )
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and job.job_id in r.getMessage()
    ]
    assert len(warned) == 1, warned
    assert "SUBMIT_DEADLINE_PASSED" in warned[0]
    # What becomes of the money: locked until submitResultTime, then the buyer's.
    assert "stay locked" in warned[0] and "withdraw" in warned[0], warned[0]
    assert "nothing is earned" in warned[0]


async def test_every_job_too_late_to_submit_says_so_exactly_once(
    tmp_path: Path, scripted: ScriptedAgent, caplog: pytest.LogCaptureFixture
) -> None:
    """Many at once: each failure's WARNING line is logged, once. (The worker used to
    take the commit of its own last write, seen through the change feed before the write
    returned, for another writer's, and stopped the step before it logged.)"""
    count = 12
    clock = SteppedClock()
    async with (
        sandbox() as payment_service,
        serve_clocked(
            tmp_path,
            payment_service,
            scripted.agent,
            clock,
            chain_pickup_s=CHAIN_PICKUP_S,
            result_window_s=3600,
            pay_window_s=600,
            runner_concurrency=count,
        ) as server,
    ):
        jobs = [await start(server, text=f"late {n}", mode="hold") for n in range(count)]
        for job in jobs:
            await payment_service.lock_funds(job.blockchain_identifier)
        async with asyncio.timeout(10):
            await scripted.wait_for_active(count)
        clock.advance_to(max(j.submit_result_time for j in jobs) - 5 * MINUTE * 1000)
        caplog.set_level(logging.WARNING)
        scripted.gate.set()
        for job in jobs:
            failed = await watch_until(server, job.job_id)
            assert failed.error is not None and failed.error.reason == "SUBMIT_DEADLINE_PASSED"
        assert payment_service.request_counts[SUBMIT_RESULT] == 0
    for job in jobs:
        warned = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.WARNING and job.job_id in r.getMessage()
        ]
        assert len(warned) == 1, (job.job_id, warned)
