"""POST /payment/error-state-recovery as upstream answers it
(src/routes/api/payments/error-state-recovery/index.ts at tag 0.28.0)."""

from __future__ import annotations

import pytest

from agentjobs.server.payments.sandbox import SandboxPaymentService
from tests.payments.conftest import Manual
from tests.payments.helpers import MINUTE, RESULT_HASH, SECOND_KEY, RawApi, recover
from tests.payments.test_sandbox_chain import locked_payment

STALE = "Payment request not found with the provided blockchain identifier or it was changed"


async def failed_submission(api: RawApi, sandbox: SandboxPaymentService) -> dict[str, object]:
    sandbox.settle_after = 3600
    bid = (await api.create())["blockchainIdentifier"]
    await sandbox.lock_funds(bid)
    await api.submit(bid)
    return await sandbox.fail_next_action(bid, "tx timed out")


async def test_a_stale_updated_at_is_404(raw: RawApi, sandbox: SandboxPaymentService) -> None:
    failed = await failed_submission(raw, sandbox)
    bid = str(failed["blockchainIdentifier"])
    answer = await recover(raw, bid, str(failed["createdAt"]), retry=True)
    assert (answer.status, answer.message) == (404, STALE)
    unknown = await recover(raw, "beef" * 16, str(failed["updatedAt"]))
    assert (unknown.status, unknown.message) == (404, STALE)


async def test_an_unpaid_payment_cannot_be_recovered(raw: RawApi) -> None:
    created = await raw.create()
    answer = await recover(raw, created["blockchainIdentifier"], created["updatedAt"])
    assert (answer.status, answer.message) == (
        400,
        "Payment request is in its initial on-chain state. Can not be recovered. "
        "Please start a new payment request.",
    )


async def test_a_payment_that_waits_for_nobody_cannot_be_recovered(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    bid = (await raw.create())["blockchainIdentifier"]
    locked = await sandbox.lock_funds(bid)
    answer = await recover(raw, bid, locked["updatedAt"])
    assert (answer.status, answer.message) == (
        400,
        "Payment request is not in WaitingForManualAction state. Current state: "
        "WaitingForExternalAction",
    )


async def test_manual_action_without_an_error_type_has_nothing_to_clear(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    bid = (await raw.create())["blockchainIdentifier"]
    invalid = await sandbox.mark_funds_invalid(bid)
    answer = await recover(raw, bid, invalid["updatedAt"])
    assert (answer.status, answer.message) == (
        400,
        "Payment request is not in an error state. No error to clear.",
    )


async def test_only_the_key_that_created_the_payment_may_recover_it(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    failed = await failed_submission(raw, sandbox)
    sandbox.add_api_key(SECOND_KEY)
    answer = await recover(
        raw, str(failed["blockchainIdentifier"]), str(failed["updatedAt"]), token=SECOND_KEY
    )
    assert (answer.status, answer.message) == (
        403,
        "You are not authorized to recover this payment request",
    )


async def test_retry_queues_the_failed_submission_again_with_its_hash(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    failed = await failed_submission(raw, sandbox)
    sandbox.settle_after = 0.01
    bid = str(failed["blockchainIdentifier"])
    recovered = (await recover(raw, bid, str(failed["updatedAt"]), retry=True)).data
    assert recovered["NextAction"] == {
        "requestedAction": "SubmitResultRequested",
        "errorType": None,
        "errorNote": None,
        "resultHash": RESULT_HASH,
    }
    assert "ActionHistory" not in recovered
    landed = await sandbox.wait_for(bid, on_chain_state="ResultSubmitted")
    assert landed["resultHash"] == RESULT_HASH
    again = await recover(raw, bid, landed["updatedAt"])
    assert again.status == 400


async def test_without_retry_the_error_is_only_cleared(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    failed = await failed_submission(raw, sandbox)
    bid = str(failed["blockchainIdentifier"])
    cleared = (await recover(raw, bid, str(failed["updatedAt"]), retry=False)).data
    assert cleared["NextAction"] == {
        "requestedAction": "WaitingForExternalAction",
        "errorType": None,
        "errorNote": None,
        "resultHash": None,
    }
    # The seller may submit again.
    assert (await raw.submit(bid)).status == 200


async def test_a_manual_action_after_a_plain_wait_is_not_retryable(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    bid = (await raw.create())["blockchainIdentifier"]
    await sandbox.lock_funds(bid)
    failed = await sandbox.fail_next_action(bid, "stuck")
    answer = await recover(raw, bid, failed["updatedAt"], retry=True)
    assert (answer.status, answer.message) == (
        400,
        "The immediately preceding payment action is not retryable.",
    )


async def test_a_completed_payment_is_cleared_to_none_and_never_retried(manual: Manual) -> None:
    bid = await locked_payment(manual)
    manual.advance(16 * MINUTE)
    await manual.api.submit(bid)  # too late: never picked up
    manual.advance(16 * MINUTE)  # the buyer's refund lands: manual action, Unknown
    refunded = await manual.api.resolve(bid)
    assert refunded["onChainState"] == "RefundWithdrawn"
    retried = await recover(manual.api, bid, refunded["updatedAt"], retry=True)
    assert (retried.status, retried.message) == (
        400,
        "The payment is already completed and its previous action cannot be retried.",
    )
    cleared = (await recover(manual.api, bid, refunded["updatedAt"])).data
    assert cleared["NextAction"]["requestedAction"] == "None"


@pytest.mark.parametrize("retry", ["true", 1, None])
async def test_retry_previous_action_must_be_a_boolean(raw: RawApi, retry: object) -> None:
    answer = await raw.call(
        "POST",
        "/payment/error-state-recovery",
        body={
            "network": "Preprod",
            "blockchainIdentifier": "ab",
            "updatedAt": "2026-01-01T00:00:00.000Z",
            "retryPreviousAction": retry,
        },
    )
    kinds: dict[object, str] = {"true": "string", 1: "number", None: "null"}
    kind = kinds[retry]
    assert (answer.status, answer.message) == (
        400,
        f"retryPreviousAction: Invalid input: expected boolean, received {kind}",
    )
