"""How MasumiPaymentGateway maps every failure of the payment service to a domain error,
and keeps the API key out of logs and messages. Unreachable (no connection made, so the
request provably never arrived) is told apart from every failure after which the request
may have been taken."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from masumi.helper_functions import create_masumi_input_hash, create_masumi_output_hash

from agentjobs.server.domain import (
    DomainError,
    PaymentConfigurationError,
    PaymentKeyMismatchError,
    PaymentNotFoundError,
    PaymentServiceConflictError,
    PaymentServiceRejectedError,
    PaymentServiceUnavailableError,
    PaymentServiceUnreachableError,
)
from agentjobs.server.payments.masumi import MasumiPaymentGateway
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.services.availability import health_after
from tests.payments.helpers import (
    API_KEY,
    PURCHASER,
    SECOND_KEY,
    gateway_at,
    open_gateway,
    payment_request,
)
from tests.support import free_port

INPUT_HASH = create_masumi_input_hash({"text": "hi"}, PURCHASER)
RESULT_HASH = create_masumi_output_hash("the result", PURCHASER)
WRONG_KEY = "wrong-key-3a4b5c6d7e8f"
NOT_FOUND_OR_INVALID = "Payment not found or in invalid state"


async def create(gateway: MasumiPaymentGateway) -> str:
    terms = await gateway.create_payment_request(payment_request(input_hash=INPUT_HASH))
    return terms.blockchain_identifier


def every_call(gateway: MasumiPaymentGateway) -> list[Callable[[], Awaitable[object]]]:
    bid = "beef" * 16
    return [
        lambda: create(gateway),
        lambda: gateway.get_payment(bid),
        lambda: gateway.changes_since(None),
        lambda: gateway.submit_result(bid, RESULT_HASH),
        lambda: gateway.authorize_refund(bid),
        lambda: gateway.recover_error_state(bid, datetime.now(UTC)),
        gateway.probe,
    ]


# -- no answer -----------------------------------------------------------------
async def test_a_service_nothing_listens_for_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v1"
    async with open_gateway(url) as gateway:
        for call in every_call(gateway):
            with pytest.raises(PaymentServiceUnreachableError, match="could not be reached"):
                await call()
    # Unreachable is also unavailable, for callers that only retry.
    assert issubclass(PaymentServiceUnreachableError, PaymentServiceUnavailableError)


async def test_a_timeout_is_unavailable_not_unreachable_and_within_the_timeout(
    sandbox: SandboxPaymentService,
) -> None:
    sandbox.faults.latency_s = 3.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with open_gateway(sandbox.url, timeout_s=0.2) as gateway:
        with pytest.raises(PaymentServiceUnavailableError, match=r"within 0\.2s") as raised:
            await create(gateway)
    assert loop.time() - started < sandbox.faults.latency_s
    # The service had the request: it may still book the payment.
    assert not isinstance(raised.value, PaymentServiceUnreachableError)
    assert sandbox.request_counts[("POST", "/api/v1/payment")] == 1


async def test_a_dropped_connection_is_unavailable_not_unreachable(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    sandbox.faults.drop_next = 1
    with pytest.raises(PaymentServiceUnavailableError) as raised:
        await create(gateway)
    assert not isinstance(raised.value, PaymentServiceUnreachableError)
    assert sandbox.request_counts[("POST", "/api/v1/payment")] == 1
    sandbox.faults.drop_methods = frozenset({"GET"})
    sandbox.faults.drop_next = 2
    with pytest.raises(PaymentServiceUnavailableError) as raised:
        await gateway.changes_since(None)
    assert not isinstance(raised.value, PaymentServiceUnreachableError)
    bid = await create(gateway)
    await sandbox.lock_funds(bid)
    sandbox.faults.drop_methods = frozenset({"POST"})
    sandbox.faults.drop_next = 1
    with pytest.raises(PaymentServiceUnavailableError) as raised:
        await gateway.submit_result(bid, RESULT_HASH)
    assert not isinstance(raised.value, PaymentServiceUnreachableError)
    # This one was dropped before it was taken: the retry is the first accepted.
    retried = await gateway.submit_result(bid, RESULT_HASH)
    assert retried.requested_action == "SubmitResultRequested"
    assert sandbox.accepted_submissions(bid) == 1


async def test_5xx_is_unavailable_not_unreachable(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    sandbox.faults.error_rate = 1.0
    for call in every_call(gateway):
        with pytest.raises(PaymentServiceUnavailableError, match="HTTP 500") as raised:
            await call()
        assert not isinstance(raised.value, PaymentServiceUnreachableError)


# -- the API key ---------------------------------------------------------------
async def test_probe_succeeds_with_a_key_the_service_accepts(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    await gateway.probe()
    assert sandbox.request_counts[("GET", "/api/v1/payment/count")] == 1


async def test_a_wrong_key_is_a_configuration_error_logged_once_without_the_key(
    sandbox: SandboxPaymentService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    messages = []
    async with open_gateway(sandbox.url, api_key=WRONG_KEY) as gateway:
        for call in every_call(gateway):
            with pytest.raises(PaymentConfigurationError) as raised:
                await call()
            assert not isinstance(raised.value, PaymentKeyMismatchError)
            messages.append(str(raised.value))
    assert "invalid authentication token provided" in messages[-1]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "refused our API key" in errors[0].getMessage()
    logged = caplog.text + "\n".join(messages)
    assert WRONG_KEY not in logged and API_KEY not in logged


async def test_a_key_refused_again_after_it_worked_is_logged_again(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService, caplog: pytest.LogCaptureFixture
) -> None:
    key = sandbox.revoke_api_key(API_KEY)
    for _ in range(2):
        with pytest.raises(PaymentConfigurationError):
            await gateway.probe()
    key.revoked = False
    await gateway.probe()
    sandbox.revoke_api_key(API_KEY)
    with pytest.raises(PaymentConfigurationError):
        await gateway.probe()
    refused = [r for r in caplog.records if "refused our API key" in r.getMessage()]
    assert len(refused) == 2  # once per outage, not once per call nor once per process


async def test_a_revoked_key_fails_the_probe(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    await gateway.probe()
    sandbox.revoke_api_key(API_KEY)
    with pytest.raises(PaymentConfigurationError, match="API key is revoked"):
        await gateway.probe()


async def failed_after_submission(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> str:
    """A payment waiting for a person after its submission failed (the chain job never
    confirms: settle_after is an hour)."""
    sandbox.settle_after = 3600
    bid = await create(gateway)
    await sandbox.lock_funds(bid)
    await gateway.submit_result(bid, RESULT_HASH)
    await sandbox.fail_next_action(bid, "tx timed out")
    return bid


async def test_seller_actions_on_a_payment_of_another_key_are_a_key_mismatch(
    gateway: MasumiPaymentGateway,
    sandbox: SandboxPaymentService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.add_api_key(SECOND_KEY)
    locked = await create(gateway)
    await sandbox.lock_funds(locked)
    refund_requested = await create(gateway)
    await sandbox.lock_funds(refund_requested)
    await sandbox.request_refund(refund_requested)
    failed = await failed_after_submission(gateway, sandbox)
    failed_at = (await gateway.get_payment(failed)).updated_at
    assert failed_at is not None

    observed: list[DomainError | None] = []
    async with open_gateway(sandbox.url, api_key=SECOND_KEY, observer=observed.append) as rotated:
        refusals: list[PaymentKeyMismatchError] = []
        for call in (
            lambda: rotated.submit_result(locked, RESULT_HASH),
            lambda: rotated.authorize_refund(refund_requested),
            lambda: rotated.recover_error_state(failed, failed_at),
        ):
            with pytest.raises(PaymentKeyMismatchError) as raised:
                await call()
            refusals.append(raised.value)
        # The key itself works: a 403 about one payment says nothing about the service.
        await rotated.probe()
    for refusal in refusals:
        assert "created with another API key" in refusal.message
        assert refusal.reason == "PAYMENT_CREATED_WITH_ANOTHER_KEY"
        for key in (API_KEY, SECOND_KEY):
            assert key not in str(refusal) and key not in repr(refusal)
    assert "/payment/submit-result" in refusals[0].message
    assert "You are not authorized to submit results for this payment" in refusals[0].message
    for key in (API_KEY, SECOND_KEY):
        assert key not in caplog.text
    # Nothing was changed by the refused calls.
    report = sandbox.requests_report()["payments"]
    assert [e["status"] for e in report[locked]["rejectedSubmitResults"]] == [403]
    assert [e["status"] for e in report[refund_requested]["authorizeRefunds"]] == [403]
    assert [e["status"] for e in report[failed]["errorStateRecoveries"]] == [403]
    assert sandbox.payment(locked)["NextAction"]["requestedAction"] == "WaitingForExternalAction"
    # Availability is told about one payment's answer, not about a refused key.
    assert [type(error) for error in observed] == [PaymentKeyMismatchError] * 3 + [type(None)]
    assert all(health_after(error).usable for error in observed)
    assert not [r for r in caplog.records if "refused our API key" in r.getMessage()]


async def test_a_service_without_the_diff_endpoint_is_misconfigured(
    sandbox: SandboxPaymentService,
) -> None:
    sandbox.diff_supported = False  # as payment services older than the diff answer
    observed: list[DomainError | None] = []
    async with open_gateway(sandbox.url, observer=observed.append) as gateway:
        with pytest.raises(PaymentConfigurationError) as raised:
            await gateway.changes_since(None)
        # Other 404s are still about a payment.
        with pytest.raises(PaymentNotFoundError):
            await gateway.get_payment("beef" * 16)
    assert "GET /payment/diff" in raised.value.message
    assert "0.28.0" in raised.value.message
    assert "Can not GET /api/v1/payment/diff" in raised.value.message
    # No payment would ever be seen: availability must not say "usable".
    assert not health_after(observed[0]).usable
    assert health_after(observed[1]).usable


# -- answers about one payment -------------------------------------------------
async def test_400_is_rejected_with_the_service_message(gateway: MasumiPaymentGateway) -> None:
    with pytest.raises(PaymentServiceRejectedError) as raised:
        await gateway.create_payment_request(
            payment_request(input_hash="abc", identifier_from_purchaser=PURCHASER)
        )
    assert raised.value.message == "Input hash is not a valid hex string"


async def test_unknown_or_unpaid_payments_are_not_found(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    with pytest.raises(PaymentNotFoundError, match="Payment not found"):
        await gateway.get_payment("beef" * 16)
    with pytest.raises(PaymentNotFoundError) as raised:
        await gateway.submit_result("beef" * 16, RESULT_HASH)
    assert raised.value.message == NOT_FOUND_OR_INVALID
    # Too early (the buyer has not paid) is the same answer upstream.
    unpaid = await create(gateway)
    with pytest.raises(PaymentNotFoundError) as raised:
        await gateway.submit_result(unpaid, RESULT_HASH)
    assert raised.value.message == NOT_FOUND_OR_INVALID
    assert sandbox.accepted_submissions(unpaid) == 0


async def test_409_is_a_conflict_and_a_retry_is_taken(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    sandbox.settle_after = 3600
    bid = await create(gateway)
    await sandbox.lock_funds(bid)
    sandbox.faults.conflict_next = 1
    with pytest.raises(PaymentServiceConflictError, match="changed concurrently"):
        await gateway.submit_result(bid, RESULT_HASH)
    assert (await gateway.submit_result(bid, RESULT_HASH)).requested_action == (
        "SubmitResultRequested"
    )

    refund = await create(gateway)
    await sandbox.lock_funds(refund)
    await sandbox.request_refund(refund)
    sandbox.faults.conflict_next = 1
    with pytest.raises(PaymentServiceConflictError):
        await gateway.authorize_refund(refund)
    assert (await gateway.authorize_refund(refund)).requested_action == ("AuthorizeRefundRequested")

    failed = await failed_after_submission(gateway, sandbox)
    failed_at = (await gateway.get_payment(failed)).updated_at
    assert failed_at is not None
    sandbox.faults.conflict_next = 1
    with pytest.raises(PaymentServiceConflictError):
        await gateway.recover_error_state(failed, failed_at)
    assert (await gateway.recover_error_state(failed, failed_at)).requested_action == (
        "SubmitResultRequested"
    )


# -- answers that are not the service's ---------------------------------------
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"status": "success", "data": {}}', "no valid blockchainIdentifier"),
        ('{"status": "success"}', "without the data"),
        ("<html>gateway error</html>", "not JSON"),
        ('{"status": "success", "data": [1]}', "not an object"),
    ],
)
async def test_a_malformed_success_answer_is_unavailable(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService, body: str, problem: str
) -> None:
    sandbox.faults.malformed_body = body
    sandbox.faults.malformed_next = 3
    with pytest.raises(PaymentServiceUnavailableError, match=problem):
        await create(gateway)
    with pytest.raises(PaymentServiceUnavailableError):
        await gateway.get_payment("beef")
    with pytest.raises(PaymentServiceUnavailableError):
        await gateway.changes_since(None)


async def test_a_payment_without_times_is_unavailable(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    payment = sandbox.payment(sandbox.create_payments(1)[0])
    payment["payByTime"] = "soon"
    sandbox.faults.malformed_body = json.dumps({"status": "success", "data": payment})
    sandbox.faults.malformed_next = 1
    with pytest.raises(PaymentServiceUnavailableError, match="no valid payByTime"):
        await create(gateway)


def test_a_bad_service_url_is_refused_at_once() -> None:
    for url in ("localhost:3001/api/v1", "ftp://host/api/v1", ""):
        with pytest.raises(PaymentConfigurationError, match="PAYMENT_SERVICE_URL"):
            gateway_at(url)
