"""The sandbox playing the chain on upstream's schedule (tag 0.28.0): the submit-result
job's pickup and its 5-minute cutoff, confirmations, withdrawal after unlockTime + 10
minutes, the buyer's lock (in time, late, invalid), all over real HTTP on a ManualClock."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from agentjobs.server.payments.sandbox import SandboxConflictError, SandboxPaymentService
from agentjobs.server.payments.sandbox.transitions import UNEXPECTED_STATE_CHANGE_TIMEOUT
from tests.payments.conftest import Manual
from tests.payments.helpers import (
    API_KEY,
    MINUTE,
    RESULT_HASH,
    WAIT_S,
    RawApi,
    at,
    iso,
    times_from,
)


async def locked_payment(manual: Manual, **times: Any) -> str:
    """A payment created now on the manual clock, its funds locked."""
    body = times or times_from(manual.now_ms(), pay_by_min=10, submit_min=20)
    bid: str = (await manual.api.create(**body))["blockchainIdentifier"]
    await manual.sandbox.lock_funds(bid)
    return bid


def short_times(manual: Manual) -> dict[str, str]:
    """Upstream's tightest times: submit in 20 min, unlock 15 min later, disputes 15 more."""
    start = at(manual.now_ms())
    return {
        "payByTime": iso(start + timedelta(minutes=10)),
        "submitResultTime": iso(start + timedelta(minutes=20)),
        "unlockTime": iso(start + timedelta(minutes=35)),
        "externalDisputeUnlockTime": iso(start + timedelta(minutes=50)),
    }


async def test_a_lock_books_the_buyer_and_empties_the_result_hash(manual: Manual) -> None:
    created = await manual.api.create(**times_from(manual.now_ms(), pay_by_min=10, submit_min=20))
    # Upstream creates the row with resultHash "" and tx-sync copies the datum's (null).
    assert created["resultHash"] == ""
    assert created["lastCheckedAt"] is None
    bid = created["blockchainIdentifier"]
    locked = await manual.sandbox.lock_funds(bid)
    assert locked["onChainState"] == "FundsLocked"
    assert locked["resultHash"] is None
    assert locked["BuyerWallet"] is not None
    assert locked["CurrentTransaction"]["status"] == "Confirmed"
    assert locked["NextAction"]["requestedAction"] == "WaitingForExternalAction"
    assert locked["collateralReturnLovelace"] == "0"


async def test_a_result_lands_only_after_the_jobs_pickup_and_its_confirmation(
    manual: Manual,
) -> None:
    bid = await locked_payment(manual)
    manual.advance(1)
    requested = (await manual.api.submit(bid)).data
    assert requested["NextAction"]["requestedAction"] == "SubmitResultRequested"
    assert requested["NextAction"]["resultHash"] == RESULT_HASH
    assert requested["onChainState"] == "FundsLocked"

    manual.advance(14)  # the job's tick, 15 s after the sandbox started
    picked = await manual.api.resolve(bid)
    assert picked["NextAction"]["requestedAction"] == "SubmitResultInitiated"
    assert picked["CurrentTransaction"]["status"] == "Pending"
    assert picked["onChainState"] == "FundsLocked"

    manual.advance(19)
    assert (await manual.api.resolve(bid))["onChainState"] == "FundsLocked"
    manual.advance(1)  # the transaction confirms 20 s after submission
    landed = await manual.api.resolve(bid)
    assert landed["onChainState"] == "ResultSubmitted"
    assert landed["resultHash"] == RESULT_HASH
    assert landed["NextAction"] == {
        "requestedAction": "WaitingForExternalAction",
        "errorType": None,
        "errorNote": None,
        "resultHash": None,
    }
    assert landed["CurrentTransaction"]["status"] == "Confirmed"
    # sellerCoolDownTime: build time + cooldownTime (7 min) + 10 min.
    assert landed["cooldownTime"] == manual.now_ms() - 20_000 + 17 * 60_000


async def test_the_5_minute_cutoff_is_checked_when_the_job_picks_the_request_up(
    manual: Manual,
) -> None:
    # submitResultTime is 20 minutes after the sandbox's start; the job ticks every 15 s.
    early, late = await locked_payment(manual), await locked_payment(manual)
    manual.advance(14 * MINUTE + 40)  # 880 s: picked up at 885 s, 5 min 15 s before
    assert (await manual.api.submit(early)).status == 200
    manual.advance(15)  # 895 s: picked up at 900 s, exactly 5 min before: too late
    answer = await manual.api.submit(late)
    assert answer.status == 200
    manual.advance(60)
    assert (await manual.api.resolve(early))["onChainState"] == "ResultSubmitted"
    stuck = await manual.api.resolve(late)
    assert stuck["onChainState"] == "FundsLocked"
    assert stuck["NextAction"]["requestedAction"] == "SubmitResultRequested"
    sandbox = manual.sandbox
    assert (sandbox.accepted_submissions(late), sandbox.ignored_submissions(late)) == (1, 1)
    assert sandbox.ignored_submissions(early) == 0


async def test_an_ignored_result_ends_refunded_and_waiting_for_a_person(manual: Manual) -> None:
    bid = await locked_payment(manual)
    manual.advance(16 * MINUTE)
    assert (await manual.api.submit(bid)).status == 200
    # The buyer's service withdraws the refund once submitResultTime + 10 min passed.
    manual.advance(13 * MINUTE)
    assert (await manual.api.resolve(bid))["onChainState"] == "FundsLocked"
    manual.advance(3 * MINUTE)
    refunded = await manual.api.resolve(bid)
    assert refunded["onChainState"] == "RefundWithdrawn"
    assert refunded["WithdrawnForBuyer"] == refunded["RequestedFunds"]
    assert refunded["NextAction"] == {
        "requestedAction": "WaitingForManualAction",
        "errorType": "Unknown",
        "errorNote": UNEXPECTED_STATE_CHANGE_TIMEOUT,
        "resultHash": None,
    }


async def test_withdrawn_only_after_unlock_time_plus_10_minutes(manual: Manual) -> None:
    bid = await locked_payment(manual, **short_times(manual))
    await manual.api.submit(bid)
    manual.advance(MINUTE)
    assert (await manual.api.resolve(bid))["onChainState"] == "ResultSubmitted"
    unlock_ms = int((await manual.api.resolve(bid))["unlockTime"])
    manual.advance((unlock_ms + 10 * 60_000 - manual.now_ms()) / 1000 - 1)
    waiting = await manual.api.resolve(bid)
    assert waiting["onChainState"] == "ResultSubmitted"
    assert waiting["NextAction"]["requestedAction"] == "WaitingForExternalAction"
    manual.advance(30)  # the automatic decision's tick
    assert (await manual.api.resolve(bid))["NextAction"]["requestedAction"] in (
        "WithdrawRequested",
        "WithdrawInitiated",
    )
    manual.advance(MINUTE)
    withdrawn = await manual.api.resolve(bid)
    assert withdrawn["onChainState"] == "Withdrawn"
    assert withdrawn["NextAction"]["requestedAction"] == "None"
    assert withdrawn["WithdrawnForSeller"] == withdrawn["RequestedFunds"]
    assert withdrawn["resultHash"] == RESULT_HASH


async def test_the_buyer_may_dispute_until_unlock_time(manual: Manual) -> None:
    bid = await locked_payment(manual, **short_times(manual))
    await manual.api.submit(bid)
    manual.advance(MINUTE)
    manual.advance(30 * MINUTE)  # 34.5 min: unlockTime is at 35
    disputed = await manual.sandbox.request_refund(bid)
    assert disputed["onChainState"] == "Disputed"
    assert disputed["resultHash"] == RESULT_HASH
    manual.advance(60 * MINUTE)
    assert (await manual.api.resolve(bid))["onChainState"] == "Disputed"


async def test_no_dispute_after_unlock_time(manual: Manual) -> None:
    bid = await locked_payment(manual, **short_times(manual))
    await manual.api.submit(bid)
    manual.advance(35 * MINUTE)  # unlockTime; the withdrawal waits 10 more minutes
    assert (await manual.api.resolve(bid))["onChainState"] == "ResultSubmitted"
    with pytest.raises(SandboxConflictError, match="after unlockTime"):
        await manual.sandbox.request_refund(bid)


async def test_a_result_after_a_refund_request_makes_a_dispute(manual: Manual) -> None:
    bid = await locked_payment(manual)
    assert (await manual.sandbox.request_refund(bid))["onChainState"] == "RefundRequested"
    assert (await manual.api.submit(bid)).status == 200
    manual.advance(MINUTE)
    disputed = await manual.api.resolve(bid)
    assert disputed["onChainState"] == "Disputed"
    assert disputed["resultHash"] == RESULT_HASH


async def test_invalid_funds_wait_for_a_person_without_an_error_type(manual: Manual) -> None:
    bid = (await manual.api.create(**times_from(manual.now_ms(), pay_by_min=10, submit_min=20)))[
        "blockchainIdentifier"
    ]
    invalid = await manual.sandbox.mark_funds_invalid(bid)
    assert invalid["onChainState"] == "FundsOrDatumInvalid"
    assert invalid["NextAction"] == {
        "requestedAction": "WaitingForManualAction",
        "errorType": None,
        "errorNote": "Payment amounts do not match. This likely is a spoofing attempt.",
        "resultHash": None,
    }
    answer = await manual.api.submit(bid)
    assert (answer.status, answer.message) == (404, "Payment not found or in invalid state")
    with pytest.raises(SandboxConflictError, match="already FundsOrDatumInvalid"):
        await manual.sandbox.lock_funds(bid)


async def test_a_lock_landing_after_pay_by_time_is_funds_or_datum_invalid(manual: Manual) -> None:
    bid = (await manual.api.create(**times_from(manual.now_ms(), pay_by_min=10, submit_min=20)))[
        "blockchainIdentifier"
    ]
    with pytest.raises(SandboxConflictError, match="payByTime has not passed"):
        await manual.sandbox.lock_funds_late(bid)
    manual.advance(11 * MINUTE)
    with pytest.raises(SandboxConflictError, match="payByTime has passed"):
        await manual.sandbox.lock_funds(bid)
    late = await manual.sandbox.lock_funds_late(bid)
    assert late["onChainState"] == "FundsOrDatumInvalid"
    assert late["NextAction"]["requestedAction"] == "WaitingForManualAction"
    assert late["NextAction"]["errorNote"] == (
        "Block time is after pay by time. This is a timed out purchase."
    )


async def test_the_simulated_buyer_pays_on_real_timers(raw: RawApi) -> None:
    sandbox = SandboxPaymentService(
        api_key=API_KEY, lock_after=0.01, settle_after=0.01, job_interval=0.01
    )
    url = await sandbox.start("127.0.0.1", 0)
    try:
        api = RawApi(raw.session, url)
        bid = (await api.create())["blockchainIdentifier"]
        async with asyncio.timeout(WAIT_S):
            locked = await sandbox.wait_for(bid, on_chain_state="FundsLocked")
        assert locked["BuyerWallet"] is not None
        assert (await api.submit(bid)).status == 200
        async with asyncio.timeout(WAIT_S):
            submitted = await sandbox.wait_for(bid, on_chain_state="ResultSubmitted")
        assert submitted["resultHash"] == RESULT_HASH
        assert sandbox.accepted_submissions(bid) == 1
    finally:
        await sandbox.stop()


async def test_a_failed_chain_job_waits_for_a_person(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.settle_after = 3600
    bid = (await raw.create())["blockchainIdentifier"]
    await sandbox.lock_funds(bid)
    await raw.submit(bid)
    failed = await sandbox.fail_next_action(bid, "tx timed out")
    assert failed["NextAction"]["requestedAction"] == "WaitingForManualAction"
    assert failed["NextAction"]["errorType"] == "Unknown"
    assert failed["NextAction"]["errorNote"].endswith("tx timed out")
    assert failed["NextAction"]["resultHash"] == RESULT_HASH
    with pytest.raises(SandboxConflictError, match="already waits"):
        await sandbox.fail_next_action(bid, "again")
