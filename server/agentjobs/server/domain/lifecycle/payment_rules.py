"""What a job does when its payment changes: the diff, a follow-up look, the expiry check.

Idempotent by construction: the invoice records the on-chain state and the last payment
error seen, and a payment state that shows nothing new decides nothing. So a page of the
diff applied twice, or by two monitors at once, writes nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from agentjobs.server.domain.errors import DomainError
from agentjobs.server.domain.events import EventType
from agentjobs.server.domain.invoice import Invoice, InvoiceStatus
from agentjobs.server.domain.job import Job, PaymentTerms
from agentjobs.server.domain.lifecycle.attention import (
    AttentionReason,
    attention_cleared,
    needs_attention,
)
from agentjobs.server.domain.lifecycle.decision import (
    NOTHING,
    Decision,
    InvoiceChange,
    NewEvent,
    preview,
)
from agentjobs.server.domain.lifecycle.failure import failure, is_v2, iso, money_after_failure
from agentjobs.server.domain.lifecycle.policy import Policy
from agentjobs.server.domain.payment import (
    SETTLED_STATES,
    NextAction,
    OnChainState,
    PaymentState,
)
from agentjobs.server.domain.status import JobStatus
from agentjobs.server.domain.steps import KEEP, Scheduled, Step


class PaymentMismatchError(DomainError):
    """The payment service answered a job's intent with a second, different payment."""

    reason = "PAYMENT_MISMATCH"


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def error_text(payment: PaymentState) -> str:
    """The payment's error as the invoice records it ("" when it has none)."""
    if not payment.needs_manual_action and not payment.error_note:
        return ""
    return f"{payment.error_type or 'error'}: {payment.error_note or 'no note'}"


# -- the payment service answered StartJob ------------------------------------------
def on_payment_requested(job: Job, terms: PaymentTerms, now: datetime, policy: Policy) -> Decision:
    """Attach the payment the service created for the job's intent."""
    if job.blockchain_identifier:
        if job.blockchain_identifier == terms.blockchain_identifier:
            return NOTHING
        raise PaymentMismatchError(
            f"job {job.job_id} already has payment {job.blockchain_identifier}; the payment "
            f"service also created {terms.blockchain_identifier} for it"
        )
    fields = {
        "blockchain_identifier": terms.blockchain_identifier,
        "seller_vkey": terms.seller_vkey,
        "agent_identifier": terms.agent_identifier,
        "pay_by_time": terms.pay_by_time,
        "submit_result_time": terms.submit_result_time,
        "unlock_time": terms.unlock_time,
        "external_dispute_unlock_time": terms.external_dispute_unlock_time,
        "payment_source_type": terms.source_type,
        "payment_source_index": terms.source_index,
        "deadline": policy.agent_deadline(terms.submit_result_time),
    }
    return Decision(
        fields=fields,
        new_invoice=terms.amounts,
        events=(
            NewEvent(
                EventType.PAYMENT_REQUESTED,
                "",
                {
                    "blockchain_identifier": terms.blockchain_identifier,
                    "pay_by_time": terms.pay_by_time,
                    "submit_result_time": terms.submit_result_time,
                },
            ),
        ),
        step=Scheduled(Step.EXPIRE, terms.pay_by_time + policy.expiry_grace_ms),
    )


# -- the payment changed -------------------------------------------------------------
def on_payment(
    job: Job, invoice: Invoice | None, payment: PaymentState, now: datetime, policy: Policy
) -> Decision:
    """React to the payment as the service shows it now; NOTHING if nothing is new."""
    if invoice is None:
        return NOTHING
    state = payment.on_chain_state
    error = error_text(payment)
    state_changed = state is not None and state != invoice.on_chain_state
    error_changed = error != invoice.next_action
    if not state_changed and not error_changed:
        return NOTHING
    decision = NOTHING
    if state_changed:
        # The invoice always records the state, whatever else the change does.
        decision = Decision(invoice=InvoiceChange(on_chain_state=state))
        taken = _taken_unrecorded(job, payment)
        decision = decision.then(taken)
        after = preview(job, taken, now) if not taken.writes_nothing else job
        decision = decision.then(_state_changed(after, invoice, payment, now, policy))
    if error_changed:
        after = preview(job, decision, now)
        decision = decision.then(_error_changed(after, invoice, payment, error, now, policy))
    return decision


def _taken_unrecorded(job: Job, payment: PaymentState) -> Decision:
    """Our result hash is on chain but we stopped before we wrote down that the service
    took it (a lost answer, a crash): the job is completed, whatever comes next."""
    if (
        job.status is not JobStatus.RUNNING
        or not job.result_hash
        or payment.result_hash != job.result_hash
    ):
        return NOTHING
    return Decision(
        status=JobStatus.COMPLETED,
        invoice=InvoiceChange(status=InvoiceStatus.CONFIRMED),
        events=(
            NewEvent(
                EventType.RESULT_SUBMITTED, "found on chain", {"result_hash": job.result_hash}
            ),
            NewEvent(EventType.COMPLETED, ""),
        ),
    )


def _state_changed(
    job: Job, invoice: Invoice, payment: PaymentState, now: datetime, policy: Policy
) -> Decision:
    state = payment.on_chain_state
    now_ms = ms(now)
    if state == OnChainState.FUNDS_LOCKED:
        return _funds_locked(job, invoice, payment, now, policy)
    if state == OnChainState.FUNDS_OR_DATUM_INVALID:
        change = InvoiceChange(status=InvoiceStatus.INVALID, on_chain_state=state)
        note = payment.error_note or "the payment service found them invalid"
        message = (
            f"the buyer's funds or datum for payment {job.blockchain_identifier} are "
            f"invalid ({note}): nothing is locked for us and the job is not run; the "
            "buyer's transaction is theirs to recover"
        )
        flagged = needs_attention(job, AttentionReason.FUNDS_OR_DATUM_INVALID, message, "", now)
        if job.is_terminal:
            return Decision(invoice=change).then(flagged)
        return failure(
            job,
            None,
            "FUNDS_OR_DATUM_INVALID",
            "the buyer's funds or datum were invalid; the job was not run",
            now_ms,
            policy,
            invoice_change=change,
        ).then(flagged)
    if state == OnChainState.RESULT_SUBMITTED:
        return _result_on_chain(job, invoice, payment, now, policy)
    if state == OnChainState.REFUND_REQUESTED:
        return _refund_requested(job, invoice, payment, now, policy)
    if state == OnChainState.DISPUTED:
        change = InvoiceChange(status=InvoiceStatus.DISPUTED, on_chain_state=state)
        action = f"agentjobs refund {job.job_id}"
        message = (
            "the buyer disputes the submitted result: give the money back with "
            f"`{action}`, or let the network's admins decide after "
            f"externalDisputeUnlockTime ({iso(job.external_dispute_unlock_time)})"
        )
        return Decision(
            invoice=change,
            events=(NewEvent(EventType.DISPUTED, message),),
        ).then(needs_attention(job, AttentionReason.DISPUTED, message, action, now))
    if state == OnChainState.WITHDRAW_AUTHORIZED:
        return Decision(
            invoice=InvoiceChange(status=InvoiceStatus.CONFIRMED, on_chain_state=state),
            events=(
                NewEvent(
                    EventType.PAYMENT_STATE_CHANGED,
                    "the buyer authorized our withdrawal of the disputed funds",
                ),
            ),
            step=Scheduled(Step.FOLLOW, now_ms + policy.withdraw_lag_ms),
        ).then(attention_cleared(job))
    if state == OnChainState.REFUND_AUTHORIZED:
        if not job.is_terminal:
            # V2: SubmitResult is not possible from RefundAuthorized: the job can never
            # be delivered now.
            return (
                failure(
                    job,
                    None,
                    "REFUND_AUTHORIZED",
                    "a refund was authorized before the job finished; its result can no "
                    "longer be submitted",
                    now_ms,
                    policy,
                    invoice_change=InvoiceChange(on_chain_state=state),
                )
                .with_step(None)
                .then(attention_cleared(job))
            )
        return Decision(
            invoice=InvoiceChange(on_chain_state=state),
            events=(
                NewEvent(
                    EventType.PAYMENT_STATE_CHANGED,
                    "refund authorized on chain: the buyer can withdraw the funds",
                ),
            ),
            step=None,
        ).then(attention_cleared(job))
    if state == OnChainState.WITHDRAWN:
        return Decision(
            invoice=InvoiceChange(status=InvoiceStatus.WITHDRAWN, on_chain_state=state),
            events=(NewEvent(EventType.WITHDRAWN, state),),
            # A job still running keeps its step (the money cannot tell it to stop).
            step=None if job.is_terminal else KEEP,
        ).then(attention_cleared(job))
    if state == OnChainState.REFUND_WITHDRAWN:
        change = InvoiceChange(status=InvoiceStatus.REFUNDED, on_chain_state=state)
        if not job.is_terminal:
            return failure(
                job,
                None,
                "REFUNDED",
                "the buyer withdrew a refund before the job finished",
                now_ms,
                policy,
                event=EventType.REFUNDED,
                invoice_change=change,
            ).then(attention_cleared(job))
        return Decision(
            invoice=change,
            events=(NewEvent(EventType.REFUNDED, state),),
            step=None,
        ).then(attention_cleared(job))
    if state == OnChainState.DISPUTED_WITHDRAWN:
        return Decision(
            invoice=InvoiceChange(status=InvoiceStatus.DISPUTE_RESOLVED, on_chain_state=state),
            events=(
                NewEvent(
                    EventType.DISPUTE_RESOLVED,
                    "the network's admins settled the dispute and paid out the funds",
                ),
            ),
            step=None if job.is_terminal else KEEP,
        ).then(attention_cleared(job))
    return Decision(
        invoice=InvoiceChange(on_chain_state=state),
        events=(NewEvent(EventType.PAYMENT_STATE_CHANGED, payment.describe),),
    )


def _funds_locked(
    job: Job, invoice: Invoice, payment: PaymentState, now: datetime, policy: Policy
) -> Decision:
    now_ms = ms(now)
    paid = InvoiceChange(status=InvoiceStatus.PAID, on_chain_state=OnChainState.FUNDS_LOCKED)
    if job.status is JobStatus.AWAITING_PAYMENT:
        if now_ms >= job.deadline:
            return failure(
                job,
                invoice,
                "NO_TIME_TO_RUN",
                "the funds were locked too close to submitResultTime to run the agent",
                now_ms,
                policy,
                invoice_change=paid,
            )
        return Decision(
            status=JobStatus.RUNNING,
            invoice=paid,
            events=(NewEvent(EventType.FUNDS_LOCKED, ""),),
            step=Scheduled(Step.RUN, now_ms),
        )
    if job.status is JobStatus.FAILED and invoice.on_chain_state is None:
        # The chain accepts a lock until payByTime; we saw it only after we had given
        # up on the job (expired, cancelled): the job cannot run any more. (A failed
        # job whose invoice already shows a state saw the lock before: FundsLocked
        # again is V1's UnSetRefundRequested, recorded below.)
        locked = invoice.model_copy(update={"on_chain_state": OnChainState.FUNDS_LOCKED})
        step, money = money_after_failure(job, locked, OnChainState.FUNDS_LOCKED, now_ms, policy)
        reason = job.error.reason if job.error is not None else "FAILED"
        message = f"the buyer locked funds after the job had failed ({reason}): {money}"
        action = "" if is_v2(job) else "none needed: the buyer withdraws after submitResultTime"
        return Decision(invoice=paid, step=step).then(
            needs_attention(job, AttentionReason.FUNDS_LOCKED_AFTER_FAILURE, message, action, now)
        )
    detail = (
        "the buyer withdrew the refund request"
        if invoice.on_chain_state == OnChainState.REFUND_REQUESTED
        else payment.describe
    )
    status = InvoiceStatus.PAID if invoice.status is InvoiceStatus.PENDING else None
    return Decision(
        invoice=InvoiceChange(status=status, on_chain_state=OnChainState.FUNDS_LOCKED),
        events=(NewEvent(EventType.PAYMENT_STATE_CHANGED, detail),),
    )


def _result_on_chain(
    job: Job, invoice: Invoice, payment: PaymentState, now: datetime, policy: Policy
) -> Decision:
    confirmed = InvoiceChange(
        status=InvoiceStatus.CONFIRMED, on_chain_state=OnChainState.RESULT_SUBMITTED
    )
    follow = Scheduled(Step.FOLLOW, max(ms(now), job.unlock_time) + policy.withdraw_lag_ms)
    detail = "the result hash is on chain"
    if invoice.on_chain_state == OnChainState.DISPUTED:
        detail = "the buyer withdrew the dispute; the result hash is on chain"
    return Decision(
        invoice=confirmed,
        events=(NewEvent(EventType.RESULT_CONFIRMED, detail),),
        step=follow if job.is_terminal else KEEP,
    ).then(attention_cleared(job))


def _refund_requested(
    job: Job, invoice: Invoice, payment: PaymentState, now: datetime, policy: Policy
) -> Decision:
    now_ms = ms(now)
    state = OnChainState.REFUND_REQUESTED
    if job.status is JobStatus.AWAITING_PAYMENT:
        return failure(
            job,
            invoice,
            "REFUND_REQUESTED",
            "the buyer asked for a refund before the job started",
            now_ms,
            policy,
            invoice_change=InvoiceChange(status=InvoiceStatus.PAID, on_chain_state=state),
        )
    if job.status is JobStatus.FAILED:
        refundable = invoice.model_copy(update={"on_chain_state": state})
        step, money = money_after_failure(job, refundable, state, now_ms, policy)
        return Decision(
            invoice=InvoiceChange(on_chain_state=state),
            events=(NewEvent(EventType.PAYMENT_STATE_CHANGED, f"refund requested: {money}"),),
            step=step,
        )
    if invoice.on_chain_state == OnChainState.DISPUTED:
        detail = "the refund of the disputed funds is authorized on chain"
    elif job.status is JobStatus.COMPLETED:
        detail = "the buyer asked for a refund; our submitted result will make it a dispute"
    else:
        detail = (
            "the buyer asked for a refund while the job runs; the job goes on, and its "
            "result will make the payment Disputed"
        )
    return Decision(
        invoice=InvoiceChange(on_chain_state=state),
        events=(NewEvent(EventType.PAYMENT_STATE_CHANGED, detail),),
    )


def _error_changed(
    job: Job,
    invoice: Invoice,
    payment: PaymentState,
    error: str,
    now: datetime,
    policy: Policy,
) -> Decision:
    recorded = Decision(invoice=InvoiceChange(next_action=error))
    if error and payment.on_chain_state in SETTLED_STATES:
        # The money has moved for good; the payment service's own note about it (e.g.
        # "Unexpected state change detected") is kept, nothing is left to do.
        return recorded
    if not error:
        cleared = (
            attention_cleared(job)
            if job.attention is not None
            and job.attention.reason
            in (
                AttentionReason.SUBMISSION_FAILED,
                AttentionReason.PAYMENT_ERROR,
                AttentionReason.REFUND_FAILED,
            )
            else NOTHING
        )
        return recorded.then(
            Decision(events=(NewEvent(EventType.PAYMENT_STATE_CHANGED, "the error is cleared"),))
        ).then(cleared)
    if not payment.needs_manual_action:
        # An error on a payment that is not parked (upstream's wallet timeout: the
        # transaction is still pending and may confirm). error-state-recovery answers
        # 400 for it and `agentjobs recover` refuses it, so neither may be offered.
        message = (
            "the payment service reports an error on a payment it has not parked for "
            f"manual action: {error}; its transaction may still confirm: look at the "
            "payment in the payment service's admin interface"
        )
        return recorded.then(needs_attention(job, AttentionReason.PAYMENT_ERROR, message, "", now))
    now_ms = ms(now)
    ours = (
        bool(job.result_hash)
        and payment.next_action_result_hash == job.result_hash
        and job.status in (JobStatus.COMPLETED, JobStatus.RUNNING)
    )
    recoverable = bool(payment.error_type)  # error-state-recovery refuses the others
    if (
        ours
        and recoverable
        and now_ms < policy.last_submit(job)
        and job.recoveries < policy.max_recoveries
    ):
        return recorded.then(
            Decision(
                events=(
                    NewEvent(
                        EventType.PAYMENT_STATE_CHANGED,
                        f"the chain job could not submit the result ({error}); recovering",
                    ),
                ),
                step=Scheduled(Step.RECOVER, now_ms),
            )
        )
    action = f"agentjobs recover {job.job_id}"
    if ours:
        message = f"submitting the result failed on chain: {error}"
        if now_ms >= policy.last_submit(job):
            message += "; too late to submit again: the buyer can withdraw after submitResultTime"
            action = ""  # a recovery now would be refused: suggest nothing that cannot work
        elif not recoverable:
            message += (
                "; the payment service cannot retry it (no error type): look at the payment "
                "in its admin interface"
            )
            action = ""
        else:
            message += f"; recover it with `{action}` before {iso(policy.last_submit(job))}"
        reason = AttentionReason.SUBMISSION_FAILED
    elif recoverable:
        message = f"the payment is waiting for manual action: {error}; retry with `{action}`"
        reason = AttentionReason.PAYMENT_ERROR
    else:
        message = (
            f"the payment is waiting for manual action: {error}; the payment service "
            "cannot retry it (no error type): look at the payment in its admin interface"
        )
        action = ""
        reason = AttentionReason.PAYMENT_ERROR
    return recorded.then(needs_attention(job, reason, message, action, now))


# -- a follow-up look, the expiry check ----------------------------------------------
def on_follow(
    job: Job, invoice: Invoice | None, payment: PaymentState | None, now: datetime, policy: Policy
) -> Decision:
    """The FOLLOW step looked at the payment (None: the service does not know it)."""
    now_ms = ms(now)
    if payment is None:
        message = (
            f"the payment service no longer knows payment {job.blockchain_identifier}; "
            "the books keep the last state seen"
        )
        return needs_attention(job, AttentionReason.PAYMENT_UNKNOWN, message, "", now).with_step(
            None
        )
    decision = on_payment(job, invoice, payment, now, policy)
    if decision.step is not KEEP:
        return decision
    after = preview(job, decision, now)
    return decision.then(_next_look(after, payment, now_ms, policy, now))


def _next_look(
    job: Job, payment: PaymentState, now_ms: int, policy: Policy, now: datetime
) -> Decision:
    state, action = payment.on_chain_state, payment.requested_action
    if state in SETTLED_STATES or state == OnChainState.REFUND_AUTHORIZED:
        return Decision(step=None)
    if action == NextAction.SUBMIT_RESULT_REQUESTED and now_ms >= (
        job.submit_result_time - policy.chain_cutoff_ms
    ):
        message = (
            "the payment service did not pick up our submission before "
            "submitResultTime - 5 min; the result will not reach the chain, and the buyer "
            f"can withdraw the funds after {iso(job.submit_result_time)}"
        )
        return needs_attention(
            job, AttentionReason.SUBMISSION_NOT_PICKED_UP, message, "", now
        ).with_step(Scheduled(Step.FOLLOW, job.submit_result_time + policy.withdraw_lag_ms))
    vanished = (
        job.status is JobStatus.COMPLETED
        and action == NextAction.WAITING_FOR_EXTERNAL_ACTION
        and state in (OnChainState.FUNDS_LOCKED, OnChainState.REFUND_REQUESTED)
        and not payment.result_hash
    )
    if vanished:
        late = now_ms >= job.submit_result_time - policy.chain_cutoff_ms
        message = (
            "our submission is no longer queued at the payment service (its error was "
            "cleared without a retry?) and the result is not on chain"
            + (
                "; it can no longer land: the buyer can withdraw after "
                + iso(job.submit_result_time)
                if late
                else ": look at the payment in the payment service's admin interface"
            )
        )
        return needs_attention(
            job, AttentionReason.SUBMISSION_NOT_PICKED_UP, message, "", now
        ).with_step(
            Scheduled(Step.FOLLOW, max(now_ms + policy.retry_max_ms, job.submit_result_time))
        )
    if action in (NextAction.SUBMIT_RESULT_REQUESTED, NextAction.SUBMIT_RESULT_INITIATED):
        delay = min(policy.backoff(max(job.attempt, 1)) * 4, policy.chain_pickup_ms)
        return Decision(step=Scheduled(Step.FOLLOW, now_ms + max(delay, policy.retry_base_ms)))
    if state == OnChainState.RESULT_SUBMITTED:
        unlock = job.unlock_time + policy.withdraw_lag_ms
        if now_ms < unlock:
            return Decision(step=Scheduled(Step.FOLLOW, unlock))
        behind = now_ms - unlock
        # Looked at less and less often, at least daily.
        pause = min(max(policy.withdraw_lag_ms, behind), 24 * 60 * 60_000)
        follow = Decision(step=Scheduled(Step.FOLLOW, now_ms + pause))
        if behind > 4 * policy.withdraw_lag_ms:
            message = (
                f"payment {job.blockchain_identifier} is withdrawable since "
                f"{iso(job.unlock_time)} but the payment service has not withdrawn it"
            )
            return follow.then(
                needs_attention(job, AttentionReason.WITHDRAWAL_LATE, message, "", now)
            )
        return follow
    if state == OnChainState.DISPUTED:
        return Decision(step=None)
    return Decision(step=Scheduled(Step.FOLLOW, now_ms + policy.retry_max_ms * 10))


def on_expiry_check(
    job: Job, invoice: Invoice | None, payment: PaymentState | None, now: datetime, policy: Policy
) -> Decision:
    """The EXPIRE step looked at the payment once more (None: unknown to the service)."""
    now_ms = ms(now)
    if job.status is not JobStatus.AWAITING_PAYMENT:
        return Decision(step=None)
    if payment is not None and payment.on_chain_state is not None:
        decision = on_payment(job, invoice, payment, now, policy)
        if decision.status is not None:
            return decision
        if payment.on_chain_state == OnChainState.FUNDS_LOCKED and invoice is not None:
            # The invoice shows the lock but the job never started: start it now.
            unlocked = invoice.model_copy(update={"on_chain_state": None})
            return on_payment(job, unlocked, payment, now, policy)
        return decision.then(Decision(step=Scheduled(Step.EXPIRE, now_ms + policy.retry_max_ms)))
    if payment is not None and now_ms < job.pay_by_time + policy.expiry_grace_ms:
        return Decision(step=Scheduled(Step.EXPIRE, job.pay_by_time + policy.expiry_grace_ms))
    return failure(
        job,
        invoice,
        "PAYMENT_EXPIRED",
        "the buyer did not lock funds before payByTime",
        now_ms,
        policy,
        event=EventType.PAYMENT_EXPIRED,
        invoice_change=InvoiceChange(status=InvoiceStatus.EXPIRED),
    )
