"""MasumiPaymentGateway against the sandbox over real HTTP: what it sends, what it reads
back, and how it pages through the diff."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from masumi.helper_functions import create_masumi_input_hash, create_masumi_output_hash

from agentjobs.server.domain import Amount, InvalidArgumentError, PaymentConfigurationError
from agentjobs.server.payments.masumi import MasumiPaymentGateway
from agentjobs.server.payments.sandbox import SandboxPaymentService, add_request_observer
from agentjobs.server.payments.sandbox.views import SellerSide
from agentjobs.server.repository.base import Watermark
from tests.payments.helpers import AGENT_IDENTIFIER, API_KEY, PURCHASER, epoch_ms

ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
EMPTY_INPUT_HASH = create_masumi_input_hash({}, PURCHASER)


@pytest.fixture
def sent() -> Iterator[list[tuple[str, str, Any]]]:
    """Every request body the sandbox receives during the test."""
    bodies: list[tuple[str, str, Any]] = []
    remove = add_request_observer(lambda method, path, body: bodies.append((method, path, body)))
    try:
        yield bodies
    finally:
        remove()


def gateway_to(sandbox: SandboxPaymentService, **options: Any) -> MasumiPaymentGateway:
    settings: dict[str, Any] = {
        "payment_service_url": sandbox.url,
        "api_key": API_KEY,
        "agent_identifier": AGENT_IDENTIFIER,
        "timeout_s": 2.0,
    }
    settings.update(options)
    return MasumiPaymentGateway(**settings)


async def test_create_sends_the_sdk_body_with_the_hash_of_empty_input(
    gateway: MasumiPaymentGateway, sent: list[tuple[str, str, Any]]
) -> None:
    now = datetime.now(UTC)
    before = now.replace(microsecond=now.microsecond // 1000 * 1000)  # sent in whole ms
    await gateway.create_payment_request(
        identifier_from_purchaser=PURCHASER, input_hash=EMPTY_INPUT_HASH
    )
    [(method, path, body)] = sent
    assert (method, path) == ("POST", "/payment")
    assert set(body) == {
        "agentIdentifier",
        "network",
        "paymentType",
        "payByTime",
        "submitResultTime",
        "identifierFromPurchaser",
        "inputHash",
    }
    assert body["inputHash"] == EMPTY_INPUT_HASH
    assert (body["agentIdentifier"], body["network"], body["paymentType"]) == (
        AGENT_IDENTIFIER,
        "Preprod",
        "Web3CardanoV1",
    )
    assert body["identifierFromPurchaser"] == PURCHASER
    assert ISO_MS.fullmatch(body["payByTime"]) and ISO_MS.fullmatch(body["submitResultTime"])
    pay_by = datetime.fromisoformat(body["payByTime"])
    submit = datetime.fromisoformat(body["submitResultTime"])
    assert timedelta(hours=12) <= pay_by - before < timedelta(hours=12, minutes=1)
    assert timedelta(hours=24) <= submit - before < timedelta(hours=24, minutes=1)


async def test_create_reads_the_terms_exactly(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    pay_by = datetime.now(UTC) + timedelta(hours=3, milliseconds=777)
    submit = pay_by + timedelta(hours=4, milliseconds=1)
    terms = await gateway.create_payment_request(
        identifier_from_purchaser=PURCHASER,
        input_hash=EMPTY_INPUT_HASH,
        pay_by_time=pay_by,
        submit_result_time=submit,
    )
    shown = sandbox.payment(terms.blockchain_identifier)
    assert terms.pay_by_time == int(shown["payByTime"]) == epoch_ms(pay_by)
    assert terms.submit_result_time == int(shown["submitResultTime"]) == epoch_ms(submit)
    assert terms.unlock_time == int(shown["unlockTime"])
    assert terms.external_dispute_unlock_time == int(shown["externalDisputeUnlockTime"])
    assert terms.seller_vkey == shown["SmartContractWallet"]["walletVkey"]
    assert terms.agent_identifier == AGENT_IDENTIFIER
    assert terms.amounts == (Amount(amount=10_000_000, unit=""),)


async def test_an_invalid_identifier_never_reaches_the_service(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    for identifier in ("", "xyz", "aabbccddeeff001", "aa" * 14):
        with pytest.raises(InvalidArgumentError) as raised:
            await gateway.create_payment_request(
                identifier_from_purchaser=identifier, input_hash=EMPTY_INPUT_HASH
            )
        assert [v.field for v in raised.value.violations] == ["identifier_from_purchaser"]
    with pytest.raises(InvalidArgumentError):
        await gateway.create_payment_request(identifier_from_purchaser=PURCHASER, input_hash="")
    assert sum(sandbox.request_counts.values()) == 0


async def test_the_wallet_vkey_wins_over_a_different_seller_vkey_setting(
    sandbox: SandboxPaymentService, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = gateway_to(sandbox, seller_vkey_override="f" * 56)
    try:
        for _ in range(2):
            terms = await gateway.create_payment_request(
                identifier_from_purchaser=PURCHASER, input_hash=EMPTY_INPUT_HASH
            )
            assert terms.seller_vkey == sandbox.seller.wallet_vkey
    finally:
        await gateway.close()
    warnings = [r for r in caplog.records if "SELLER_VKEY differs" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


async def test_the_seller_vkey_setting_stands_in_when_the_service_names_no_wallet() -> None:
    sandbox = SandboxPaymentService(api_key=API_KEY, seller=SellerSide(wallet_vkey=None))
    await sandbox.start("127.0.0.1", 0)
    with_setting = gateway_to(sandbox, seller_vkey_override="e" * 56)
    without = gateway_to(sandbox)
    try:
        terms = await with_setting.create_payment_request(
            identifier_from_purchaser=PURCHASER, input_hash=EMPTY_INPUT_HASH
        )
        assert terms.seller_vkey == "e" * 56
        with pytest.raises(PaymentConfigurationError, match="SELLER_VKEY"):
            await without.create_payment_request(
                identifier_from_purchaser=PURCHASER, input_hash=EMPTY_INPUT_HASH
            )
    finally:
        await with_setting.close()
        await without.close()
        await sandbox.stop()


async def test_get_payment_follows_the_payment(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    terms = await gateway.create_payment_request(
        identifier_from_purchaser=PURCHASER, input_hash=EMPTY_INPUT_HASH
    )
    bid = terms.blockchain_identifier
    unpaid = await gateway.get_payment(bid)
    assert (unpaid.on_chain_state, unpaid.requested_action) == (None, "WaitingForExternalAction")
    assert unpaid.payment_id == sandbox.payment(bid)["id"]
    await sandbox.lock_funds(bid)
    locked = await gateway.get_payment(bid)
    assert locked.on_chain_state == "FundsLocked"
    assert locked.changed_at is not None and unpaid.changed_at is not None
    assert locked.changed_at > unpaid.changed_at


async def test_submit_result_sends_the_mip004_output_hash_and_settles(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    [bid] = sandbox.create_payments(1)
    await sandbox.lock_funds(bid)
    result = 'Ünïcode "quoted"\nline two'
    state = await gateway.submit_result(bid, result, PURCHASER)
    expected = create_masumi_output_hash(result, PURCHASER)
    assert (state.requested_action, state.next_action_result_hash) == (
        "SubmitResultRequested",
        expected,
    )
    async with asyncio.timeout(5):
        await sandbox.wait_for(bid, on_chain_state="Withdrawn")
    settled = await gateway.get_payment(bid)
    assert settled.result_hash == expected
    assert sandbox.accepted_submissions(bid) == 1


async def test_authorize_refund(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    [bid] = sandbox.create_payments(1)
    await sandbox.lock_funds(bid)
    await sandbox.request_refund(bid)
    state = await gateway.authorize_refund(bid)
    assert state.requested_action == "AuthorizeRefundRequested"
    async with asyncio.timeout(5):
        await sandbox.wait_for(bid, on_chain_state="RefundWithdrawn")


async def test_changes_since_pages_and_deduplicates_the_cursor_row(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    created = sandbox.create_payments(7, same_instant=True)
    seen: list[str] = []
    watermark: Watermark | None = None
    calls = 0
    while True:
        changes = await gateway.changes_since(watermark, limit=3)
        calls += 1
        seen.extend(p.blockchain_identifier for p in changes.payments)
        watermark = changes.watermark
        if not changes.more:
            break
    assert sorted(seen) == sorted(created) and len(seen) == 7
    # 3 new, then 2 new per page (the cursor row comes again), then the last row alone.
    assert calls == 4
    assert watermark is not None and watermark.cursor_id is not None

    await sandbox.lock_funds(created[3])
    changed = await gateway.changes_since(watermark, limit=3)
    assert [(p.blockchain_identifier, p.on_chain_state) for p in changed.payments] == [
        (created[3], "FundsLocked")
    ]
    assert changed.watermark != watermark and not changed.more
    quiet = await gateway.changes_since(changed.watermark, limit=3)
    assert (quiet.payments, quiet.watermark, quiet.more) == ([], changed.watermark, False)


async def test_ten_thousand_payments_then_one_request_per_quiet_poll(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    created = set(sandbox.create_payments(10_000, same_instant=True))
    seen: set[str] = set()
    watermark: Watermark | None = None
    while True:
        changes = await gateway.changes_since(watermark)
        seen.update(p.blockchain_identifier for p in changes.payments)
        watermark = changes.watermark
        if not changes.more:
            break
    assert seen == created
    assert sandbox.request_counts[("GET", "/api/v1/payment/diff")] == 102

    before = sandbox.request_counts[("GET", "/api/v1/payment/diff")]
    quiet = await gateway.changes_since(watermark)
    assert (quiet.payments, quiet.more) == ([], False)
    assert sandbox.request_counts[("GET", "/api/v1/payment/diff")] - before == 1


async def test_changes_since_refuses_a_page_too_small_to_move_on(
    gateway: MasumiPaymentGateway,
) -> None:
    for limit in (1, 101):
        with pytest.raises(ValueError, match="limit"):
            await gateway.changes_since(None, limit=limit)


async def test_a_payment_asked_for_here_waits_for_its_job_to_be_followed(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    [earlier] = sandbox.create_payments(1)
    terms = await gateway.create_payment_request(
        identifier_from_purchaser=PURCHASER, input_hash=EMPTY_INPUT_HASH
    )
    bid = terms.blockchain_identifier
    await sandbox.lock_funds(bid)  # faster than any job could be stored
    [later] = sandbox.create_payments(1)

    held = await gateway.changes_since(None)
    assert [p.blockchain_identifier for p in held.payments] == [earlier]
    assert not held.more
    assert (await gateway.changes_since(held.watermark)).payments == []

    gateway.follow([bid])
    released = await gateway.changes_since(held.watermark)
    assert [(p.blockchain_identifier, p.on_chain_state) for p in released.payments] == [
        (bid, "FundsLocked"),
        (later, None),
    ]


async def test_the_hold_back_ends_when_no_job_is_ever_followed(
    sandbox: SandboxPaymentService,
) -> None:
    gateway = gateway_to(sandbox, hold_back_s=0)
    try:
        terms = await gateway.create_payment_request(
            identifier_from_purchaser=PURCHASER, input_hash=EMPTY_INPUT_HASH
        )
        changes = await gateway.changes_since(None)
        assert [p.blockchain_identifier for p in changes.payments] == [terms.blockchain_identifier]
    finally:
        await gateway.close()
