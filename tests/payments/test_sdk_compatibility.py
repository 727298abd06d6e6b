"""The masumi SDK's own Payment class against the sandbox: proof that the sandbox speaks
the language the SDK (and so the real payment service) speaks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from masumi.config import Config
from masumi.helper_functions import create_masumi_output_hash
from masumi.payment import Payment

from agentjobs.server.payments.sandbox import SandboxPaymentService, add_request_observer
from tests.payments.helpers import AGENT_IDENTIFIER, API_KEY, PURCHASER


def sdk_payment(sandbox: SandboxPaymentService) -> Payment:
    config = Config(payment_service_url=sandbox.url, payment_api_key=API_KEY)
    return Payment(
        agent_identifier=AGENT_IDENTIFIER,
        config=config,
        network="Preprod",
        identifier_from_purchaser=PURCHASER,
        input_data={"text": "hello"},
    )


async def test_the_sdk_creates_checks_and_completes_a_payment(
    sandbox: SandboxPaymentService,
) -> None:
    payment = sdk_payment(sandbox)
    created = await payment.create_payment_request()
    bid = created["data"]["blockchainIdentifier"]
    assert bid in payment.payment_ids
    assert set(created["time_values"]) == {
        "payByTime",
        "submitResultTime",
        "unlockTime",
        "externalDisputeUnlockTime",
    }
    assert created["data"]["inputHash"] == payment.input_hash

    status = await payment.check_payment_status_by_identifier(bid)
    assert status["status"] == "success" and status["data"]["onChainState"] is None
    await sandbox.lock_funds(bid)
    status = await payment.check_payment_status_by_identifier(bid)
    assert status["data"]["onChainState"] == "FundsLocked"

    completed = await payment.complete_payment(bid, "the result")
    assert completed["data"]["NextAction"]["resultHash"] == create_masumi_output_hash(
        "the result", PURCHASER
    )
    async with asyncio.timeout(5):
        await sandbox.wait_for(bid, on_chain_state="Withdrawn")

    missing = await payment.check_payment_status_by_identifier("beef" * 8)
    assert missing["status"] == "error" and missing["data"] is None


async def test_the_sdk_authorizes_a_refund(sandbox: SandboxPaymentService) -> None:
    payment = sdk_payment(sandbox)
    bid = (await payment.create_payment_request())["data"]["blockchainIdentifier"]
    await sandbox.lock_funds(bid)
    await sandbox.request_refund(bid)
    answer = await payment.authorize_refund(bid)
    assert answer["data"]["NextAction"]["requestedAction"] == "AuthorizeRefundRequested"
    async with asyncio.timeout(5):
        await sandbox.wait_for(bid, on_chain_state="RefundWithdrawn")


async def test_the_sdk_sees_our_errors_as_it_expects_them(sandbox: SandboxPaymentService) -> None:
    payment = sdk_payment(sandbox)
    payment.identifier_from_purchaser = "not hex at all!"
    with pytest.raises(ValueError, match="Bad request"):
        await payment.create_payment_request()
    payment._headers["token"] = "wrong"
    with pytest.raises(ValueError, match="Unauthorized"):
        await payment.create_payment_request()


async def test_the_gateway_sends_what_the_sdk_sends(sandbox: SandboxPaymentService) -> None:
    from agentjobs.server.payments.masumi import MasumiPaymentGateway

    bodies: list[Any] = []
    remove = add_request_observer(lambda _method, path, body: bodies.append(body))
    gateway = MasumiPaymentGateway(
        payment_service_url=sandbox.url, api_key=API_KEY, agent_identifier=AGENT_IDENTIFIER
    )
    try:
        payment = sdk_payment(sandbox)
        await payment.create_payment_request()
        assert payment.input_hash is not None
        await gateway.create_payment_request(
            identifier_from_purchaser=PURCHASER, input_hash=payment.input_hash
        )
    finally:
        remove()
        await gateway.close()
    sdk_body, our_body = bodies
    assert set(sdk_body) == set(our_body)
    for field in ("agentIdentifier", "network", "paymentType", "identifierFromPurchaser"):
        assert sdk_body[field] == our_body[field]
    assert sdk_body["inputHash"] == our_body["inputHash"]
