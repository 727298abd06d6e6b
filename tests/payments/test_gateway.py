"""MasumiPaymentGateway against the sandbox over real HTTP: what it sends, what it reads
back, how it pages through the diff, and the seller's requests followed on a ManualClock
through upstream's real windows."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from masumi.helper_functions import create_masumi_input_hash, create_masumi_output_hash

from agentjobs.server.domain import (
    Amount,
    InvalidArgumentError,
    PaymentConfigurationError,
    PaymentNotFoundError,
    PaymentServiceRejectedError,
)
from agentjobs.server.payments.gateway import PaymentSourceType
from agentjobs.server.payments.masumi import MasumiPaymentGateway
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.payments.sandbox.views import SellerSide
from agentjobs.server.repository.base import Watermark
from tests.payments.conftest import Manual, Sent
from tests.payments.helpers import (
    AGENT_IDENTIFIER,
    API_KEY,
    INPUT_HASH,
    MINUTE,
    PURCHASER,
    epoch_ms,
    open_gateway,
    payment_request,
)

ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
EMPTY_INPUT_HASH = create_masumi_input_hash({}, PURCHASER)
RESULT = 'Ünïcode "quoted"\nline two'
SHORT = {"pay_by": timedelta(minutes=10), "submit": timedelta(minutes=20)}
STALE = "Payment request not found with the provided blockchain identifier or it was changed"


def whole_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def posted(sent: Sent, path: str) -> list[dict[str, object]]:
    return [body for method, at, body in sent if (method, at) == ("POST", path)]


# -- POST /payment -------------------------------------------------------------
async def test_a_v1_request_sends_the_v1_source_and_the_hash_of_empty_input(
    gateway: MasumiPaymentGateway, sent: Sent
) -> None:
    pay_by = datetime.now(UTC) + timedelta(hours=12, microseconds=123_456)
    submit = pay_by + timedelta(hours=12, microseconds=999)
    await gateway.create_payment_request(
        payment_request(input_hash=EMPTY_INPUT_HASH, pay_by_time=pay_by, submit_result_time=submit)
    )
    [body] = posted(sent, "/payment")
    assert len(sent) == 1
    # No supportedPaymentSourceIndex (V1 forbids it), no RequestedFunds (fixed pricing
    # forbids it), no metadata when none is given.
    assert set(body) == {
        "agentIdentifier",
        "network",
        "paymentSourceType",
        "payByTime",
        "submitResultTime",
        "identifierFromPurchaser",
        "inputHash",
    }
    assert (body["agentIdentifier"], body["network"], body["paymentSourceType"]) == (
        AGENT_IDENTIFIER,
        "Preprod",
        "Web3CardanoV1",
    )
    assert (body["identifierFromPurchaser"], body["inputHash"]) == (PURCHASER, EMPTY_INPUT_HASH)
    for name, moment in (("payByTime", pay_by), ("submitResultTime", submit)):
        text = body[name]
        assert isinstance(text, str) and ISO_MS.fullmatch(text), text
        assert datetime.fromisoformat(text) == whole_ms(moment)


async def test_times_in_any_zone_are_sent_as_utc_with_z(
    gateway: MasumiPaymentGateway, sent: Sent
) -> None:
    # Upstream refuses every offset, +00:00 included: only ...Z is accepted.
    plus_two = timezone(timedelta(hours=2))
    pay_by = datetime.now(plus_two) + timedelta(hours=1)
    naive_submit = (datetime.now(UTC) + timedelta(hours=3)).replace(tzinfo=None)
    terms = await gateway.create_payment_request(
        payment_request(pay_by_time=pay_by, submit_result_time=naive_submit)
    )
    [body] = posted(sent, "/payment")
    assert isinstance(body["payByTime"], str) and body["payByTime"].endswith("Z")
    assert datetime.fromisoformat(body["payByTime"]) == whole_ms(pay_by)
    assert datetime.fromisoformat(str(body["submitResultTime"])) == whole_ms(
        naive_submit.replace(tzinfo=UTC)
    )
    assert terms.pay_by_time == epoch_ms(pay_by)


async def test_metadata_is_sent_and_kept_by_the_service(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService, sent: Sent
) -> None:
    terms = await gateway.create_payment_request(payment_request(metadata="agentjobs:job-42"))
    [body] = posted(sent, "/payment")
    assert body["metadata"] == "agentjobs:job-42"
    bid = terms.blockchain_identifier
    assert sandbox.payment(bid)["metadata"] == "agentjobs:job-42"
    assert (await gateway.get_payment(bid)).metadata == "agentjobs:job-42"


async def test_create_reads_the_terms_exactly(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    pay_by = datetime.now(UTC) + timedelta(hours=3, milliseconds=777)
    submit = pay_by + timedelta(hours=4, milliseconds=1)
    terms = await gateway.create_payment_request(
        payment_request(pay_by_time=pay_by, submit_result_time=submit)
    )
    shown = sandbox.payment(terms.blockchain_identifier)
    assert terms.pay_by_time == int(shown["payByTime"]) == epoch_ms(pay_by)
    assert terms.submit_result_time == int(shown["submitResultTime"]) == epoch_ms(submit)
    assert terms.unlock_time == int(shown["unlockTime"])
    assert terms.external_dispute_unlock_time == int(shown["externalDisputeUnlockTime"])
    assert terms.seller_vkey == shown["SmartContractWallet"]["walletVkey"]
    assert terms.agent_identifier == AGENT_IDENTIFIER
    assert terms.amounts == (Amount(amount=10_000_000, unit=""),)
    assert (terms.source_type, terms.source_index) == ("Web3CardanoV1", None)


async def test_an_invalid_identifier_never_reaches_the_service(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    for identifier in ("", "xyz", "aabbccddeeff001", "aa" * 14):
        with pytest.raises(InvalidArgumentError) as raised:
            await gateway.create_payment_request(
                payment_request(identifier_from_purchaser=identifier)
            )
        assert [v.field for v in raised.value.violations] == ["identifier_from_purchaser"]
    for input_hash in ("", "not-hex"):
        with pytest.raises(InvalidArgumentError) as raised:
            await gateway.create_payment_request(payment_request(input_hash=input_hash))
        assert [v.field for v in raised.value.violations] == ["input_hash"]
    assert sum(sandbox.request_counts.values()) == 0


async def test_a_refused_request_is_rejected_with_the_service_message(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    with pytest.raises(PaymentServiceRejectedError) as raised:
        await gateway.create_payment_request(
            payment_request(pay_by=timedelta(hours=-1), submit=timedelta(hours=2))
        )
    assert raised.value.message == "Pay by time must be in the future (max. 5 minutes)"
    with pytest.raises(PaymentServiceRejectedError) as raised:
        await gateway.create_payment_request(
            payment_request(pay_by=timedelta(hours=2), submit=timedelta(hours=2, minutes=4))
        )
    assert raised.value.message == (
        "Pay by time must be before submit result time (min. 5 minutes)"
    )
    assert list(sandbox.ledger) == []


async def test_the_wallet_vkey_wins_over_a_different_seller_vkey_setting(
    sandbox: SandboxPaymentService, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_gateway(sandbox.url, seller_vkey_override="f" * 56) as gateway:
        for _ in range(2):
            terms = await gateway.create_payment_request(payment_request())
            assert terms.seller_vkey == sandbox.seller.wallet_vkey
    warnings = [r for r in caplog.records if "SELLER_VKEY differs" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


async def test_the_seller_vkey_setting_stands_in_when_the_service_names_no_wallet() -> None:
    sandbox = SandboxPaymentService(api_key=API_KEY, seller=SellerSide(wallet_vkey=None))
    await sandbox.start("127.0.0.1", 0)
    try:
        async with (
            open_gateway(sandbox.url, seller_vkey_override="e" * 56) as with_setting,
            open_gateway(sandbox.url) as without,
        ):
            terms = await with_setting.create_payment_request(payment_request())
            assert terms.seller_vkey == "e" * 56
            with pytest.raises(PaymentConfigurationError, match="SELLER_VKEY"):
                await without.create_payment_request(payment_request())
    finally:
        await sandbox.stop()


async def test_get_payment_follows_the_payment(manual: Manual) -> None:
    sandbox = manual.sandbox
    async with open_gateway(sandbox.url) as gateway:
        terms = await gateway.create_payment_request(payment_request(manual.now_ms()))
        bid = terms.blockchain_identifier
        unpaid = await gateway.get_payment(bid)
        assert (unpaid.on_chain_state, unpaid.requested_action) == (
            None,
            "WaitingForExternalAction",
        )
        assert unpaid.payment_id == sandbox.payment(bid)["id"]
        assert (unpaid.input_hash, unpaid.source_type) == (INPUT_HASH, PaymentSourceType.V1)
        manual.advance(1.5)
        await sandbox.lock_funds(bid)
        locked = await gateway.get_payment(bid)
    assert locked.on_chain_state == "FundsLocked"
    assert locked.payment_id == unpaid.payment_id
    assert locked.changed_at is not None and unpaid.changed_at is not None
    assert locked.changed_at - unpaid.changed_at == timedelta(seconds=1.5)
    assert locked.updated_at == locked.changed_at


# -- the diff ------------------------------------------------------------------
async def test_changes_since_pages_from_the_cursor_row_which_comes_again(manual: Manual) -> None:
    created = manual.sandbox.create_payments(7, same_instant=True)
    async with open_gateway(manual.sandbox.url) as gateway:
        pages: list[list[str]] = []
        seen: set[str] = set()
        watermark: Watermark | None = None
        while True:
            changes = await gateway.changes_since(watermark, limit=3)
            ids = [str(p.payment_id) for p in changes.payments]
            ordered = [(p.changed_at, p.payment_id) for p in changes.payments]
            assert ordered == sorted(ordered)
            if watermark is not None:
                # Inclusive: the page starts at the row the watermark points at.
                assert ids[0] == watermark.cursor_id
            pages.append(ids)
            seen.update(p.blockchain_identifier for p in changes.payments)
            assert changes.watermark is not None
            assert changes.watermark.cursor_id == ids[-1]
            watermark = changes.watermark
            if not changes.more:
                break
        assert [len(page) for page in pages] == [3, 3, 3, 1]
        assert seen == set(created)
        assert manual.sandbox.request_counts[("GET", "/api/v1/payment/diff")] == 4

        # A change a second later, to a payment other than the cursor row.
        cursor = watermark.cursor_id
        target = next(bid for bid in created if manual.sandbox.payment(bid)["id"] != cursor)
        target_id = manual.sandbox.payment(target)["id"]
        manual.advance(1)
        await manual.sandbox.lock_funds(target)
        changed = await gateway.changes_since(watermark, limit=3)
        assert [(p.payment_id, p.on_chain_state) for p in changed.payments] == [
            (cursor, None),
            (target_id, "FundsLocked"),
        ]
        assert changed.watermark == Watermark(
            last_update=datetime.fromtimestamp(manual.now_ms() / 1000, UTC), cursor_id=target_id
        )
        assert not changed.more
        quiet = await gateway.changes_since(changed.watermark, limit=3)
        assert [p.blockchain_identifier for p in quiet.payments] == [target]
        assert (quiet.watermark, quiet.more) == (changed.watermark, False)


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
    # 100 new rows, then 99 per page (the cursor row comes again), then the last alone.
    assert sandbox.request_counts[("GET", "/api/v1/payment/diff")] == 102

    before = sandbox.request_counts[("GET", "/api/v1/payment/diff")]
    quiet = await gateway.changes_since(watermark)
    assert watermark is not None
    assert [p.payment_id for p in quiet.payments] == [watermark.cursor_id]
    assert (quiet.watermark, quiet.more) == (watermark, False)
    assert sandbox.request_counts[("GET", "/api/v1/payment/diff")] - before == 1


async def test_changes_since_refuses_a_page_too_small_to_move_on(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    for limit in (1, 101):
        with pytest.raises(ValueError, match="limit"):
            await gateway.changes_since(None, limit=limit)
    assert sum(sandbox.request_counts.values()) == 0


# -- the seller's requests, through upstream's windows -------------------------
async def test_submit_result_sends_the_hash_and_the_payment_is_withdrawn_after_unlock(
    manual: Manual, sent: Sent
) -> None:
    async with open_gateway(manual.sandbox.url) as gateway:
        terms = await gateway.create_payment_request(payment_request(manual.now_ms(), **SHORT))
        bid = terms.blockchain_identifier
        await manual.sandbox.lock_funds(bid)
        digest = create_masumi_output_hash(RESULT, PURCHASER)
        state = await gateway.submit_result(bid, digest)
        assert posted(sent, "/payment/submit-result") == [
            {"network": "Preprod", "blockchainIdentifier": bid, "submitResultHash": digest}
        ]
        assert (state.on_chain_state, state.requested_action, state.next_action_result_hash) == (
            "FundsLocked",
            "SubmitResultRequested",
            digest,
        )
        manual.advance(15)  # the submit-result job's tick builds the transaction
        assert (await gateway.get_payment(bid)).requested_action == "SubmitResultInitiated"
        manual.advance(20)  # it confirms
        landed = await gateway.get_payment(bid)
        assert (landed.on_chain_state, landed.requested_action, landed.result_hash) == (
            "ResultSubmitted",
            "WaitingForExternalAction",
            digest,
        )
        # The buyer may dispute until unlockTime; the money moves 10 minutes after it.
        withdrawable_ms = terms.unlock_time + 10 * 60_000
        manual.advance((withdrawable_ms - manual.now_ms()) / 1000 - 1)
        assert (await gateway.get_payment(bid)).on_chain_state == "ResultSubmitted"
        manual.advance(2 * MINUTE)
        settled = await gateway.get_payment(bid)
        assert (settled.on_chain_state, settled.requested_action, settled.result_hash) == (
            "Withdrawn",
            "None",
            digest,
        )
    assert manual.sandbox.accepted_submissions(bid) == 1
    assert manual.sandbox.payment(bid)["WithdrawnForSeller"] == [{"amount": "10000000", "unit": ""}]


async def test_a_v1_refund_is_authorized_from_a_dispute_and_withdrawn_by_the_buyer(
    manual: Manual, sent: Sent
) -> None:
    async with open_gateway(manual.sandbox.url) as gateway:
        terms = await gateway.create_payment_request(payment_request(manual.now_ms(), **SHORT))
        bid = terms.blockchain_identifier
        await manual.sandbox.lock_funds(bid)
        digest = create_masumi_output_hash(RESULT, PURCHASER)
        await gateway.submit_result(bid, digest)
        manual.advance(35)
        assert (await gateway.get_payment(bid)).on_chain_state == "ResultSubmitted"
        await manual.sandbox.request_refund(bid)
        assert (await gateway.get_payment(bid)).on_chain_state == "Disputed"

        state = await gateway.authorize_refund(bid)
        assert posted(sent, "/payment/authorize-refund") == [
            {"network": "Preprod", "blockchainIdentifier": bid}
        ]
        assert (state.on_chain_state, state.requested_action) == (
            "Disputed",
            "AuthorizeRefundRequested",
        )
        manual.advance(15)
        assert (await gateway.get_payment(bid)).requested_action == "AuthorizeRefundInitiated"
        manual.advance(20)
        # V1: the datum goes back to RefundRequested; the buyer withdraws it later.
        authorized = await gateway.get_payment(bid)
        assert (authorized.on_chain_state, authorized.requested_action) == (
            "RefundRequested",
            "WaitingForExternalAction",
        )
        refundable_ms = terms.submit_result_time + 10 * 60_000
        manual.advance((refundable_ms - manual.now_ms()) / 1000 - 1)
        assert (await gateway.get_payment(bid)).on_chain_state == "RefundRequested"
        manual.advance(2 * MINUTE)
        refunded = await gateway.get_payment(bid)
        assert (refunded.on_chain_state, refunded.requested_action) == ("RefundWithdrawn", "None")


async def test_authorize_refund_outside_a_refund_request_or_dispute_is_not_found(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    bid = (await gateway.create_payment_request(payment_request())).blockchain_identifier
    with pytest.raises(PaymentNotFoundError, match="Payment not found or in invalid state"):
        await gateway.authorize_refund(bid)
    await sandbox.lock_funds(bid)
    with pytest.raises(PaymentNotFoundError, match="Payment not found or in invalid state"):
        await gateway.authorize_refund(bid)


async def test_recover_error_state_requeues_the_failed_action(manual: Manual, sent: Sent) -> None:
    async with open_gateway(manual.sandbox.url) as gateway:
        terms = await gateway.create_payment_request(payment_request(manual.now_ms(), **SHORT))
        bid = terms.blockchain_identifier
        await manual.sandbox.lock_funds(bid)
        digest = create_masumi_output_hash(RESULT, PURCHASER)
        await gateway.submit_result(bid, digest)
        manual.advance(1)
        await manual.sandbox.fail_next_action(bid, "the wallet is out of collateral")
        parked = await gateway.get_payment(bid)
        assert (parked.requested_action, parked.error_type, parked.error_note) == (
            "WaitingForManualAction",
            "Unknown",
            "Submitting result failed: the wallet is out of collateral",
        )
        assert parked.updated_at is not None
        shown = manual.sandbox.payment(bid)

        recovered = await gateway.recover_error_state(bid, parked.updated_at)
        [body] = posted(sent, "/payment/error-state-recovery")
        assert body == {
            "network": "Preprod",
            "blockchainIdentifier": bid,
            "updatedAt": shown["updatedAt"],
            "retryPreviousAction": True,
        }
        # The failed submission is asked for again, with its hash.
        assert (
            recovered.requested_action,
            recovered.error_type,
            recovered.error_note,
            recovered.next_action_result_hash,
        ) == ("SubmitResultRequested", None, None, digest)
        [entry] = manual.sandbox.requests_report()["payments"][bid]["errorStateRecoveries"]
        assert (entry["status"], entry["retryPreviousAction"]) == (200, True)
        manual.advance(14)
        assert (await gateway.get_payment(bid)).requested_action == "SubmitResultInitiated"
        manual.advance(20)
        landed = await gateway.get_payment(bid)
        assert (landed.on_chain_state, landed.result_hash) == ("ResultSubmitted", digest)


async def test_recover_error_state_with_a_stale_updated_at_is_not_found(manual: Manual) -> None:
    async with open_gateway(manual.sandbox.url) as gateway:
        terms = await gateway.create_payment_request(payment_request(manual.now_ms(), **SHORT))
        bid = terms.blockchain_identifier
        await manual.sandbox.lock_funds(bid)
        submitted = await gateway.submit_result(bid, create_masumi_output_hash(RESULT, PURCHASER))
        assert submitted.updated_at is not None
        manual.advance(1)
        await manual.sandbox.fail_next_action(bid, "tx timed out")
        with pytest.raises(PaymentNotFoundError) as raised:
            await gateway.recover_error_state(bid, submitted.updated_at)
        assert raised.value.message == STALE
        # Nothing changed: the payment still waits for a person.
        assert (await gateway.get_payment(bid)).requested_action == "WaitingForManualAction"


async def test_recover_error_state_of_a_payment_without_an_error_is_rejected(
    gateway: MasumiPaymentGateway, sandbox: SandboxPaymentService
) -> None:
    healthy = (await gateway.create_payment_request(payment_request())).blockchain_identifier
    await sandbox.lock_funds(healthy)
    locked = await gateway.get_payment(healthy)
    assert locked.updated_at is not None
    with pytest.raises(PaymentServiceRejectedError) as raised:
        await gateway.recover_error_state(healthy, locked.updated_at)
    assert raised.value.message == (
        "Payment request is not in WaitingForManualAction state. Current state: "
        "WaitingForExternalAction"
    )
    # Waiting for a person without an errorType (bad funds): nothing a recovery clears.
    invalid = (await gateway.create_payment_request(payment_request())).blockchain_identifier
    await sandbox.mark_funds_invalid(invalid)
    marked = await gateway.get_payment(invalid)
    assert (marked.on_chain_state, marked.requested_action, marked.error_type) == (
        "FundsOrDatumInvalid",
        "WaitingForManualAction",
        None,
    )
    assert marked.updated_at is not None
    with pytest.raises(PaymentServiceRejectedError) as raised:
        await gateway.recover_error_state(invalid, marked.updated_at)
    assert raised.value.message == "Payment request is not in an error state. No error to clear."
