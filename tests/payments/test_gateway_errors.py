"""How MasumiPaymentGateway maps every failure of the payment service to a domain error,
and keeps the API key out of logs and messages."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from masumi.helper_functions import create_masumi_input_hash

from agentjobs.server.domain import (
    PaymentConfigurationError,
    PaymentNotFoundError,
    PaymentServiceConflictError,
    PaymentServiceRejectedError,
    PaymentServiceUnavailableError,
)
from agentjobs.server.payments.masumi import MasumiPaymentGateway
from agentjobs.server.payments.sandbox import SandboxPaymentService
from tests.payments.helpers import AGENT_IDENTIFIER, API_KEY, PURCHASER
from tests.support import free_port

INPUT_HASH = create_masumi_input_hash({"text": "hi"}, PURCHASER)
WRONG_KEY = "wrong-key-3a4b5c6d7e8f"


def gateway_at(url: str, *, api_key: str = API_KEY, timeout_s: float = 2.0) -> MasumiPaymentGateway:
    return MasumiPaymentGateway(
        payment_service_url=url,
        api_key=api_key,
        agent_identifier=AGENT_IDENTIFIER,
        timeout_s=timeout_s,
    )


async def create(gateway: MasumiPaymentGateway) -> str:
    terms = await gateway.create_payment_request(
        identifier_from_purchaser=PURCHASER, input_hash=INPUT_HASH
    )
    return terms.blockchain_identifier


async def test_an_unreachable_service_is_unavailable() -> None:
    gateway = gateway_at(f"http://127.0.0.1:{free_port()}/api/v1")
    try:
        with pytest.raises(PaymentServiceUnavailableError, match="could not be reached"):
            await create(gateway)
        with pytest.raises(PaymentServiceUnavailableError):
            await gateway.changes_since(None)
    finally:
        await gateway.close()


async def test_latency_above_the_timeout_is_unavailable_within_the_timeout(
    sandbox: SandboxPaymentService,
) -> None:
    sandbox.faults.latency_s = 3.0
    gateway = gateway_at(sandbox.url, timeout_s=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(PaymentServiceUnavailableError, match=r"within 0\.2s"):
            await create(gateway)
    finally:
        await gateway.close()
    assert loop.time() - started < sandbox.faults.latency_s


async def test_5xx_is_unavailable(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    sandbox.faults.error_rate = 1.0
    with pytest.raises(PaymentServiceUnavailableError, match="HTTP 500"):
        await create(gateway)
    with pytest.raises(PaymentServiceUnavailableError):
        await gateway.get_payment("beef")


async def test_a_dropped_connection_is_unavailable(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    sandbox.faults.drop_next = 1
    with pytest.raises(PaymentServiceUnavailableError):
        await create(gateway)
    sandbox.faults.drop_methods = frozenset({"GET"})
    sandbox.faults.drop_next = 2
    with pytest.raises(PaymentServiceUnavailableError):
        await gateway.changes_since(None)
    assert await create(gateway)


async def test_400_is_rejected_with_the_service_message(gateway: MasumiPaymentGateway) -> None:
    with pytest.raises(PaymentServiceRejectedError, match="Pay by time must be in the future"):
        await gateway.create_payment_request(
            identifier_from_purchaser=PURCHASER,
            input_hash=INPUT_HASH,
            pay_by_time=datetime.now(UTC) - timedelta(hours=1),
        )


async def test_a_wrong_key_is_a_configuration_error_logged_once_without_the_key(
    sandbox: SandboxPaymentService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = gateway_at(sandbox.url, api_key=WRONG_KEY)
    messages = []
    try:
        for call in (create(gateway), gateway.get_payment("beef"), gateway.changes_since(None)):
            with pytest.raises(PaymentConfigurationError) as raised:
                await call
            messages.append(str(raised.value))
    finally:
        await gateway.close()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "refused our API key" in errors[0].getMessage()
    logged = caplog.text + "\n".join(messages)
    assert WRONG_KEY not in logged and API_KEY not in logged


async def test_unknown_payment_is_not_found(gateway: MasumiPaymentGateway) -> None:
    with pytest.raises(PaymentNotFoundError):
        await gateway.get_payment("beef" * 8)
    with pytest.raises(PaymentNotFoundError):
        await gateway.submit_result("beef" * 8, "result", PURCHASER)


async def test_409_is_a_conflict(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    [bid] = sandbox.create_payments(1)
    with pytest.raises(PaymentServiceConflictError):
        await gateway.submit_result(bid, "too early", PURCHASER)
    await sandbox.lock_funds(bid)
    sandbox.faults.conflict_next = 1
    with pytest.raises(PaymentServiceConflictError):
        await gateway.submit_result(bid, "result", PURCHASER)
    with pytest.raises(PaymentServiceConflictError):
        await gateway.authorize_refund(bid)
    assert (await gateway.submit_result(bid, "result", PURCHASER)).requested_action == (
        "SubmitResultRequested"
    )


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
