"""Refunds and disputes as the V1 and V2 contracts and upstream's jobs define them
(smart-contracts/payment[-v2]/state_machine_diagram.md, payments/authorize-refund route
and services, the transition table), over real HTTP on a ManualClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from agentjobs.server.payments.sandbox import (
    V2,
    AgentListing,
    Funds,
    ManualClock,
    SandboxConflictError,
    SandboxPaymentService,
)
from agentjobs.server.payments.sandbox.transitions import UNEXPECTED_STATE_CHANGE_TIMEOUT
from tests.payments.conftest import Manual
from tests.payments.helpers import API_KEY, MINUTE, RESULT_HASH, RawApi, at, authorize_refund, iso
from tests.payments.test_sandbox_chain import locked_payment, short_times


@pytest.fixture
async def manual_v2() -> AsyncIterator[Manual]:
    clock = ManualClock()
    service = SandboxPaymentService(
        api_key=API_KEY,
        lock_after=None,
        settle_after=20,
        clock=clock,
        agent=AgentListing(source_type=V2),
    )
    await service.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            yield Manual(service, clock, RawApi(session, service.url))
    finally:
        await service.stop()


async def locked_v2(manual: Manual) -> str:
    return await locked_payment(manual, **short_times(manual), supportedPaymentSourceIndex=0)


async def disputed(manual: Manual, bid: str) -> None:
    """Result on chain, then the buyer disputes it."""
    assert (await manual.api.submit(bid)).status == 200
    manual.advance(MINUTE)
    assert (await manual.api.resolve(bid))["onChainState"] == "ResultSubmitted"
    assert (await manual.sandbox.request_refund(bid))["onChainState"] == "Disputed"


@pytest.mark.parametrize("state", [None, "FundsLocked", "ResultSubmitted"])
async def test_authorize_refund_outside_a_refund_request_or_dispute_is_404(
    manual: Manual, state: str | None
) -> None:
    bid = (await manual.api.create())["blockchainIdentifier"]
    if state is not None:
        await manual.sandbox.lock_funds(bid)
    if state == "ResultSubmitted":
        await manual.api.submit(bid)
        manual.advance(MINUTE)
    answer = await authorize_refund(manual.api, bid)
    assert (answer.status, answer.message) == (404, "Payment not found or in invalid state")


async def test_v1_refund_is_executed_from_a_dispute_back_to_refund_requested(
    manual: Manual,
) -> None:
    bid = await locked_payment(manual, **short_times(manual))
    await disputed(manual, bid)
    requested = (await authorize_refund(manual.api, bid)).data
    assert requested["NextAction"]["requestedAction"] == "AuthorizeRefundRequested"
    # The buyer's refund request reset the seller's cooldown: the next tick builds it.
    manual.advance(15)
    assert (await manual.api.resolve(bid))["NextAction"]["requestedAction"] == (
        "AuthorizeRefundInitiated"
    )
    manual.advance(20)
    refunded = await manual.api.resolve(bid)
    assert refunded["onChainState"] == "RefundRequested"
    assert refunded["NextAction"]["requestedAction"] == "WaitingForExternalAction"
    # The datum's hash is emptied; tx-sync keeps the payment's (null ?? old).
    assert refunded["resultHash"] == RESULT_HASH
    # After submitResultTime (20 min) + 10 min the buyer takes the money back.
    manual.advance(27 * MINUTE)
    assert (await manual.api.resolve(bid))["onChainState"] == "RefundRequested"
    manual.advance(3 * MINUTE)
    done = await manual.api.resolve(bid)
    assert done["onChainState"] == "RefundWithdrawn"
    assert done["NextAction"]["requestedAction"] == "None"
    assert done["WithdrawnForBuyer"] == done["RequestedFunds"]


async def test_v1_authorize_refund_on_a_refund_request_is_accepted_and_never_executed(
    manual: Manual,
) -> None:
    bid = await locked_payment(manual)
    await manual.sandbox.request_refund(bid)
    answer = await authorize_refund(manual.api, bid)
    assert answer.data["NextAction"]["requestedAction"] == "AuthorizeRefundRequested"
    manual.advance(29 * MINUTE)
    still = await manual.api.resolve(bid)
    assert (still["onChainState"], still["NextAction"]["requestedAction"]) == (
        "RefundRequested",
        "AuthorizeRefundRequested",
    )
    # After submitResultTime + 10 min the buyer withdraws; the seller's pending request
    # meets a state it did not expect.
    manual.advance(3 * MINUTE)
    after = await manual.api.resolve(bid)
    assert after["onChainState"] == "RefundWithdrawn"
    assert after["NextAction"]["requestedAction"] == "WaitingForManualAction"
    assert after["NextAction"]["errorNote"] == UNEXPECTED_STATE_CHANGE_TIMEOUT


async def test_v1_buyer_cancels_a_dispute(manual: Manual) -> None:
    bid = await locked_payment(manual, **short_times(manual))
    await disputed(manual, bid)
    manual.advance(18 * MINUTE)  # the buyer's own cooldown after its refund request
    assert (await manual.sandbox.cancel_refund(bid))["onChainState"] == "ResultSubmitted"


async def test_v2_refund_from_a_refund_request_is_authorized_and_withdrawn(
    manual_v2: Manual,
) -> None:
    bid = await locked_v2(manual_v2)
    await manual_v2.sandbox.request_refund(bid)
    assert (await authorize_refund(manual_v2.api, bid)).status == 200
    manual_v2.advance(40)
    authorized = await manual_v2.api.resolve(bid)
    assert authorized["onChainState"] == "RefundAuthorized"
    assert authorized["NextAction"]["requestedAction"] == "WaitingForExternalAction"
    assert authorized["PaymentSource"]["paymentSourceType"] == V2
    # The buyer withdraws a RefundAuthorized payment without waiting for any deadline.
    manual_v2.advance(2 * MINUTE)
    done = await manual_v2.api.resolve(bid)
    assert done["onChainState"] == "RefundWithdrawn"
    assert done["NextAction"]["requestedAction"] == "None"
    with pytest.raises(SandboxConflictError, match="no UnSetRefundRequested"):
        await manual_v2.sandbox.cancel_refund(bid)


async def test_v2_buyer_authorizes_the_withdrawal_of_a_dispute(manual_v2: Manual) -> None:
    bid = await locked_v2(manual_v2)
    await disputed(manual_v2, bid)
    manual_v2.advance(18 * MINUTE)
    assert (await manual_v2.sandbox.authorize_withdrawal(bid))["onChainState"] == (
        "WithdrawAuthorized"
    )
    # Withdrawn before unlockTime (35 min): no wait once the buyer authorized it.
    manual_v2.advance(8 * MINUTE)
    done = await manual_v2.api.resolve(bid)
    assert done["onChainState"] == "Withdrawn"
    assert done["NextAction"]["requestedAction"] == "None"
    assert manual_v2.now_ms() < int(done["unlockTime"])


async def test_admins_resolve_a_dispute_only_after_the_external_dispute_unlock_time(
    manual: Manual,
) -> None:
    bid = await locked_payment(manual, **short_times(manual))
    await disputed(manual, bid)
    with pytest.raises(SandboxConflictError, match="externalDisputeUnlockTime"):
        await manual.sandbox.resolve_dispute(bid, seller=[Funds(6_000_000)])
    manual.advance(50 * MINUTE)
    split = await manual.sandbox.resolve_dispute(
        bid, seller=[Funds(6_000_000)], buyer=[Funds(4_000_000)]
    )
    assert split["onChainState"] == "DisputedWithdrawn"
    assert split["NextAction"]["requestedAction"] == "None"
    assert split["WithdrawnForSeller"] == [{"amount": "6000000", "unit": ""}]
    assert split["WithdrawnForBuyer"] == [{"amount": "4000000", "unit": ""}]


async def test_control_endpoints_drive_refunds_and_disputes(manual: Manual) -> None:
    bid = await locked_payment(manual, **short_times(manual))
    await manual.api.submit(bid)
    manual.advance(MINUTE)
    api = manual.api
    dispute = await api.call("POST", f"/sandbox/payments/{bid}/refund-request", under_api=False)
    assert dispute.data["onChainState"] == "Disputed"
    early = await api.call("POST", f"/sandbox/payments/{bid}/resolve-dispute", under_api=False)
    assert early.status == 409
    manual.advance(50 * MINUTE)
    resolved = await api.call(
        "POST",
        f"/sandbox/payments/{bid}/resolve-dispute",
        body={"seller": [{"amount": "10000000", "unit": ""}], "buyer": []},
        under_api=False,
    )
    assert resolved.data["onChainState"] == "DisputedWithdrawn"
    refund = await api.call("POST", f"/sandbox/payments/{bid}/withdraw-refund", under_api=False)
    assert refund.status == 409


async def test_seller_jobs_wait_for_the_sellers_cooldown(manual: Manual) -> None:
    start = at(manual.now_ms())
    bid = await locked_payment(
        manual,
        payByTime=iso(start + timedelta(minutes=10)),
        submitResultTime=iso(start + timedelta(minutes=60)),
    )
    await disputed(manual, bid)
    assert (await authorize_refund(manual.api, bid)).status == 200
    manual.advance(35)  # built at the next tick, confirmed 20 s later
    refunded = await manual.api.resolve(bid)
    assert refunded["onChainState"] == "RefundRequested"
    built_ms = refunded["cooldownTime"] - 17 * 60_000
    # A new result on the refund request: the job skips it until sellerCoolDownTime is
    # cooldownTime (7 min) in the past, i.e. 24 min after the refund transaction was built.
    assert (await manual.api.submit(bid, "c" * 64)).status == 200
    manual.advance((built_ms + 24 * 60_000 - manual.now_ms()) / 1000 - 1)
    assert (await manual.api.resolve(bid))["NextAction"]["requestedAction"] == (
        "SubmitResultRequested"
    )
    manual.advance(16)
    assert (await manual.api.resolve(bid))["NextAction"]["requestedAction"] == (
        "SubmitResultInitiated"
    )
