"""The masumi SDK's own Payment class against the sandbox: proof that the sandbox speaks
the language the SDK (and so the real payment service) speaks. Payments are followed on
a ManualClock through upstream's real windows (withdrawal at unlockTime + 10 minutes; on
V1 a refund executes only from Disputed)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from masumi.config import Config
from masumi.helper_functions import create_masumi_output_hash
from masumi.payment import Payment

from agentjobs.server.payments.sandbox import SandboxPaymentService
from tests.payments.conftest import Manual, Sent
from tests.payments.helpers import (
    AGENT_IDENTIFIER,
    API_KEY,
    MINUTE,
    PURCHASER,
    open_gateway,
    payment_request,
)

ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
CHAIN_MARGIN_MS = 10 * 60_000


def sdk_payment(url: str) -> Payment:
    config = Config(payment_service_url=url, payment_api_key=API_KEY)
    return Payment(
        agent_identifier=AGENT_IDENTIFIER,
        config=config,
        network="Preprod",
        identifier_from_purchaser=PURCHASER,
        input_data={"text": "hello"},
    )


async def state_of(payment: Payment, bid: str) -> tuple[Any, Any]:
    status = await payment.check_payment_status_by_identifier(bid)
    assert status["status"] == "success", status
    data = status["data"]
    return data["onChainState"], data["NextAction"]["requestedAction"]


def advance_to(manual: Manual, moment_ms: int) -> None:
    manual.advance((moment_ms - manual.now_ms()) / 1000)


async def test_the_sdk_creates_checks_and_completes_a_payment(manual: Manual) -> None:
    payment = sdk_payment(manual.sandbox.url)
    created = await payment.create_payment_request()
    bid = created["data"]["blockchainIdentifier"]
    assert bid in payment.payment_ids
    times = created["time_values"]
    assert set(times) == {
        "payByTime",
        "submitResultTime",
        "unlockTime",
        "externalDisputeUnlockTime",
    }
    assert created["data"]["inputHash"] == payment.input_hash
    assert created["data"]["PaymentSource"]["paymentSourceType"] == "Web3CardanoV1"

    assert await state_of(payment, bid) == (None, "WaitingForExternalAction")
    await manual.sandbox.lock_funds(bid)
    assert await state_of(payment, bid) == ("FundsLocked", "WaitingForExternalAction")

    completed = await payment.complete_payment(bid, "the result")
    digest = create_masumi_output_hash("the result", PURCHASER)
    assert completed["data"]["NextAction"]["requestedAction"] == "SubmitResultRequested"
    assert completed["data"]["NextAction"]["resultHash"] == digest
    manual.advance(15)
    assert await state_of(payment, bid) == ("FundsLocked", "SubmitResultInitiated")
    manual.advance(20)
    assert await state_of(payment, bid) == ("ResultSubmitted", "WaitingForExternalAction")

    # Withdrawn only once unlockTime + 10 minutes have passed.
    advance_to(manual, int(times["unlockTime"]) + CHAIN_MARGIN_MS - 1000)
    assert (await state_of(payment, bid))[0] == "ResultSubmitted"
    manual.advance(2 * MINUTE)
    assert await state_of(payment, bid) == ("Withdrawn", "None")
    status = await payment.check_payment_status_by_identifier(bid)
    assert status["data"]["resultHash"] == digest
    assert status["data"]["WithdrawnForSeller"] == status["data"]["RequestedFunds"]

    missing = await payment.check_payment_status_by_identifier("beef" * 8)
    assert missing["status"] == "error" and missing["data"] is None


async def test_the_sdk_authorizes_a_v1_refund_from_a_dispute(manual: Manual) -> None:
    payment = sdk_payment(manual.sandbox.url)
    created = await payment.create_payment_request()
    bid = created["data"]["blockchainIdentifier"]
    await manual.sandbox.lock_funds(bid)
    # V1 authorizes a refund only in a dispute: not while the funds are just locked.
    with pytest.raises(ValueError, match="Payment not found or in invalid state"):
        await payment.authorize_refund(bid)

    await payment.complete_payment(bid, "the result")
    manual.advance(35)
    assert await state_of(payment, bid) == ("ResultSubmitted", "WaitingForExternalAction")
    await manual.sandbox.request_refund(bid)
    assert await state_of(payment, bid) == ("Disputed", "WaitingForExternalAction")

    answer = await payment.authorize_refund(bid)
    assert answer["data"]["NextAction"]["requestedAction"] == "AuthorizeRefundRequested"
    manual.advance(15)
    assert await state_of(payment, bid) == ("Disputed", "AuthorizeRefundInitiated")
    manual.advance(20)
    # Executed: the datum is back at RefundRequested, for the buyer to withdraw.
    assert await state_of(payment, bid) == ("RefundRequested", "WaitingForExternalAction")
    refundable_ms = int(created["time_values"]["submitResultTime"]) + CHAIN_MARGIN_MS
    advance_to(manual, refundable_ms - 1000)
    assert (await state_of(payment, bid))[0] == "RefundRequested"
    manual.advance(2 * MINUTE)
    assert await state_of(payment, bid) == ("RefundWithdrawn", "None")
    status = await payment.check_payment_status_by_identifier(bid)
    assert status["data"]["WithdrawnForBuyer"] == status["data"]["RequestedFunds"]


async def test_the_sdk_sees_our_errors_as_it_expects_them(sandbox: SandboxPaymentService) -> None:
    payment = sdk_payment(sandbox.url)
    payment.identifier_from_purchaser = "not hex at all!"
    with pytest.raises(ValueError, match="Bad request"):
        await payment.create_payment_request()
    payment._headers["token"] = "wrong"
    with pytest.raises(ValueError, match="Unauthorized"):
        await payment.create_payment_request()


async def test_the_gateway_sends_what_the_sdk_sends(manual: Manual, sent: Sent) -> None:
    payment = sdk_payment(manual.sandbox.url)
    sdk_created = (await payment.create_payment_request(metadata="job-1"))["data"]
    assert payment.input_hash is not None
    async with open_gateway(manual.sandbox.url) as gateway:
        terms = await gateway.create_payment_request(
            payment_request(manual.now_ms(), input_hash=payment.input_hash, metadata="job-1")
        )
    sdk_body, our_body = [body for method, path, body in sent if path == "/payment"]
    # The SDK names the source `paymentType`, which upstream 0.28.0 drops as unknown (and
    # then takes the registry's source); we send the field upstream reads, with the same
    # value.
    assert sdk_body["paymentType"] == our_body["paymentSourceType"] == "Web3CardanoV1"
    assert set(sdk_body) - {"paymentType"} == set(our_body) - {"paymentSourceType"}
    for field in ("agentIdentifier", "network", "identifierFromPurchaser", "inputHash", "metadata"):
        assert sdk_body[field] == our_body[field]
    for field in ("payByTime", "submitResultTime"):
        assert ISO_MS.fullmatch(sdk_body[field]) and ISO_MS.fullmatch(our_body[field])
    ours = manual.sandbox.payment(terms.blockchain_identifier)
    for field in ("pricingType", "RequestedFunds", "inputHash", "metadata", "agentIdentifier"):
        assert sdk_created[field] == ours[field]
    assert sdk_created["PaymentSource"] == ours["PaymentSource"]
    # Both ask for 12 and 24 hours from now.
    for field in ("payByTime", "submitResultTime"):
        assert abs(int(ours[field]) - int(sdk_created[field])) < 60_000
