"""Fault injection: latency, 5xx, dropped connections, 409 on submit-result, malformed
answers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from agentjobs.server.payments.sandbox import SandboxPaymentService
from tests.payments.helpers import RawApi, payment_body


async def test_latency_is_added_to_every_answer(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.faults.latency_s = 0.2
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await raw.call("GET", "/payment/count", params={"network": "Preprod"})
    assert answer.data == {"total": 0}
    assert loop.time() - started >= 0.2


async def test_latency_above_a_client_timeout_is_a_timeout(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.faults.latency_s = 5.0
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await raw.call("POST", "/payment", body=payment_body())


async def test_error_rate_answers_500(raw: RawApi, sandbox: SandboxPaymentService) -> None:
    sandbox.faults.error_rate = 1.0
    for _ in range(3):
        answer = await raw.call("POST", "/payment", body=payment_body())
        assert answer.status == 500
        assert answer.body["status"] == "error"
    assert len(sandbox.ledger) == 0

    sandbox.faults.error_rate = 0.5
    sandbox.faults.rng.seed(7)
    statuses = [
        (await raw.call("GET", "/payment/count", params={"network": "Preprod"})).status
        for _ in range(40)
    ]
    assert set(statuses) == {200, 500}


async def test_drop_next_closes_connections_without_an_answer(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.faults.drop_next = 2
    for _ in range(2):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await raw.call("POST", "/payment", body=payment_body())
    assert sandbox.faults.drop_next == 0
    assert len(sandbox.ledger) == 0
    assert (await raw.call("POST", "/payment", body=payment_body())).status == 200
    assert sandbox.request_counts[("POST", "/api/v1/payment")] == 3


async def test_gets_are_dropped_only_when_asked(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.faults.drop_next = 2
    ok = await raw.call("GET", "/payment/count", params={"network": "Preprod"})
    assert ok.status == 200 and sandbox.faults.drop_next == 2

    sandbox.faults.drop_methods = frozenset({"GET", "POST"})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        # aiohttp retries an idempotent request once: both tries are dropped.
        await raw.call("GET", "/payment/count", params={"network": "Preprod"})
    assert sandbox.faults.drop_next == 0


async def test_conflict_next_counts_down_on_submit_result(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    [bid] = sandbox.create_payments(1)
    await sandbox.lock_funds(bid)
    sandbox.faults.conflict_next = 3
    for left in (2, 1, 0):
        answer = await raw.submit(bid)
        assert answer.status == 409
        assert sandbox.faults.conflict_next == left
    assert (await raw.submit(bid)).status == 200
    assert sandbox.accepted_submissions(bid) == 1


async def test_malformed_next_answers_200_with_the_malformed_body(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.faults.malformed_next = 1
    answer = await raw.call("POST", "/payment", body=payment_body())
    assert (answer.status, answer.body) == (200, {"status": "success", "data": {}})
    assert (await raw.call("POST", "/payment", body=payment_body())).data["blockchainIdentifier"]


async def test_reset_clears_every_fault(sandbox: SandboxPaymentService) -> None:
    faults = sandbox.faults
    faults.latency_s, faults.error_rate, faults.drop_next = 1.0, 1.0, 1
    faults.conflict_next = faults.malformed_next = 1
    faults.reset()
    assert (faults.latency_s, faults.error_rate, faults.drop_next) == (0, 0, 0)
    assert (faults.conflict_next, faults.malformed_next) == (0, 0)
