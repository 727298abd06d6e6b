"""failure.py: a job fails, and what becomes of the buyer's money is said once.

The contracts (masumi-payment-service 0.28.0):
- V1 `smart-contracts/payment/state_machine_diagram.md`: AuthorizeRefund only from
  Disputed; WithdrawRefund (buyer) from FundsLocked / RefundRequested after
  submit_result_time. No seller call gives locked funds back.
- V2 `smart-contracts/payment-v2/state_machine_diagram.md`: AuthorizeRefund from
  FundsLocked, ResultSubmitted, RefundRequested, Disputed; WithdrawRefund from FundsLocked
  / RefundRequested after submit_result_time, from RefundAuthorized at once.
- The payment service's route `src/routes/api/payments/authorize-refund/index.ts`
  (lines 37-44) takes authorize-refund only while onChainState is Disputed or
  RefundRequested with NextAction WaitingForExternalAction, for V1 and V2 alike.
"""

from __future__ import annotations

import pytest

from agentjobs.server.domain.events import EventType
from agentjobs.server.domain.invoice import Invoice, InvoiceStatus
from agentjobs.server.domain.job import Job, JobError
from agentjobs.server.domain.lifecycle import Decision, InvoiceChange, failure, preview
from agentjobs.server.domain.payment import PaymentSourceType
from agentjobs.server.domain.status import JobStatus
from agentjobs.server.domain.steps import Scheduled, Step
from tests.domain.builders import (
    BID,
    MINUTE,
    POLICY,
    SOURCES,
    SUBMIT_BY,
    T0_MS,
    V1,
    V2,
    S,
    State,
    a_job,
    an_invoice,
    at,
    free_job,
    minutes,
)

NOW_MS = T0_MS + minutes(40)
PAID_STATUSES = [S.RUNNING, S.AWAITING_INPUT]


def fail(job: Job, invoice: Invoice | None) -> Decision:
    return failure(job, invoice, "AGENT_FAILED", "the agent raised", NOW_MS, POLICY)


def paid(state: str, source: PaymentSourceType = V1) -> Invoice:
    return an_invoice(InvoiceStatus.PAID, state, source=source)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("status", PAID_STATUSES)
def test_the_job_fails_with_its_reason(status: JobStatus, source: PaymentSourceType) -> None:
    job = a_job(status, source)
    decision = failure(job, paid(State.FUNDS_LOCKED, source), "X_FAILED", "why", NOW_MS, POLICY)
    assert decision.status is S.FAILED
    assert decision.fields["error"] == JobError(reason="X_FAILED", message="why")
    assert [(e.type, e.detail, dict(e.data)) for e in decision.events] == [
        (EventType.FAILED, "why", {"reason": "X_FAILED"})
    ]
    preview(job, decision, at(NOW_MS))  # a legal transition


def test_the_failure_event_can_be_named() -> None:
    decision = failure(
        a_job(S.AWAITING_PAYMENT),
        an_invoice(for_status=S.AWAITING_PAYMENT),
        "PAYMENT_EXPIRED",
        "late",
        NOW_MS,
        POLICY,
        event=EventType.PAYMENT_EXPIRED,
    )
    assert [e.type for e in decision.events] == [EventType.PAYMENT_EXPIRED]


# -- V1: no seller call returns the money; the buyer withdraws after submitResultTime ----------
@pytest.mark.parametrize("state", [State.FUNDS_LOCKED, State.REFUND_REQUESTED])
@pytest.mark.parametrize("status", PAID_STATUSES)
def test_v1_paid_failure_says_the_buyer_withdraws_after_submit_result_time(
    status: JobStatus, state: str
) -> None:
    decision = fail(a_job(status, V1), paid(state, V1))
    assert len(decision.warnings) == 1
    warning = decision.warnings[0]
    assert "paid job failed (AGENT_FAILED: the agent raised)" in warning
    assert "until submitResultTime" in warning and "withdraw" in warning
    assert "no seller action returns them on V1" in warning
    assert "5000000 lovelace" in warning and BID in warning
    # The payment is followed until the buyer has taken the money back.
    assert decision.step == Scheduled(Step.FOLLOW, SUBMIT_BY + MINUTE)


def test_v1_failure_after_submit_result_time_follows_at_once() -> None:
    late = SUBMIT_BY + minutes(30)
    decision = failure(a_job(S.RUNNING, V1), paid(State.FUNDS_LOCKED), "X", "y", late, POLICY)
    assert decision.step == Scheduled(Step.FOLLOW, late + MINUTE)


# -- V2: the seller authorizes the refund, where the payment service takes it -------------------
@pytest.mark.parametrize("status", PAID_STATUSES)
def test_v2_paid_failure_after_a_refund_request_authorizes_the_refund(status: JobStatus) -> None:
    decision = fail(a_job(status, V2), paid(State.REFUND_REQUESTED, V2))
    assert decision.step == Scheduled(Step.REFUND, NOW_MS)
    assert len(decision.warnings) == 1
    warning = decision.warnings[0]
    assert "a refund is being authorized (V2)" in warning and "nothing is earned" in warning


def test_v2_paid_failure_with_funds_locked_is_followed_until_the_buyer_withdraws() -> None:
    decision = fail(a_job(S.RUNNING, V2), paid(State.FUNDS_LOCKED, V2))
    assert decision.step == Scheduled(Step.FOLLOW, SUBMIT_BY + MINUTE)
    assert len(decision.warnings) == 1
    assert "until submitResultTime" in decision.warnings[0]


# -- states past the buyer's reach: followed until they settle ---------------------------------
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("state", [State.RESULT_SUBMITTED, State.DISPUTED])
def test_paid_failure_with_a_result_on_chain_follows_the_money(
    state: str, source: PaymentSourceType
) -> None:
    decision = fail(a_job(S.RUNNING, source), paid(state, source))
    assert decision.step == Scheduled(Step.FOLLOW, NOW_MS + POLICY.retry_max_ms)
    assert len(decision.warnings) == 1
    assert f"is {state}" in decision.warnings[0]


def test_the_invoice_change_given_decides_the_state_the_money_is_in() -> None:
    """A failure decided together with a new state (e.g. the refund request that fails
    the job) reads the money's state from that change, not from the stale invoice."""
    change = InvoiceChange(status=InvoiceStatus.PAID, on_chain_state=State.REFUND_REQUESTED)
    decision = failure(
        a_job(S.AWAITING_PAYMENT, V2),
        an_invoice(for_status=S.AWAITING_PAYMENT, source=V2),
        "REFUND_REQUESTED",
        "x",
        NOW_MS,
        POLICY,
        invoice_change=change,
    )
    assert decision.step == Scheduled(Step.REFUND, NOW_MS)
    assert decision.invoice == change
    assert len(decision.warnings) == 1


# -- no money of the buyer's: no warning ---------------------------------------------------------
def test_unpaid_failure_warns_nothing_and_expires_the_pending_invoice() -> None:
    decision = fail(a_job(S.AWAITING_PAYMENT), an_invoice(for_status=S.AWAITING_PAYMENT))
    assert decision.warnings == ()
    assert decision.invoice == InvoiceChange(status=InvoiceStatus.EXPIRED)
    assert decision.step is None
    assert decision.status is S.FAILED


def test_free_job_failure_warns_nothing_and_touches_no_invoice() -> None:
    decision = fail(free_job(S.RUNNING), None)
    assert decision.warnings == ()
    assert decision.invoice is None
    assert decision.step is None


def test_failure_without_an_invoice_warns_nothing() -> None:
    decision = fail(a_job(S.RUNNING), None)
    assert decision.warnings == ()
    assert decision.step is None


def test_a_paid_invoice_is_not_expired_by_a_failure() -> None:
    decision = fail(a_job(S.RUNNING), paid(State.FUNDS_LOCKED))
    assert decision.invoice is None


@pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED])
def test_a_finished_job_does_not_fail_again(status: JobStatus) -> None:
    assert fail(a_job(status), paid(State.FUNDS_LOCKED)).writes_nothing
