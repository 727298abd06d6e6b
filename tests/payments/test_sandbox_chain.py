"""The sandbox playing the chain and the buyer: locks, results, withdrawals, refunds,
disputes, invalid funds, late results and errors waiting for an operator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from agentjobs.server.payments.sandbox import (
    ManualClock,
    SandboxConflictError,
    SandboxPaymentService,
    UnknownPaymentError,
)
from tests.payments.helpers import API_KEY, RESULT_HASH, RawApi, iso

WAIT_S = 5.0


@pytest.fixture
async def manual() -> AsyncIterator[tuple[SandboxPaymentService, ManualClock, RawApi]]:
    """A sandbox whose time moves only when the test says so."""
    clock = ManualClock()
    service = SandboxPaymentService(api_key=API_KEY, lock_after=60, settle_after=30, clock=clock)
    await service.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            yield service, clock, RawApi(session, service.url)
    finally:
        await service.stop()


async def wait_for(sandbox: SandboxPaymentService, bid: str, **state: str) -> dict[str, Any]:
    async with asyncio.timeout(WAIT_S):
        return await sandbox.wait_for(bid, **state)


async def test_lock_submit_result_withdraw_on_real_timers(raw: RawApi) -> None:
    sandbox = SandboxPaymentService(api_key=API_KEY, lock_after=0.01, settle_after=0.01)
    url = await sandbox.start("127.0.0.1", 0)
    try:
        api = RawApi(raw.session, url)
        bid = (await api.create())["blockchainIdentifier"]
        locked = await wait_for(sandbox, bid, on_chain_state="FundsLocked")
        assert locked["BuyerWallet"] is not None
        assert (await api.submit(bid)).status == 200
        submitted = await wait_for(sandbox, bid, on_chain_state="ResultSubmitted")
        assert submitted["resultHash"] == RESULT_HASH
        assert submitted["NextAction"]["requestedAction"] == "WaitingForExternalAction"
        withdrawn = await wait_for(sandbox, bid, on_chain_state="Withdrawn")
        assert withdrawn["WithdrawnForSeller"] == withdrawn["RequestedFunds"]
        assert sandbox.accepted_submissions(bid) == 1
    finally:
        await sandbox.stop()


async def test_each_step_waits_for_its_time_on_a_manual_clock(
    manual: tuple[SandboxPaymentService, ManualClock, RawApi],
) -> None:
    sandbox, clock, api = manual
    bid = (await api.create())["blockchainIdentifier"]
    clock.advance(59)
    await asyncio.sleep(0)
    assert (await api.resolve(bid))["onChainState"] is None
    clock.advance(1)
    await wait_for(sandbox, bid, on_chain_state="FundsLocked")

    requested = (await api.submit(bid)).data
    assert requested["NextAction"]["requestedAction"] == "SubmitResultRequested"
    assert requested["onChainState"] == "FundsLocked"
    clock.advance(30)
    await wait_for(sandbox, bid, on_chain_state="ResultSubmitted")
    clock.advance(30)
    await wait_for(sandbox, bid, on_chain_state="Withdrawn")
    assert (await api.resolve(bid))["NextAction"]["requestedAction"] == "None"


async def test_timestamps_follow_what_changed(
    manual: tuple[SandboxPaymentService, ManualClock, RawApi],
) -> None:
    sandbox, _clock, api = manual
    bid = (await api.create())["blockchainIdentifier"]
    await sandbox.lock_funds(bid)
    locked = await api.resolve(bid)
    await api.submit(bid)
    requested = await api.resolve(bid)
    # A NextAction change moves the next-action and combined stamps, not the chain one.
    assert requested["nextActionLastChangedAt"] > locked["nextActionLastChangedAt"]
    assert (
        requested["onChainStateOrResultLastChangedAt"]
        == locked["onChainStateOrResultLastChangedAt"]
    )
    assert (
        requested["nextActionOrOnChainStateOrResultLastChangedAt"]
        == requested["nextActionLastChangedAt"]
    )


async def test_funds_or_datum_invalid(raw: RawApi, sandbox: SandboxPaymentService) -> None:
    bid = (await raw.create())["blockchainIdentifier"]
    invalid = await sandbox.mark_funds_invalid(bid)
    assert invalid["onChainState"] == "FundsOrDatumInvalid"
    assert (await raw.submit(bid)).status == 409
    with pytest.raises(SandboxConflictError, match="already FundsOrDatumInvalid"):
        await sandbox.lock_funds(bid)


async def test_refund_request_then_seller_authorizes_the_refund(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    bid = (await raw.create())["blockchainIdentifier"]
    await sandbox.lock_funds(bid)
    assert (await sandbox.request_refund(bid))["onChainState"] == "RefundRequested"
    answer = await raw.call(
        "POST",
        "/payment/authorize-refund",
        body={"network": "Preprod", "blockchainIdentifier": bid},
    )
    assert answer.data["NextAction"]["requestedAction"] == "AuthorizeRefundRequested"
    refunded = await wait_for(sandbox, bid, on_chain_state="RefundWithdrawn")
    assert refunded["WithdrawnForBuyer"] == refunded["RequestedFunds"]
    assert refunded["WithdrawnForSeller"] == []


async def test_a_result_after_a_refund_request_makes_a_dispute(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    bid = (await raw.create())["blockchainIdentifier"]
    await sandbox.lock_funds(bid)
    await sandbox.request_refund(bid)
    assert (await raw.submit(bid)).status == 200
    disputed = await wait_for(sandbox, bid, on_chain_state="Disputed")
    assert disputed["resultHash"] == RESULT_HASH


async def test_the_buyer_disputes_a_submitted_result(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    [bid] = sandbox.create_payments(1)
    await sandbox.lock_funds(bid)
    await raw.submit(bid)
    await wait_for(sandbox, bid, on_chain_state="ResultSubmitted")
    sandbox.settle_after = 3600  # no withdrawal before the buyer acts
    assert (await sandbox.request_refund(bid))["onChainState"] == "Disputed"


async def test_a_result_less_than_5_minutes_before_the_deadline_is_ignored(
    manual: tuple[SandboxPaymentService, ManualClock, RawApi],
) -> None:
    sandbox, clock, api = manual
    now = datetime.fromtimestamp(clock.now_ms() / 1000, UTC)
    bid = (
        await api.create(
            payByTime=iso(now + timedelta(minutes=10)),
            submitResultTime=iso(now + timedelta(minutes=20)),
        )
    )["blockchainIdentifier"]
    await sandbox.lock_funds(bid)
    clock.advance(16 * 60)  # 4 minutes before submitResultTime
    answer = await api.submit(bid)
    assert answer.status == 200
    assert sandbox.accepted_submissions(bid) == sandbox.ignored_submissions(bid) == 1
    clock.advance(3600)
    payment = await api.resolve(bid)
    assert payment["onChainState"] == "FundsLocked"
    assert payment["NextAction"]["requestedAction"] == "SubmitResultRequested"


async def test_the_buyer_cannot_lock_after_pay_by_time(
    manual: tuple[SandboxPaymentService, ManualClock, RawApi],
) -> None:
    sandbox, clock, api = manual
    bid = (await api.create())["blockchainIdentifier"]
    clock.advance(13 * 3600)
    with pytest.raises(SandboxConflictError, match="payByTime has passed"):
        await sandbox.lock_funds(bid)
    assert (await api.resolve(bid))["onChainState"] is None


async def test_error_state_recovery_clears_and_retries_the_action(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.settle_after = 3600
    bid = (await raw.create())["blockchainIdentifier"]
    await sandbox.lock_funds(bid)
    await raw.submit(bid)
    failed = await sandbox.fail_next_action(bid, "tx timed out")
    assert failed["NextAction"] == {
        "requestedAction": "WaitingForManualAction",
        "errorType": "NetworkError",
        "errorNote": "tx timed out",
        "resultHash": RESULT_HASH,
    }
    stale = await raw.call(
        "POST",
        "/payment/error-state-recovery",
        body={"network": "Preprod", "blockchainIdentifier": bid, "updatedAt": failed["createdAt"]},
    )
    assert stale.status == 400
    sandbox.settle_after = 0.01
    recovered = await raw.call(
        "POST",
        "/payment/error-state-recovery",
        body={
            "network": "Preprod",
            "blockchainIdentifier": bid,
            "updatedAt": failed["updatedAt"],
            "retryPreviousAction": True,
        },
    )
    assert recovered.data["NextAction"]["requestedAction"] == "SubmitResultRequested"
    assert recovered.data["NextAction"]["errorNote"] is None
    await wait_for(sandbox, bid, on_chain_state="ResultSubmitted")
    again = await raw.call(
        "POST",
        "/payment/error-state-recovery",
        body={"network": "Preprod", "blockchainIdentifier": bid, "updatedAt": failed["updatedAt"]},
    )
    assert again.status == 400
    assert "WaitingForManualAction" in again.message


async def test_control_endpoints_play_the_buyer(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    bids = sandbox.create_payments(3)
    for bid, action, state in [
        (bids[0], "lock", "FundsLocked"),
        (bids[1], "invalid", "FundsOrDatumInvalid"),
    ]:
        answer = await raw.call("POST", f"/sandbox/payments/{bid}/{action}", under_api=False)
        assert answer.data["onChainState"] == state
    refund = await raw.call("POST", f"/sandbox/payments/{bids[0]}/refund-request", under_api=False)
    assert refund.data["onChainState"] == "RefundRequested"
    manual = await raw.call(
        "POST",
        f"/sandbox/payments/{bids[2]}/manual-action",
        body={"note": "stuck"},
        under_api=False,
    )
    assert manual.data["NextAction"]["errorNote"] == "stuck"
    shown = await raw.call("GET", f"/sandbox/payments/{bids[0]}", under_api=False)
    assert shown.data == sandbox.payment(bids[0])
    twice = await raw.call("POST", f"/sandbox/payments/{bids[0]}/lock", under_api=False)
    assert twice.status == 409
    unknown = await raw.call("POST", "/sandbox/payments/beef/lock", under_api=False)
    assert unknown.status == 404


async def test_in_process_calls_on_unknown_payments_raise(sandbox: SandboxPaymentService) -> None:
    with pytest.raises(UnknownPaymentError):
        await sandbox.lock_funds("beef")
    with pytest.raises(UnknownPaymentError):
        sandbox.accepted_submissions("beef")
