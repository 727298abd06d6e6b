"""payment_rules: what a job does when the payment service answers StartJob, when its
payment changes (the diff), when its FOLLOW step looks, and when its EXPIRE step fires.

Upstream facts these rules answer to (masumi-payment-service 0.28.0):
- V1 `smart-contracts/payment/state_machine_diagram.md`, V2
  `smart-contracts/payment-v2/state_machine_diagram.md`: which onChainState follows which.
- `src/utils/logic/state-transitions/transitions.md`: the seller's NextAction per state
  (WaitingForExternalAction while nothing is asked; None once settled; errors park in
  WaitingForManualAction).
- `packages/payment-source-v1/src/services/payments/submit-result/service.ts`: the chain
  job takes a SubmitResultRequested only while submitResultTime is > 5 min away
  (lines 352-354) and parks an uncaught failure in WaitingForManualAction with our result
  hash (lines 91-103).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from agentjobs.server.domain.errors import OperationNotPossibleError
from agentjobs.server.domain.events import EventType
from agentjobs.server.domain.invoice import Invoice, InvoiceStatus
from agentjobs.server.domain.job import Job, JobError
from agentjobs.server.domain.lifecycle import (
    AttentionReason,
    Decision,
    InvoiceChange,
    PaymentMismatchError,
    on_expiry_check,
    on_follow,
    on_operator_recover,
    on_payment,
    on_payment_requested,
    preview,
)
from agentjobs.server.domain.payment import SETTLED_STATES, PaymentSourceType
from agentjobs.server.domain.payment import PaymentState as Payment
from agentjobs.server.domain.status import JobStatus
from agentjobs.server.domain.steps import KEEP, Scheduled, Step
from tests.domain.builders import (
    BID,
    DEADLINE,
    DISPUTE_UNLOCK,
    HOUR,
    LAST_SUBMIT,
    MINUTE,
    OTHER_HASH,
    PAY_BY,
    POLICY,
    PRICE,
    RESULT_HASH,
    SOURCES,
    SUBMIT_BY,
    T0_MS,
    UNLOCK,
    V1,
    V2,
    Action,
    S,
    State,
    a_job,
    an_invoice,
    apply,
    at,
    attention,
    intent,
    minutes,
    payment,
    running_with_result,
    submission_failed,
    terms,
)

EARLY = T0_MS + minutes(20)  # before payByTime
LAG = POLICY.withdraw_lag_ms
GRACE = POLICY.expiry_grace_ms


def decide(job: Job, invoice: Invoice | None, paid: Payment, now_ms: int) -> Decision:
    return on_payment(job, invoice, paid, at(now_ms), POLICY)


def types(decision: Decision) -> list[EventType]:
    return [event.type for event in decision.events]


def attention_of(job: Job, decision: Decision, now_ms: int) -> str | None:
    after = preview(job, decision, at(now_ms))
    return after.attention.reason if after.attention is not None else None


# =====================================================================================
# The payment service answered StartJob
# =====================================================================================
@pytest.mark.parametrize("source", SOURCES)
def test_payment_requested_attaches_the_terms_exactly_as_sent(source: PaymentSourceType) -> None:
    decision = on_payment_requested(intent(), terms(source=source), at(T0_MS), POLICY)
    job = preview(intent(), decision, at(T0_MS))
    assert job.blockchain_identifier == BID
    assert (job.pay_by_time, job.submit_result_time) == (PAY_BY, SUBMIT_BY)
    assert (job.unlock_time, job.external_dispute_unlock_time) == (UNLOCK, DISPUTE_UNLOCK)
    assert (job.seller_vkey, job.agent_identifier) == ("seller-vkey", terms().agent_identifier)
    assert job.payment_source_type == source.value
    assert job.payment_source_index == (0 if source is V2 else None)
    assert job.status is S.AWAITING_PAYMENT


def test_payment_requested_creates_the_invoice_with_the_price() -> None:
    decision = on_payment_requested(intent(), terms(), at(T0_MS), POLICY)
    assert decision.new_invoice == PRICE
    assert types(decision) == [EventType.PAYMENT_REQUESTED]
    assert dict(decision.events[0].data) == {
        "blockchain_identifier": BID,
        "pay_by_time": PAY_BY,
        "submit_result_time": SUBMIT_BY,
    }


def test_payment_requested_expires_the_job_after_pay_by_time_and_the_grace() -> None:
    decision = on_payment_requested(intent(), terms(), at(T0_MS), POLICY)
    assert decision.step == Scheduled(Step.EXPIRE, PAY_BY + GRACE)
    assert GRACE > 0  # a lock made in time may reach the payment service late


def test_payment_requested_sets_the_agents_deadline_before_the_last_submit_moment() -> None:
    decision = on_payment_requested(intent(), terms(), at(T0_MS), POLICY)
    deadline = decision.fields["deadline"]
    # submitResultTime - 5 min (chain cutoff) - pickup interval - room to submit.
    assert deadline == SUBMIT_BY - 5 * MINUTE - POLICY.chain_pickup_ms - POLICY.submit_margin_ms
    assert deadline == DEADLINE < LAST_SUBMIT < SUBMIT_BY - 5 * MINUTE


def test_payment_requested_twice_for_the_same_payment_decides_nothing() -> None:
    job = preview(intent(), on_payment_requested(intent(), terms(), at(T0_MS), POLICY), at(T0_MS))
    assert on_payment_requested(job, terms(), at(T0_MS), POLICY).writes_nothing


def test_a_second_different_payment_for_one_intent_is_refused() -> None:
    job = preview(intent(), on_payment_requested(intent(), terms(), at(T0_MS), POLICY), at(T0_MS))
    with pytest.raises(PaymentMismatchError) as raised:
        on_payment_requested(job, terms("another-payment"), at(T0_MS), POLICY)
    assert raised.value.reason == "PAYMENT_MISMATCH"
    assert BID in raised.value.message and "another-payment" in raised.value.message


# =====================================================================================
# on_payment: every onChainState against every job status it can meet
# =====================================================================================
def test_no_invoice_no_decision() -> None:
    assert decide(a_job(S.RUNNING), None, payment(State.FUNDS_LOCKED), EARLY).writes_nothing


def test_unpaid_and_nothing_new_decides_nothing() -> None:
    job = a_job(S.AWAITING_PAYMENT)
    invoice = an_invoice(for_status=S.AWAITING_PAYMENT)
    assert decide(job, invoice, payment(None), EARLY).writes_nothing


# -- FundsLocked --------------------------------------------------------------------------
@pytest.mark.parametrize("source", SOURCES)
def test_funds_locked_starts_the_job(source: PaymentSourceType) -> None:
    job, invoice = a_job(S.AWAITING_PAYMENT, source), an_invoice(for_status=S.AWAITING_PAYMENT)
    decision = decide(job, invoice, payment(State.FUNDS_LOCKED, source=source), EARLY)
    assert decision.status is S.RUNNING
    assert decision.invoice == InvoiceChange(
        status=InvoiceStatus.PAID, on_chain_state=State.FUNDS_LOCKED
    )
    assert types(decision) == [EventType.FUNDS_LOCKED]
    assert decision.step == Scheduled(Step.RUN, EARLY)
    _, paid = apply(job, invoice, decision, at(EARLY))
    assert paid is not None and paid.paid_at == at(EARLY)


@pytest.mark.parametrize("source", SOURCES)
def test_funds_locked_with_no_time_left_to_run_fails_the_job(source: PaymentSourceType) -> None:
    job, invoice = a_job(S.AWAITING_PAYMENT, source), an_invoice(for_status=S.AWAITING_PAYMENT)
    decision = decide(job, invoice, payment(State.FUNDS_LOCKED, source=source), DEADLINE)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "NO_TIME_TO_RUN"
    assert decision.invoice is not None and decision.invoice.status is InvoiceStatus.PAID
    assert len(decision.warnings) == 1  # the buyer paid: say what happens to the money


def test_funds_locked_after_the_job_failed_needs_attention_v1() -> None:
    """V1: the buyer gets the money back by withdrawing after submitResultTime."""
    job = a_job(S.FAILED, V1, error=JobError(reason="PAYMENT_EXPIRED", message="late"))
    invoice = an_invoice(InvoiceStatus.EXPIRED, None)
    now = PAY_BY + GRACE + MINUTE
    decision = decide(job, invoice, payment(State.FUNDS_LOCKED), now)
    assert decision.status is None  # a failed job cannot run any more
    assert decision.invoice == InvoiceChange(
        status=InvoiceStatus.PAID, on_chain_state=State.FUNDS_LOCKED
    )
    after = preview(job, decision, at(now))
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.FUNDS_LOCKED_AFTER_FAILURE
    assert "PAYMENT_EXPIRED" in after.attention.message
    assert "buyer withdraws after submitResultTime" in after.attention.action
    assert types(decision) == [EventType.ATTENTION_NEEDED]
    assert decision.step == Scheduled(Step.FOLLOW, SUBMIT_BY + MINUTE)


def test_funds_locked_after_the_job_failed_v2_is_followed_not_refunded() -> None:
    job = a_job(S.FAILED, V2, error=JobError(reason="PAYMENT_EXPIRED", message="late"))
    invoice = an_invoice(InvoiceStatus.EXPIRED, None, source=V2)
    decision = decide(job, invoice, payment(State.FUNDS_LOCKED, source=V2), PAY_BY + GRACE)
    assert decision.step == Scheduled(Step.FOLLOW, SUBMIT_BY + MINUTE)


@pytest.mark.parametrize("status", [S.RUNNING, S.AWAITING_INPUT, S.COMPLETED])
def test_v1_buyer_withdrawing_the_refund_request_is_recorded(status: JobStatus) -> None:
    """V1 only: UnSetRefundRequested takes RefundRequested back to FundsLocked."""
    job = a_job(status, V1)
    invoice = an_invoice(
        InvoiceStatus.SUBMITTED if status is S.COMPLETED else InvoiceStatus.PAID,
        State.REFUND_REQUESTED,
    )
    decision = decide(job, invoice, payment(State.FUNDS_LOCKED), EARLY)
    assert decision.status is None
    assert decision.step is KEEP  # the job goes on as it was
    assert decision.invoice == InvoiceChange(on_chain_state=State.FUNDS_LOCKED)
    assert [e.detail for e in decision.events] == ["the buyer withdrew the refund request"]


def test_v1_buyer_withdrawing_the_refund_request_after_the_job_failed_is_only_recorded() -> None:
    """The funds were locked before the job failed: FundsLocked again (UnSetRefundRequested)
    is not a lock made after the failure, and the money's way back is as before (the
    buyer withdraws after submitResultTime): nothing for a person."""
    job = a_job(S.FAILED, V1, step=Step.FOLLOW, run_at=SUBMIT_BY + MINUTE)
    invoice = an_invoice(InvoiceStatus.PAID, State.REFUND_REQUESTED)
    decision = decide(job, invoice, payment(State.FUNDS_LOCKED), EARLY)
    assert decision.status is None
    assert decision.invoice == InvoiceChange(on_chain_state=State.FUNDS_LOCKED)
    assert [e.detail for e in decision.events] == ["the buyer withdrew the refund request"]
    assert "attention" not in decision.fields
    assert decision.step is KEEP  # still followed until the buyer takes the money back


# -- FundsOrDatumInvalid ------------------------------------------------------------------------
def invalid_lock(source: PaymentSourceType = V1) -> Payment:
    """As upstream's tx-sync writes it (src/services/transactions/tx-sync/tx/index.ts
    946-1101 and 1178-1182): WaitingForManualAction with an errorNote, no errorType."""
    return payment(
        State.FUNDS_OR_DATUM_INVALID,
        Action.WAITING_FOR_MANUAL_ACTION,
        error_note="Block time is after pay by time. This is a timed out purchase.",
        source=source,
    )


@pytest.mark.parametrize("source", SOURCES)
def test_funds_or_datum_invalid_fails_the_job_without_running_it(
    source: PaymentSourceType,
) -> None:
    job, invoice = a_job(S.AWAITING_PAYMENT, source), an_invoice(for_status=S.AWAITING_PAYMENT)
    decision = decide(job, invoice, payment(State.FUNDS_OR_DATUM_INVALID, source=source), EARLY)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "FUNDS_OR_DATUM_INVALID"
    assert decision.invoice == InvoiceChange(
        status=InvoiceStatus.INVALID, on_chain_state=State.FUNDS_OR_DATUM_INVALID
    )
    assert decision.step is None


def test_funds_or_datum_invalid_after_the_job_expired_marks_the_invoice_for_a_person() -> None:
    """The job stays as it is; the buyer's stuck transaction is shown to a person."""
    job = a_job(S.FAILED, error=JobError(reason="PAYMENT_EXPIRED", message="late"))
    invoice = an_invoice(InvoiceStatus.EXPIRED, None)
    decision = decide(job, invoice, payment(State.FUNDS_OR_DATUM_INVALID), PAY_BY + GRACE)
    assert decision.status is None
    assert decision.invoice == InvoiceChange(
        status=InvoiceStatus.INVALID, on_chain_state=State.FUNDS_OR_DATUM_INVALID
    )
    assert attention_of(job, decision, PAY_BY + GRACE) == AttentionReason.FUNDS_OR_DATUM_INVALID


@pytest.mark.parametrize("source", SOURCES)
def test_funds_or_datum_invalid_needs_attention_not_a_recovery(
    source: PaymentSourceType,
) -> None:
    job, invoice = a_job(S.AWAITING_PAYMENT, source), an_invoice(for_status=S.AWAITING_PAYMENT)
    decision = decide(job, invoice, invalid_lock(source), EARLY)
    after = preview(job, decision, at(EARLY))
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.FUNDS_OR_DATUM_INVALID
    assert "recover" not in after.attention.action


# -- ResultSubmitted ---------------------------------------------------------------------------
@pytest.mark.parametrize("source", SOURCES)
def test_result_on_chain_confirms_the_books_and_follows_to_the_withdrawal(
    source: PaymentSourceType,
) -> None:
    job = a_job(S.COMPLETED, source, attention=attention(AttentionReason.SUBMISSION_NOT_PICKED_UP))
    invoice = an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED)
    now = T0_MS + HOUR
    paid = payment(State.RESULT_SUBMITTED, result_hash=RESULT_HASH, source=source)
    decision = decide(job, invoice, paid, now)
    assert decision.invoice == InvoiceChange(
        status=InvoiceStatus.CONFIRMED, on_chain_state=State.RESULT_SUBMITTED
    )
    assert types(decision) == [EventType.RESULT_CONFIRMED]
    assert decision.step == Scheduled(Step.FOLLOW, UNLOCK + LAG)
    assert decision.fields["attention"] is None


def test_result_on_chain_seen_after_unlock_time_follows_after_the_lag() -> None:
    job, invoice = a_job(S.COMPLETED), an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED)
    now = UNLOCK + HOUR
    decision = decide(job, invoice, payment(State.RESULT_SUBMITTED, result_hash=RESULT_HASH), now)
    assert decision.step == Scheduled(Step.FOLLOW, now + LAG)


@pytest.mark.parametrize("source", SOURCES)
def test_our_result_on_chain_completes_a_job_whose_200_was_lost(
    source: PaymentSourceType,
) -> None:
    """submit-result was taken but the worker stopped before writing it down."""
    job = running_with_result(source)
    invoice = an_invoice(InvoiceStatus.PAID, State.FUNDS_LOCKED)
    now = T0_MS + HOUR
    decision = decide(job, invoice, payment(State.RESULT_SUBMITTED, result_hash=RESULT_HASH), now)
    assert decision.status is S.COMPLETED
    assert types(decision) == [
        EventType.RESULT_SUBMITTED,
        EventType.COMPLETED,
        EventType.RESULT_CONFIRMED,
    ]
    assert decision.invoice is not None and decision.invoice.status is InvoiceStatus.CONFIRMED
    assert decision.step == Scheduled(Step.FOLLOW, UNLOCK + LAG)


def test_our_result_found_on_chain_records_its_hash() -> None:
    job, invoice = running_with_result(), an_invoice(InvoiceStatus.PAID, State.FUNDS_LOCKED)
    decision = decide(
        job, invoice, payment(State.RESULT_SUBMITTED, result_hash=RESULT_HASH), T0_MS + HOUR
    )
    assert dict(decision.events[0].data) == {"result_hash": RESULT_HASH}


def test_v1_buyer_withdrawing_the_dispute_puts_the_result_back_on_chain() -> None:
    """V1 UnSetRefundRequested: Disputed --> ResultSubmitted."""
    job = a_job(S.COMPLETED, V1, attention=attention(AttentionReason.DISPUTED))
    invoice = an_invoice(InvoiceStatus.DISPUTED, State.DISPUTED)
    decision = decide(
        job, invoice, payment(State.RESULT_SUBMITTED, result_hash=RESULT_HASH), T0_MS + HOUR
    )
    assert [e.detail for e in decision.events] == [
        "the buyer withdrew the dispute; the result hash is on chain"
    ]
    assert decision.invoice is not None and decision.invoice.status is InvoiceStatus.CONFIRMED
    assert decision.fields["attention"] is None


# -- RefundRequested ------------------------------------------------------------------------
def test_refund_requested_before_the_job_started_fails_it_v1() -> None:
    job, invoice = a_job(S.AWAITING_PAYMENT, V1), an_invoice(for_status=S.AWAITING_PAYMENT)
    decision = decide(job, invoice, payment(State.REFUND_REQUESTED), EARLY)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "REFUND_REQUESTED"
    assert decision.invoice == InvoiceChange(
        status=InvoiceStatus.PAID, on_chain_state=State.REFUND_REQUESTED
    )
    # V1: the buyer withdraws after submitResultTime; we follow until then.
    assert decision.step == Scheduled(Step.FOLLOW, SUBMIT_BY + MINUTE)
    assert len(decision.warnings) == 1


def test_refund_requested_before_the_job_started_is_authorized_v2() -> None:
    job, invoice = a_job(S.AWAITING_PAYMENT, V2), an_invoice(for_status=S.AWAITING_PAYMENT)
    decision = decide(job, invoice, payment(State.REFUND_REQUESTED, source=V2), EARLY)
    assert decision.status is S.FAILED
    assert decision.step == Scheduled(Step.REFUND, EARLY)
    assert len(decision.warnings) == 1


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("status", [S.RUNNING, S.AWAITING_INPUT])
def test_refund_requested_while_the_job_runs_lets_it_go_on(
    status: JobStatus, source: PaymentSourceType
) -> None:
    """submit-result is still taken from RefundRequested (it makes the payment Disputed)."""
    job, invoice = a_job(status, source), an_invoice(InvoiceStatus.PAID, State.FUNDS_LOCKED)
    decision = decide(job, invoice, payment(State.REFUND_REQUESTED, source=source), EARLY)
    assert decision.status is None
    assert decision.step is KEEP
    assert decision.invoice == InvoiceChange(on_chain_state=State.REFUND_REQUESTED)
    assert types(decision) == [EventType.PAYMENT_STATE_CHANGED]
    assert "the job goes on" in decision.events[0].detail


@pytest.mark.parametrize("source", SOURCES)
def test_refund_requested_after_our_submission_is_recorded(source: PaymentSourceType) -> None:
    job, invoice = (
        a_job(S.COMPLETED, source),
        an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED),
    )
    decision = decide(job, invoice, payment(State.REFUND_REQUESTED, source=source), EARLY)
    assert decision.status is None and decision.step is KEEP
    assert "will make it a dispute" in decision.events[0].detail


def test_refund_requested_after_a_failure_v1_waits_for_the_buyer() -> None:
    job, invoice = a_job(S.FAILED, V1), an_invoice(InvoiceStatus.PAID, State.FUNDS_LOCKED)
    decision = decide(job, invoice, payment(State.REFUND_REQUESTED), EARLY)
    assert decision.status is None
    assert decision.step == Scheduled(Step.FOLLOW, SUBMIT_BY + MINUTE)
    assert decision.invoice == InvoiceChange(on_chain_state=State.REFUND_REQUESTED)


def test_refund_requested_after_a_failure_v2_authorizes_the_refund() -> None:
    job, invoice = a_job(S.FAILED, V2), an_invoice(InvoiceStatus.PAID, State.FUNDS_LOCKED)
    decision = decide(job, invoice, payment(State.REFUND_REQUESTED, source=V2), EARLY)
    assert decision.step == Scheduled(Step.REFUND, EARLY)


def test_v1_our_authorized_refund_of_a_dispute_is_recorded() -> None:
    """V1 AuthorizeRefund: Disputed --> RefundRequested (the buyer withdraws later)."""
    job, invoice = a_job(S.COMPLETED, V1), an_invoice(InvoiceStatus.DISPUTED, State.DISPUTED)
    decision = decide(job, invoice, payment(State.REFUND_REQUESTED), T0_MS + HOUR)
    assert [e.detail for e in decision.events] == [
        "the refund of the disputed funds is authorized on chain"
    ]


# -- Disputed -----------------------------------------------------------------------------------
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("before", [State.RESULT_SUBMITTED, State.REFUND_REQUESTED])
def test_a_dispute_needs_attention_with_the_refund_command(
    before: str, source: PaymentSourceType
) -> None:
    job = a_job(S.COMPLETED, source)
    invoice = an_invoice(InvoiceStatus.CONFIRMED, before)
    now = T0_MS + 2 * HOUR
    decision = decide(job, invoice, payment(State.DISPUTED, result_hash=RESULT_HASH), now)
    assert decision.invoice == InvoiceChange(
        status=InvoiceStatus.DISPUTED, on_chain_state=State.DISPUTED
    )
    assert types(decision) == [EventType.DISPUTED, EventType.ATTENTION_NEEDED]
    after = preview(job, decision, at(now))
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.DISPUTED
    assert after.attention.action == "agentjobs refund job-1"
    assert "externalDisputeUnlockTime" in after.attention.message
    assert len(decision.warnings) == 1


def test_a_dispute_with_our_unrecorded_submission_completes_the_job() -> None:
    """Our hash is on chain (the submission landed from RefundRequested as Disputed)
    though we never wrote down its 200: the buyer has the result; a person decides the
    dispute."""
    job, invoice = running_with_result(), an_invoice(InvoiceStatus.PAID, State.REFUND_REQUESTED)
    decision = decide(job, invoice, payment(State.DISPUTED, result_hash=RESULT_HASH), EARLY)
    assert decision.status is S.COMPLETED
    assert attention_of(job, decision, EARLY) == AttentionReason.DISPUTED


# -- V2: WithdrawAuthorized, RefundAuthorized -------------------------------------------------
def test_v2_buyer_authorizing_our_withdrawal_is_followed_to_the_withdrawal() -> None:
    job = a_job(S.COMPLETED, V2, attention=attention(AttentionReason.DISPUTED))
    invoice = an_invoice(InvoiceStatus.DISPUTED, State.DISPUTED, source=V2)
    now = T0_MS + 2 * HOUR
    decision = decide(
        job, invoice, payment(State.WITHDRAW_AUTHORIZED, result_hash=RESULT_HASH, source=V2), now
    )
    assert decision.invoice == InvoiceChange(
        status=InvoiceStatus.CONFIRMED, on_chain_state=State.WITHDRAW_AUTHORIZED
    )
    assert decision.step == Scheduled(Step.FOLLOW, now + LAG)
    assert decision.fields["attention"] is None


@pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED])
def test_v2_refund_authorized_leaves_nothing_to_do(status: JobStatus) -> None:
    job = a_job(status, V2, attention=attention(AttentionReason.DISPUTED))
    invoice = an_invoice(InvoiceStatus.DISPUTED, State.DISPUTED, source=V2)
    decision = decide(job, invoice, payment(State.REFUND_AUTHORIZED, source=V2), EARLY)
    assert decision.invoice == InvoiceChange(on_chain_state=State.REFUND_AUTHORIZED)
    assert decision.step is None
    assert decision.fields["attention"] is None
    assert decision.status is None


def test_v2_refund_authorized_while_the_job_runs_fails_it() -> None:
    job = a_job(S.RUNNING, V2)
    invoice = an_invoice(InvoiceStatus.PAID, State.REFUND_REQUESTED, source=V2)
    decision = decide(job, invoice, payment(State.REFUND_AUTHORIZED, source=V2), EARLY)
    assert decision.status is S.FAILED


# -- settled: Withdrawn, RefundWithdrawn, DisputedWithdrawn ------------------------------------
@pytest.mark.parametrize("source", SOURCES)
def test_withdrawn_is_earned_and_ends_the_job(source: PaymentSourceType) -> None:
    job = a_job(S.COMPLETED, source, attention=attention(AttentionReason.WITHDRAWAL_LATE))
    invoice = an_invoice(InvoiceStatus.CONFIRMED, State.RESULT_SUBMITTED)
    now = UNLOCK + 11 * MINUTE
    decision = decide(job, invoice, payment(State.WITHDRAWN, Action.NONE, source=source), now)
    assert decision.invoice == InvoiceChange(
        status=InvoiceStatus.WITHDRAWN, on_chain_state=State.WITHDRAWN
    )
    assert types(decision) == [EventType.WITHDRAWN]
    assert decision.step is None
    assert decision.fields["attention"] is None


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED])
def test_refund_withdrawn_settles_the_invoice_as_refunded(
    status: JobStatus, source: PaymentSourceType
) -> None:
    job = a_job(status, source)
    invoice = an_invoice(InvoiceStatus.PAID, State.REFUND_REQUESTED)
    now = SUBMIT_BY + MINUTE
    decision = decide(job, invoice, payment(State.REFUND_WITHDRAWN, Action.NONE), now)
    assert decision.invoice == InvoiceChange(
        status=InvoiceStatus.REFUNDED, on_chain_state=State.REFUND_WITHDRAWN
    )
    assert types(decision) == [EventType.REFUNDED]
    assert decision.step is None
    assert decision.status is None


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("status", [S.RUNNING, S.AWAITING_INPUT])
def test_refund_withdrawn_before_the_job_finished_fails_it(
    status: JobStatus, source: PaymentSourceType
) -> None:
    job = a_job(status, source)
    invoice = an_invoice(InvoiceStatus.PAID, State.REFUND_REQUESTED)
    now = SUBMIT_BY + MINUTE
    decision = decide(job, invoice, payment(State.REFUND_WITHDRAWN, Action.NONE), now)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "REFUNDED"
    assert types(decision) == [EventType.REFUNDED]
    assert decision.invoice is not None and decision.invoice.status is InvoiceStatus.REFUNDED
    assert decision.step is None
    assert decision.warnings == ()  # the money is back with the buyer: nothing to say


@pytest.mark.parametrize("source", SOURCES)
def test_disputed_withdrawn_settles_the_dispute(source: PaymentSourceType) -> None:
    job = a_job(S.COMPLETED, source, attention=attention(AttentionReason.DISPUTED))
    invoice = an_invoice(InvoiceStatus.DISPUTED, State.DISPUTED)
    decision = decide(
        job, invoice, payment(State.DISPUTED_WITHDRAWN, Action.NONE), DISPUTE_UNLOCK + MINUTE
    )
    assert decision.invoice == InvoiceChange(
        status=InvoiceStatus.DISPUTE_RESOLVED, on_chain_state=State.DISPUTED_WITHDRAWN
    )
    assert types(decision) == [EventType.DISPUTE_RESOLVED]
    assert decision.step is None
    assert decision.fields["attention"] is None


def test_a_state_we_do_not_know_is_recorded() -> None:
    job, invoice = a_job(S.COMPLETED), an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED)
    decision = decide(job, invoice, payment("SomethingNew"), EARLY)
    assert decision.invoice == InvoiceChange(on_chain_state="SomethingNew")
    assert types(decision) == [EventType.PAYMENT_STATE_CHANGED]
    assert decision.status is None and decision.step is KEEP


# -- the whole matrix: legal, recorded, idempotent, nothing left once settled ---------------------
@dataclass(frozen=True)
class Meeting:
    source: PaymentSourceType
    status: JobStatus
    before: str | None  # the state the invoice shows
    state: str | None  # the state the payment service shows now

    @property
    def id(self) -> str:
        return f"{self.source.name}-{self.status.value}-{self.before}->{self.state}"


_INVOICE_STATUS = {
    None: InvoiceStatus.PENDING,
    State.FUNDS_LOCKED: InvoiceStatus.PAID,
    State.RESULT_SUBMITTED: InvoiceStatus.CONFIRMED,
    State.REFUND_REQUESTED: InvoiceStatus.PAID,
    State.DISPUTED: InvoiceStatus.DISPUTED,
    State.WITHDRAW_AUTHORIZED: InvoiceStatus.CONFIRMED,
    State.REFUND_AUTHORIZED: InvoiceStatus.PAID,
}
_RESULT_ON_CHAIN = {
    State.RESULT_SUBMITTED,
    State.DISPUTED,
    State.WITHDRAW_AUTHORIZED,
    State.WITHDRAWN,
    State.DISPUTED_WITHDRAWN,
}
_WHEN = {
    State.WITHDRAWN: UNLOCK + 11 * MINUTE,
    State.REFUND_WITHDRAWN: SUBMIT_BY + MINUTE,
    State.DISPUTED_WITHDRAWN: DISPUTE_UNLOCK + MINUTE,
}


def _meetings() -> list[Meeting]:
    both: list[tuple[JobStatus, str | None, str | None]] = [
        (S.AWAITING_PAYMENT, None, None),
        (S.AWAITING_PAYMENT, None, State.FUNDS_LOCKED),
        (S.FAILED, None, State.FUNDS_LOCKED),
        (S.AWAITING_PAYMENT, None, State.FUNDS_OR_DATUM_INVALID),
        (S.FAILED, None, State.FUNDS_OR_DATUM_INVALID),
        (S.COMPLETED, State.FUNDS_LOCKED, State.RESULT_SUBMITTED),
        (S.RUNNING, State.FUNDS_LOCKED, State.RESULT_SUBMITTED),
        (S.AWAITING_PAYMENT, None, State.REFUND_REQUESTED),
        (S.RUNNING, State.FUNDS_LOCKED, State.REFUND_REQUESTED),
        (S.AWAITING_INPUT, State.FUNDS_LOCKED, State.REFUND_REQUESTED),
        (S.COMPLETED, State.FUNDS_LOCKED, State.REFUND_REQUESTED),
        (S.FAILED, State.FUNDS_LOCKED, State.REFUND_REQUESTED),
        (S.COMPLETED, State.RESULT_SUBMITTED, State.DISPUTED),
        (S.COMPLETED, State.REFUND_REQUESTED, State.DISPUTED),
        (S.RUNNING, State.REFUND_REQUESTED, State.DISPUTED),
        (S.COMPLETED, State.RESULT_SUBMITTED, State.WITHDRAWN),
        (S.COMPLETED, State.FUNDS_LOCKED, State.REFUND_WITHDRAWN),
        (S.COMPLETED, State.REFUND_REQUESTED, State.REFUND_WITHDRAWN),
        (S.FAILED, State.FUNDS_LOCKED, State.REFUND_WITHDRAWN),
        (S.FAILED, State.REFUND_REQUESTED, State.REFUND_WITHDRAWN),
        (S.RUNNING, State.FUNDS_LOCKED, State.REFUND_WITHDRAWN),
        (S.AWAITING_INPUT, State.REFUND_REQUESTED, State.REFUND_WITHDRAWN),
        (S.COMPLETED, State.DISPUTED, State.DISPUTED_WITHDRAWN),
    ]
    v1_only: list[tuple[JobStatus, str | None, str | None]] = [
        # UnSetRefundRequested (buyer)
        (S.RUNNING, State.REFUND_REQUESTED, State.FUNDS_LOCKED),
        (S.AWAITING_INPUT, State.REFUND_REQUESTED, State.FUNDS_LOCKED),
        (S.COMPLETED, State.REFUND_REQUESTED, State.FUNDS_LOCKED),
        (S.COMPLETED, State.DISPUTED, State.RESULT_SUBMITTED),
        # AuthorizeRefund (seller) from Disputed
        (S.COMPLETED, State.DISPUTED, State.REFUND_REQUESTED),
    ]
    v2_only: list[tuple[JobStatus, str | None, str | None]] = [
        (S.COMPLETED, State.DISPUTED, State.WITHDRAW_AUTHORIZED),
        (S.COMPLETED, State.WITHDRAW_AUTHORIZED, State.WITHDRAWN),
        (S.COMPLETED, State.DISPUTED, State.REFUND_AUTHORIZED),
        (S.COMPLETED, State.RESULT_SUBMITTED, State.REFUND_AUTHORIZED),
        (S.FAILED, State.REFUND_REQUESTED, State.REFUND_AUTHORIZED),
        (S.FAILED, State.REFUND_AUTHORIZED, State.REFUND_WITHDRAWN),
        (S.COMPLETED, State.REFUND_AUTHORIZED, State.REFUND_WITHDRAWN),
        (S.RUNNING, State.REFUND_REQUESTED, State.REFUND_AUTHORIZED),
    ]
    found = [Meeting(source, *m) for source in SOURCES for m in both]
    found += [Meeting(V1, *m) for m in v1_only]
    found += [Meeting(V2, *m) for m in v2_only]
    return list(dict.fromkeys(found))


MEETINGS = [pytest.param(m, id=m.id) for m in _meetings()]


def _job_for(m: Meeting) -> Job:
    if m.status is S.RUNNING and m.state in _RESULT_ON_CHAIN:
        return running_with_result(m.source)  # our submission was taken
    if m.status is S.FAILED and m.before is None:
        return a_job(m.status, m.source, error=JobError(reason="PAYMENT_EXPIRED", message="x"))
    if m.status is S.FAILED:
        return a_job(m.status, m.source, step=Step.FOLLOW, run_at=SUBMIT_BY + MINUTE)
    return a_job(m.status, m.source)


def _invoice_for(m: Meeting) -> Invoice:
    status = _INVOICE_STATUS[m.before]
    if m.status is S.FAILED and m.before is None:
        status = InvoiceStatus.EXPIRED
    elif m.status is S.COMPLETED and m.before in (State.FUNDS_LOCKED, State.REFUND_REQUESTED):
        status = InvoiceStatus.SUBMITTED
    return an_invoice(status, m.before, source=m.source)


def _payment_for(m: Meeting) -> Payment:
    action = Action.NONE if m.state in SETTLED_STATES else Action.WAITING_FOR_EXTERNAL_ACTION
    if m.state == State.FUNDS_OR_DATUM_INVALID:
        action = Action.WAITING_FOR_EXTERNAL_ACTION  # the error itself is tested apart
    result_hash = RESULT_HASH if m.state in _RESULT_ON_CHAIN else ""
    return payment(m.state, action, result_hash=result_hash, source=m.source)


@pytest.mark.parametrize("meeting", MEETINGS)
def test_every_payment_state_meeting_a_job(meeting: Meeting) -> None:
    """Whatever the state, the decision is a legal transition, the invoice records the
    state, the same state again decides nothing, and a settled payment leaves no step."""
    job, invoice, paid = _job_for(meeting), _invoice_for(meeting), _payment_for(meeting)
    now = at(
        _WHEN.get(meeting.state or "", EARLY if job.status is S.AWAITING_PAYMENT else T0_MS + HOUR)
    )
    decision = on_payment(job, invoice, paid, now, POLICY)
    after, recorded = apply(job, invoice, decision, now)  # raises on an illegal transition
    assert recorded is not None
    if meeting.state is not None:
        assert recorded.on_chain_state == meeting.state
    # The diff shows the same payment again (a page re-read, a second monitor).
    assert on_payment(after, recorded, paid, now, POLICY).writes_nothing
    assert on_payment(after, recorded, paid, at(SUBMIT_BY + HOUR), POLICY).writes_nothing
    if meeting.state in SETTLED_STATES:
        assert after.step is None
    if not after.is_terminal:
        assert after.step is not None, "a job that is not finished must have a next step"


# =====================================================================================
# Errors: NextAction WaitingForManualAction with errorType / errorNote
# =====================================================================================
ERROR_TEXT = "Unknown: Submitting result failed: UTxO not found"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("state", [State.FUNDS_LOCKED, State.REFUND_REQUESTED, State.DISPUTED])
def test_our_submission_parked_by_the_chain_job_is_recovered(
    state: str, source: PaymentSourceType
) -> None:
    job = a_job(S.COMPLETED, source)
    invoice = an_invoice(InvoiceStatus.SUBMITTED, state)
    now = LAST_SUBMIT - 1
    decision = decide(job, invoice, submission_failed(state, source=source), now)
    assert decision.step == Scheduled(Step.RECOVER, now)
    assert decision.invoice == InvoiceChange(next_action=ERROR_TEXT)
    assert "recovering" in decision.events[0].detail
    assert "attention" not in decision.fields


def test_our_submission_parked_while_the_job_still_runs_is_recovered() -> None:
    """The 200 was lost: the job is RUNNING but the hash in the error is ours."""
    job, invoice = running_with_result(), an_invoice(InvoiceStatus.PAID, State.FUNDS_LOCKED)
    decision = decide(job, invoice, submission_failed(), EARLY)
    assert decision.step == Scheduled(Step.RECOVER, EARLY)


def test_our_submission_parked_too_late_to_submit_again_needs_attention() -> None:
    job, invoice = a_job(S.COMPLETED), an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED)
    decision = decide(job, invoice, submission_failed(), LAST_SUBMIT)
    assert decision.step is KEEP
    after = preview(job, decision, at(LAST_SUBMIT))
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.SUBMISSION_FAILED
    assert "too late to submit again" in after.attention.message
    assert "withdraw after submitResultTime" in after.attention.message
    assert after.attention.action == ""  # a recovery would be refused now


def test_our_submission_parked_without_an_error_type_suggests_no_recovery() -> None:
    """error-state-recovery refuses an error without a type: nothing to run for it."""
    job, invoice = a_job(S.COMPLETED), an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED)
    untyped = dataclasses.replace(submission_failed(), error_type=None)
    decision = decide(job, invoice, untyped, EARLY)
    assert decision.step is KEEP
    after = preview(job, decision, at(EARLY))
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.SUBMISSION_FAILED
    assert "admin interface" in after.attention.message
    assert after.attention.action == ""


def test_our_submission_parked_again_after_the_last_recovery_needs_attention() -> None:
    job = a_job(S.COMPLETED, recoveries=POLICY.max_recoveries)
    invoice = an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED)
    decision = decide(job, invoice, submission_failed(), EARLY)
    assert decision.step is KEEP
    after = preview(job, decision, at(EARLY))
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.SUBMISSION_FAILED
    assert after.attention.action == "agentjobs recover job-1"
    assert "recover it with `agentjobs recover job-1` before" in after.attention.message
    assert types(decision) == [EventType.ATTENTION_NEEDED]


def test_one_recovery_less_than_the_maximum_still_recovers() -> None:
    job = a_job(S.COMPLETED, recoveries=POLICY.max_recoveries - 1)
    invoice = an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED)
    assert decide(job, invoice, submission_failed(), EARLY).step == Scheduled(Step.RECOVER, EARLY)


@pytest.mark.parametrize(
    "parked",
    [
        # The service's own withdrawal failed: no result hash in the error.
        payment(
            State.RESULT_SUBMITTED,
            Action.WAITING_FOR_MANUAL_ACTION,
            result_hash=RESULT_HASH,
            error_type="Unknown",
            error_note="Withdraw failed",
        ),
        # Someone else's hash.
        payment(
            State.FUNDS_LOCKED,
            Action.WAITING_FOR_MANUAL_ACTION,
            next_action_hash=OTHER_HASH,
            error_type="Unknown",
            error_note="Submitting result failed",
        ),
    ],
    ids=["withdraw-failed", "another-hash"],
)
def test_an_error_that_is_not_our_submission_needs_attention(parked: Payment) -> None:
    job = a_job(S.COMPLETED)
    invoice = an_invoice(InvoiceStatus.CONFIRMED, parked.on_chain_state)
    decision = decide(job, invoice, parked, UNLOCK + HOUR)
    assert decision.step is KEEP
    after = preview(job, decision, at(UNLOCK + HOUR))
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.PAYMENT_ERROR
    assert after.attention.action == "agentjobs recover job-1"
    assert decision.invoice is not None and decision.invoice.next_action


def test_the_same_error_twice_decides_nothing() -> None:
    job, invoice = a_job(S.COMPLETED), an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED)
    decision = decide(job, invoice, submission_failed(), LAST_SUBMIT)
    job, invoice2 = apply(job, invoice, decision, at(LAST_SUBMIT))
    assert decide(job, invoice2, submission_failed(), LAST_SUBMIT + MINUTE).writes_nothing


def test_a_new_error_note_updates_the_attention_without_a_second_event() -> None:
    job, invoice = a_job(S.COMPLETED), an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED)
    job, invoice2 = apply(
        job, invoice, decide(job, invoice, submission_failed(), LAST_SUBMIT), at(LAST_SUBMIT)
    )
    worse = payment(
        State.FUNDS_LOCKED,
        Action.WAITING_FOR_MANUAL_ACTION,
        next_action_hash=RESULT_HASH,
        error_type="Unknown",
        error_note="Submitting result failed: wallet empty",
    )
    decision = decide(job, invoice2, worse, LAST_SUBMIT + MINUTE)
    assert decision.invoice == InvoiceChange(
        next_action="Unknown: Submitting result failed: wallet empty"
    )
    assert EventType.ATTENTION_NEEDED not in types(decision)
    assert "wallet empty" in decision.fields["attention"].message


@pytest.mark.parametrize(
    "reason",
    [
        AttentionReason.SUBMISSION_FAILED,
        AttentionReason.PAYMENT_ERROR,
        AttentionReason.REFUND_FAILED,
    ],
)
def test_an_error_cleared_clears_its_attention(reason: str) -> None:
    job = a_job(S.COMPLETED, attention=attention(reason))
    invoice = an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED, next_action=ERROR_TEXT)
    recovered = payment(
        State.FUNDS_LOCKED, Action.SUBMIT_RESULT_REQUESTED, next_action_hash=RESULT_HASH
    )
    decision = decide(job, invoice, recovered, EARLY)
    assert decision.invoice == InvoiceChange(next_action="")
    assert [e.detail for e in decision.events] == ["the error is cleared"]
    assert decision.fields["attention"] is None
    assert decision.step is KEEP


@pytest.mark.parametrize("reason", [AttentionReason.DISPUTED, AttentionReason.API_KEY_MISMATCH])
def test_an_error_cleared_keeps_an_attention_of_another_kind(reason: str) -> None:
    job = a_job(S.COMPLETED, attention=attention(reason))
    invoice = an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED, next_action=ERROR_TEXT)
    decision = decide(job, invoice, payment(State.FUNDS_LOCKED), EARLY)
    assert "attention" not in decision.fields


@pytest.mark.parametrize(
    ("state", "settled_as"),
    [
        (State.REFUND_WITHDRAWN, InvoiceStatus.REFUNDED),
        (State.WITHDRAWN, InvoiceStatus.WITHDRAWN),
        (State.DISPUTED_WITHDRAWN, InvoiceStatus.DISPUTE_RESOLVED),
    ],
)
def test_money_settled_under_a_pending_action_is_booked_and_its_note_only_kept(
    state: str, settled_as: InvoiceStatus
) -> None:
    """Upstream tx-sync parks a pending seller action that the chain overtook
    (SubmitResultRequested + RefundWithdrawn, e.g. a submission never picked up) in
    WaitingForManualAction with "Unexpected state change detected": the money has moved
    for good, so nothing is recovered and no person is asked."""
    job = a_job(S.COMPLETED)
    invoice = an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED)
    overtaken = payment(
        state,
        Action.WAITING_FOR_MANUAL_ACTION,
        next_action_hash=RESULT_HASH,
        error_type="Unknown",
        error_note="Unexpected state change detected. Possible a action could not be "
        "executed in time",
    )
    now = DISPUTE_UNLOCK + MINUTE
    decision = decide(job, invoice, overtaken, now)
    assert decision.invoice is not None
    assert (decision.invoice.status, decision.invoice.on_chain_state) == (settled_as, state)
    assert decision.invoice.next_action is not None
    assert "Unexpected state change" in decision.invoice.next_action
    assert decision.step is None
    assert EventType.ATTENTION_NEEDED not in types(decision)
    assert decision.status is None


def wallet_timeout(state: str, **kw: Any) -> Payment:
    """Upstream's wallet-timeouts job: an *Initiated* action whose transaction is still
    pending after 7 min goes back to WaitingForExternalAction with an errorType
    (src/services/transactions/wallet-timeouts/service.ts)."""
    return payment(
        state,
        Action.WAITING_FOR_EXTERNAL_ACTION,
        error_type="Unknown",
        error_note="Timeout when waiting for transaction",
        **kw,
    )


@pytest.mark.parametrize(
    ("job", "invoice", "timed_out"),
    [
        pytest.param(
            a_job(S.COMPLETED),
            an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED),
            wallet_timeout(State.FUNDS_LOCKED, next_action_hash=RESULT_HASH),
            id="our-submission",
        ),
        pytest.param(
            a_job(S.COMPLETED),
            an_invoice(InvoiceStatus.CONFIRMED, State.RESULT_SUBMITTED),
            wallet_timeout(State.RESULT_SUBMITTED, result_hash=RESULT_HASH),
            id="the-withdrawal",
        ),
    ],
)
def test_a_wallet_timeout_is_not_recovered_nor_sent_to_recover(
    job: Job, invoice: Invoice, timed_out: Payment
) -> None:
    """error-state-recovery answers 400 to a payment not in WaitingForManualAction, and
    `agentjobs recover` refuses it (NOTHING_TO_RECOVER): neither a RECOVER step nor that
    command may be what the rule offers. The transaction may still confirm: a person
    looks, and the job's step goes on."""
    now = T0_MS + HOUR
    decision = decide(job, invoice, timed_out, now)
    assert decision.step is KEEP
    assert decision.invoice == InvoiceChange(
        next_action="Unknown: Timeout when waiting for transaction"
    )
    after = preview(job, decision, at(now))
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.PAYMENT_ERROR
    assert after.attention.action == ""
    assert "Timeout when waiting for transaction" in after.attention.message
    with pytest.raises(OperationNotPossibleError):
        on_operator_recover(after, timed_out, at(now), POLICY)


def test_a_manual_action_without_an_error_type_asks_a_person_with_no_command() -> None:
    """error-state-recovery answers 400 "not in an error state" without an errorType:
    no command of ours could clear it."""
    job = a_job(S.COMPLETED)
    invoice = an_invoice(InvoiceStatus.CONFIRMED, State.RESULT_SUBMITTED)
    parked = payment(
        State.RESULT_SUBMITTED,
        Action.WAITING_FOR_MANUAL_ACTION,
        result_hash=RESULT_HASH,
        error_note="State change detected after manual action was required",
    )
    decision = decide(job, invoice, parked, UNLOCK + HOUR)
    assert decision.step is KEEP
    after = preview(job, decision, at(UNLOCK + HOUR))
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.PAYMENT_ERROR
    assert after.attention.action == ""
    assert "admin interface" in after.attention.message


def test_a_state_change_and_an_error_at_once_are_both_recorded() -> None:
    """FundsOrDatumInvalid arrives parked in WaitingForManualAction (upstream tx-sync)."""
    job, invoice = a_job(S.AWAITING_PAYMENT), an_invoice(for_status=S.AWAITING_PAYMENT)
    decision = decide(job, invoice, invalid_lock(), EARLY)
    assert decision.status is S.FAILED
    assert decision.invoice == InvoiceChange(
        status=InvoiceStatus.INVALID,
        on_chain_state=State.FUNDS_OR_DATUM_INVALID,
        next_action="error: Block time is after pay by time. This is a timed out purchase.",
    )
    job2, invoice2 = apply(job, invoice, decision, at(EARLY))
    assert decide(job2, invoice2, invalid_lock(), EARLY + MINUTE).writes_nothing


# =====================================================================================
# on_follow: the FOLLOW step looked at the payment
# =====================================================================================
def follow(job: Job, invoice: Invoice | None, paid: Payment | None, now_ms: int) -> Decision:
    return on_follow(job, invoice, paid, at(now_ms), POLICY)


def queued(action: str = Action.SUBMIT_RESULT_REQUESTED) -> Payment:
    return payment(State.FUNDS_LOCKED, action, next_action_hash=RESULT_HASH)


SUBMITTED = an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED)


def test_a_queued_submission_is_followed_soon() -> None:
    decision = follow(a_job(S.COMPLETED, attempt=1), SUBMITTED, queued(), EARLY)
    assert decision.step == Scheduled(Step.FOLLOW, EARLY + 4 * POLICY.backoff(1))
    assert "attention" not in decision.fields


@pytest.mark.parametrize(("attempt", "delay"), [(1, 4_000), (3, 16_000), (5, 64_000), (9, 240_000)])
def test_following_a_queued_submission_backs_off_up_to_the_pickup_interval(
    attempt: int, delay: int
) -> None:
    decision = follow(a_job(S.COMPLETED, attempt=attempt), SUBMITTED, queued(), EARLY)
    assert decision.step == Scheduled(Step.FOLLOW, EARLY + min(delay, POLICY.chain_pickup_ms))


def test_following_a_queued_submission_never_waits_longer_than_the_pickup_interval() -> None:
    decision = follow(a_job(S.COMPLETED, attempt=30), SUBMITTED, queued(), EARLY)
    longest = min(4 * POLICY.retry_max_ms, POLICY.chain_pickup_ms)
    assert decision.step == Scheduled(Step.FOLLOW, EARLY + longest)
    assert longest <= POLICY.chain_pickup_ms


def test_a_submission_initiated_is_followed_too() -> None:
    decision = follow(
        a_job(S.COMPLETED, attempt=1), SUBMITTED, queued(Action.SUBMIT_RESULT_INITIATED), EARLY
    )
    assert decision.step == Scheduled(Step.FOLLOW, EARLY + 4_000)


def test_a_submission_not_picked_up_by_submit_result_time_minus_5_min_needs_attention() -> None:
    """The chain job drops requests less than 5 min before submitResultTime."""
    now = SUBMIT_BY - 5 * MINUTE
    job = a_job(S.COMPLETED)
    decision = follow(job, SUBMITTED, queued(), now)
    after = preview(job, decision, at(now))
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.SUBMISSION_NOT_PICKED_UP
    assert "buyer can withdraw" in after.attention.message
    assert decision.step == Scheduled(Step.FOLLOW, SUBMIT_BY + LAG)


def test_a_submission_still_queued_just_before_the_cutoff_needs_no_attention() -> None:
    decision = follow(a_job(S.COMPLETED), SUBMITTED, queued(), SUBMIT_BY - 5 * MINUTE - 1)
    assert "attention" not in decision.fields
    assert isinstance(decision.step, Scheduled) and decision.step.step is Step.FOLLOW


def test_a_submission_initiated_past_the_cutoff_is_not_called_lost() -> None:
    """The transaction is built and on its way; its validity ends before submitResultTime."""
    decision = follow(
        a_job(S.COMPLETED), SUBMITTED, queued(Action.SUBMIT_RESULT_INITIATED), SUBMIT_BY - MINUTE
    )
    assert "attention" not in decision.fields


def test_a_submission_that_vanished_past_the_cutoff_needs_attention() -> None:
    job = a_job(S.COMPLETED)
    now = SUBMIT_BY - 4 * MINUTE
    decision = follow(job, SUBMITTED, payment(State.FUNDS_LOCKED), now)
    after = preview(job, decision, at(now))
    assert after.attention is not None


@pytest.mark.parametrize("state", [State.REFUND_REQUESTED, State.DISPUTED])
def test_a_submission_queued_on_a_refund_request_or_dispute_is_followed_the_same(
    state: str,
) -> None:
    """submit-result is taken from RefundRequested and Disputed too; the chain job's
    5-minute cutoff is the same there."""
    job = a_job(S.COMPLETED)
    invoice = an_invoice(InvoiceStatus.SUBMITTED, state)
    waiting = payment(state, Action.SUBMIT_RESULT_REQUESTED, next_action_hash=RESULT_HASH)
    early = follow(job, invoice, waiting, EARLY)
    assert early.step == Scheduled(Step.FOLLOW, EARLY + 4 * POLICY.backoff(max(job.attempt, 1)))
    now = SUBMIT_BY - 5 * MINUTE
    late = follow(job, invoice, waiting, now)
    assert attention_of(job, late, now) == AttentionReason.SUBMISSION_NOT_PICKED_UP
    assert late.step == Scheduled(Step.FOLLOW, SUBMIT_BY + LAG)


def test_a_submission_that_vanished_from_a_refund_request_needs_attention() -> None:
    job = a_job(S.COMPLETED)
    invoice = an_invoice(InvoiceStatus.SUBMITTED, State.REFUND_REQUESTED)
    decision = follow(job, invoice, payment(State.REFUND_REQUESTED), EARLY)
    assert attention_of(job, decision, EARLY) == AttentionReason.SUBMISSION_NOT_PICKED_UP
    assert decision.step == Scheduled(Step.FOLLOW, SUBMIT_BY)


def test_a_result_on_chain_already_recorded_is_looked_at_after_unlock_time() -> None:
    job = a_job(S.COMPLETED)
    invoice = an_invoice(InvoiceStatus.CONFIRMED, State.RESULT_SUBMITTED)
    decision = follow(job, invoice, payment(State.RESULT_SUBMITTED, result_hash=RESULT_HASH), EARLY)
    assert decision.step == Scheduled(Step.FOLLOW, UNLOCK + LAG)


def test_a_result_on_chain_first_seen_by_follow_is_looked_at_after_unlock_time() -> None:
    decision = follow(
        a_job(S.COMPLETED),
        SUBMITTED,
        payment(State.RESULT_SUBMITTED, result_hash=RESULT_HASH),
        EARLY,
    )
    assert decision.invoice is not None and decision.invoice.status is InvoiceStatus.CONFIRMED
    assert decision.step == Scheduled(Step.FOLLOW, UNLOCK + LAG)


def test_a_withdrawal_in_progress_is_followed_like_the_result_on_chain() -> None:
    invoice = an_invoice(InvoiceStatus.CONFIRMED, State.RESULT_SUBMITTED)
    withdrawing = payment(
        State.RESULT_SUBMITTED, Action.WITHDRAW_REQUESTED, result_hash=RESULT_HASH
    )
    now = UNLOCK + LAG + MINUTE
    decision = follow(a_job(S.COMPLETED), invoice, withdrawing, now)
    assert decision.step == Scheduled(Step.FOLLOW, now + LAG)


def test_a_late_withdrawal_needs_attention() -> None:
    job = a_job(S.COMPLETED)
    invoice = an_invoice(InvoiceStatus.CONFIRMED, State.RESULT_SUBMITTED)
    late = 4 * LAG + 1
    now = UNLOCK + LAG + late
    decision = follow(job, invoice, payment(State.RESULT_SUBMITTED, result_hash=RESULT_HASH), now)
    after = preview(job, decision, at(now))
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.WITHDRAWAL_LATE
    assert decision.step == Scheduled(Step.FOLLOW, now + late)


def test_a_withdrawal_not_yet_late_needs_no_attention() -> None:
    invoice = an_invoice(InvoiceStatus.CONFIRMED, State.RESULT_SUBMITTED)
    now = UNLOCK + LAG + 4 * LAG
    decision = follow(
        a_job(S.COMPLETED), invoice, payment(State.RESULT_SUBMITTED, result_hash=RESULT_HASH), now
    )
    assert "attention" not in decision.fields
    assert decision.step == Scheduled(Step.FOLLOW, now + 4 * LAG)


@pytest.mark.parametrize("state", sorted(SETTLED_STATES))
def test_a_settled_payment_has_nothing_left_to_follow(state: str) -> None:
    invoice = an_invoice(InvoiceStatus.WITHDRAWN, state)
    decision = follow(a_job(S.COMPLETED), invoice, payment(state, Action.NONE), UNLOCK + HOUR)
    assert decision.step is None


def test_a_refund_authorized_has_nothing_left_to_follow() -> None:
    invoice = an_invoice(InvoiceStatus.PAID, State.REFUND_AUTHORIZED, source=V2)
    decision = follow(
        a_job(S.FAILED, V2), invoice, payment(State.REFUND_AUTHORIZED, source=V2), EARLY
    )
    assert decision.step is None


def test_a_dispute_is_left_to_its_attention() -> None:
    invoice = an_invoice(InvoiceStatus.DISPUTED, State.DISPUTED)
    decision = follow(
        a_job(S.COMPLETED), invoice, payment(State.DISPUTED, result_hash=RESULT_HASH), EARLY
    )
    assert decision.step is None


@pytest.mark.parametrize(
    "action", [Action.AUTHORIZE_REFUND_REQUESTED, Action.AUTHORIZE_REFUND_INITIATED]
)
@pytest.mark.parametrize("source", SOURCES)
def test_a_refund_of_a_dispute_on_its_way_is_left_to_the_diff(
    action: str, source: PaymentSourceType
) -> None:
    """The chain job may wait out the seller's cooldown (~24 min): the diff brings what
    it does (V1 RefundRequested, V2 RefundAuthorized, or an error)."""
    job = a_job(S.COMPLETED, source)
    invoice = an_invoice(InvoiceStatus.DISPUTED, State.DISPUTED, source=source)
    refunding = payment(State.DISPUTED, action, result_hash=RESULT_HASH, source=source)
    decision = follow(job, invoice, refunding, EARLY)
    assert decision == Decision(step=None)


def test_v2_a_refund_of_a_refund_request_on_its_way_is_looked_at_every_ten_minutes() -> None:
    job = a_job(S.FAILED, V2, step=Step.FOLLOW, run_at=EARLY)
    invoice = an_invoice(InvoiceStatus.PAID, State.REFUND_REQUESTED, source=V2)
    refunding = payment(State.REFUND_REQUESTED, Action.AUTHORIZE_REFUND_REQUESTED, source=V2)
    decision = follow(job, invoice, refunding, EARLY)
    assert decision == Decision(step=Scheduled(Step.FOLLOW, EARLY + 10 * POLICY.retry_max_ms))


@pytest.mark.parametrize("action", [Action.WAITING_FOR_EXTERNAL_ACTION, Action.WITHDRAW_REQUESTED])
def test_v2_a_withdrawal_authorized_is_looked_at_until_it_is_withdrawn(action: str) -> None:
    """WithdrawAuthorized is withdrawn without waiting for unlockTime."""
    job = a_job(S.COMPLETED, V2)
    invoice = an_invoice(InvoiceStatus.CONFIRMED, State.WITHDRAW_AUTHORIZED, source=V2)
    authorized = payment(State.WITHDRAW_AUTHORIZED, action, result_hash=RESULT_HASH, source=V2)
    decision = follow(job, invoice, authorized, EARLY)
    assert decision == Decision(step=Scheduled(Step.FOLLOW, EARLY + 10 * POLICY.retry_max_ms))


def test_funds_waiting_for_the_buyer_are_looked_at_every_ten_minutes() -> None:
    invoice = an_invoice(InvoiceStatus.PAID, State.FUNDS_LOCKED)
    now = SUBMIT_BY + MINUTE
    decision = follow(a_job(S.FAILED, V1), invoice, payment(State.FUNDS_LOCKED), now)
    assert decision.step == Scheduled(Step.FOLLOW, now + 10 * POLICY.retry_max_ms)


def test_a_payment_the_service_no_longer_knows_needs_attention() -> None:
    job = a_job(S.COMPLETED)
    decision = follow(job, SUBMITTED, None, EARLY)
    after = preview(job, decision, at(EARLY))
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.PAYMENT_UNKNOWN
    assert BID in after.attention.message
    assert decision.step is None
    # Asked again: the same attention, no second event.
    again = follow(after, SUBMITTED, None, EARLY + MINUTE)
    assert types(again) == []


# =====================================================================================
# on_expiry_check: payByTime + grace passed
# =====================================================================================
EXPIRY = PAY_BY + GRACE


def expire(job: Job, invoice: Invoice | None, paid: Payment | None, now_ms: int) -> Decision:
    return on_expiry_check(job, invoice, paid, at(now_ms), POLICY)


PENDING = an_invoice(for_status=S.AWAITING_PAYMENT)


@pytest.mark.parametrize("paid", [payment(None), None], ids=["unpaid", "unknown-404"])
def test_an_unpaid_job_expires(paid: Payment | None) -> None:
    decision = expire(a_job(S.AWAITING_PAYMENT), PENDING, paid, EXPIRY)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "PAYMENT_EXPIRED"
    assert decision.invoice == InvoiceChange(status=InvoiceStatus.EXPIRED)
    assert types(decision) == [EventType.PAYMENT_EXPIRED]
    assert decision.warnings == ()
    assert decision.step is None


def test_an_unpaid_job_looked_at_before_the_grace_is_rescheduled() -> None:
    decision = expire(a_job(S.AWAITING_PAYMENT), PENDING, payment(None), PAY_BY + 1)
    assert decision == Decision(step=Scheduled(Step.EXPIRE, EXPIRY))


@pytest.mark.parametrize("source", SOURCES)
def test_a_lock_found_at_expiry_starts_the_job(source: PaymentSourceType) -> None:
    decision = expire(
        a_job(S.AWAITING_PAYMENT, source), PENDING, payment(State.FUNDS_LOCKED), EXPIRY
    )
    assert decision.status is S.RUNNING
    assert decision.step == Scheduled(Step.RUN, EXPIRY)


def test_a_lock_the_invoice_shows_but_the_job_never_started_starts_it() -> None:
    invoice = an_invoice(InvoiceStatus.PAID, State.FUNDS_LOCKED)
    decision = expire(a_job(S.AWAITING_PAYMENT), invoice, payment(State.FUNDS_LOCKED), EXPIRY)
    assert decision.status is S.RUNNING
    assert decision.step == Scheduled(Step.RUN, EXPIRY)


def test_a_lock_found_at_expiry_with_no_time_left_fails_the_job() -> None:
    decision = expire(a_job(S.AWAITING_PAYMENT), PENDING, payment(State.FUNDS_LOCKED), DEADLINE)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "NO_TIME_TO_RUN"


def test_an_invalid_lock_found_at_expiry_fails_the_job() -> None:
    decision = expire(
        a_job(S.AWAITING_PAYMENT), PENDING, payment(State.FUNDS_OR_DATUM_INVALID), EXPIRY
    )
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "FUNDS_OR_DATUM_INVALID"


@pytest.mark.parametrize("status", [S.RUNNING, S.COMPLETED, S.FAILED])
def test_a_job_no_longer_awaiting_payment_has_nothing_to_expire(status: JobStatus) -> None:
    decision = expire(
        a_job(status), an_invoice(for_status=status), payment(State.FUNDS_LOCKED), EXPIRY
    )
    assert decision == Decision(step=None)


def test_expiry_is_idempotent() -> None:
    job = a_job(S.AWAITING_PAYMENT)
    decision = expire(job, PENDING, payment(None), EXPIRY)
    after, invoice = apply(job, PENDING, decision, at(EXPIRY))
    assert invoice is not None and invoice.status is InvoiceStatus.EXPIRED
    assert expire(after, invoice, payment(None), EXPIRY + MINUTE) == Decision(step=None)
    assert on_payment(after, invoice, payment(None), at(EXPIRY), POLICY).writes_nothing
