"""Against a payment service without GET /payment/diff (older releases) the gateway
follows each open payment with resolve-blockchain-identifier instead."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agentjobs.server.payments.masumi import MasumiPaymentGateway
from agentjobs.server.payments.sandbox import SandboxPaymentService
from tests.payments.helpers import RawApi

RESOLVE = ("POST", "/api/v1/payment/resolve-blockchain-identifier")
DIFF = ("GET", "/api/v1/payment/diff")


async def test_falls_back_to_one_lookup_per_followed_payment(
    gateway: MasumiPaymentGateway,
    sandbox: SandboxPaymentService,
    raw: RawApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox.diff_supported = False
    first, second = sandbox.create_payments(2)
    gateway.follow([first, second])

    seen = await gateway.changes_since(None)
    assert {p.blockchain_identifier for p in seen.payments} == {first, second}
    assert (seen.watermark, seen.more) == (None, False)
    assert not gateway.diff_supported
    assert sum("no GET /payment/diff" in r.getMessage() for r in caplog.records) == 1

    quiet = await gateway.changes_since(None)
    assert quiet.payments == []
    assert sandbox.request_counts[DIFF] == 1, "the diff endpoint is not asked again"

    await sandbox.lock_funds(first)
    locked = await gateway.changes_since(None)
    assert [(p.blockchain_identifier, p.on_chain_state) for p in locked.payments] == [
        (first, "FundsLocked")
    ]

    await raw.submit(first)
    async with asyncio.timeout(5):
        await sandbox.wait_for(first, on_chain_state="Withdrawn")
    settled = await gateway.changes_since(None)
    assert [(p.blockchain_identifier, p.on_chain_state) for p in settled.payments] == [
        (first, "Withdrawn")
    ]
    before = sandbox.request_counts[RESOLVE]
    await gateway.changes_since(None)
    assert sandbox.request_counts[RESOLVE] - before == 1, "a settled payment is not followed"


async def test_unknown_payments_are_dropped_and_failures_retried(
    gateway: MasumiPaymentGateway,
    sandbox: SandboxPaymentService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    sandbox.diff_supported = False
    [known] = sandbox.create_payments(1)
    gateway.follow(["beef" * 8, known])
    changes = await gateway.changes_since(None)
    assert [p.blockchain_identifier for p in changes.payments] == [known]
    assert any("unknown to the payment service" in r.getMessage() for r in caplog.records)

    sandbox.faults.error_rate = 1.0
    with pytest.raises(Exception, match="HTTP 500"):
        await gateway.changes_since(None)
    sandbox.faults.error_rate = 0.0
    await sandbox.lock_funds(known)
    again = await gateway.changes_since(None)
    assert [p.on_chain_state for p in again.payments] == ["FundsLocked"]
    before = sandbox.request_counts[RESOLVE]
    await gateway.changes_since(None)
    assert sandbox.request_counts[RESOLVE] - before == 1


async def test_payments_the_diff_saw_settle_are_not_followed_any_more(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService, raw: RawApi
) -> None:
    settled, still_open = sandbox.create_payments(2)
    gateway.follow([settled, still_open])
    await sandbox.lock_funds(settled)
    await raw.submit(settled)
    async with asyncio.timeout(5):
        await sandbox.wait_for(settled, on_chain_state="Withdrawn")
    await gateway.changes_since(None)

    sandbox.diff_supported = False  # e.g. the service was rolled back
    changes = await gateway.changes_since(None)
    assert [p.blockchain_identifier for p in changes.payments] == [still_open]
    assert sandbox.request_counts[RESOLVE] == 1
