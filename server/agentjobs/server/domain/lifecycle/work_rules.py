"""What a job does when its steps run: the agent, the submission, recovery, refunds,
a person's answer, an operator's command."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentjobs.server.domain.errors import (
    FundsAlreadyLockedError,
    NotAwaitingInputError,
    OperationNotPossibleError,
    StatusIdMismatchError,
)
from agentjobs.server.domain.events import EventType
from agentjobs.server.domain.invoice import Invoice, InvoiceStatus
from agentjobs.server.domain.job import Job
from agentjobs.server.domain.lifecycle.attention import (
    AttentionReason,
    attention_cleared,
    needs_attention,
)
from agentjobs.server.domain.lifecycle.decision import (
    NOTHING,
    Continue,
    Decision,
    InvoiceChange,
    NewEvent,
)
from agentjobs.server.domain.lifecycle.failure import failure, is_v2
from agentjobs.server.domain.lifecycle.payment_rules import ms, on_follow
from agentjobs.server.domain.lifecycle.policy import Policy
from agentjobs.server.domain.payment import (
    IN_PROGRESS_ACTIONS,
    SETTLED_STATES,
    NextAction,
    OnChainState,
)
from agentjobs.server.domain.payment import PaymentState as Payment
from agentjobs.server.domain.status import JobStatus
from agentjobs.server.domain.steps import Scheduled, Step

# Where the seller's authorize-refund does something on chain. V1's contract executes
# AuthorizeRefund only from Disputed (the 0.28.0 route also takes RefundRequested, and
# the chain job never acts on it). V2's contract also allows FundsLocked and
# ResultSubmitted, but the 0.28.0 route refuses them (404): RefundRequested and Disputed.
REFUNDABLE_BY_SELLER = {
    False: frozenset({OnChainState.DISPUTED}),
    True: frozenset({OnChainState.REFUND_REQUESTED, OnChainState.DISPUTED}),
}


# -- starting ----------------------------------------------------------------------
def free_job_started(now: datetime, policy: Policy) -> tuple[dict[str, Any], Scheduled]:
    """A free job runs at once: its fields and first step (no payment, no invoice)."""
    now_ms = ms(now)
    return {"deadline": now_ms + policy.free_deadline_ms, "pricing": "free"}, Scheduled(
        Step.RUN, now_ms
    )


# -- the agent -----------------------------------------------------------------------
def on_run_claimed(job: Job, invoice: Invoice | None, now: datetime, policy: Policy) -> Decision:
    """Before the agent runs: NOTHING means run it; otherwise what to do instead."""
    now_ms = ms(now)
    if job.status is not JobStatus.RUNNING:
        return Decision(step=None)
    if job.result is not None:
        return Decision(step=Continue(Scheduled(Step.SUBMIT, now_ms)))
    if now_ms >= job.deadline:
        return failure(
            job, invoice, "DEADLINE_EXCEEDED", "no time left to run the agent", now_ms, policy
        )
    if job.attempt > policy.max_run_attempts:
        return failure(
            job,
            invoice,
            "AGENT_INTERRUPTED",
            f"the agent was started {job.attempt - 1} times and never finished "
            "(the process running it stopped each time)",
            now_ms,
            policy,
        )
    return NOTHING


def on_result(
    job: Job, invoice: Invoice | None, result: str, result_hash: str, now: datetime
) -> Decision:
    if job.status is not JobStatus.RUNNING:
        return NOTHING
    now_ms = ms(now)
    if job.is_free:
        return Decision(
            status=JobStatus.COMPLETED,
            fields={"result": result, "result_hash": result_hash},
            events=(NewEvent(EventType.COMPLETED, "free job", {"result_hash": result_hash}),),
            step=None,
        )
    return Decision(
        fields={"result": result, "result_hash": result_hash},
        events=(NewEvent(EventType.RESULT_STORED, "", {"result_hash": result_hash}),),
        step=Continue(Scheduled(Step.SUBMIT, now_ms)),
    )


def on_input_requested(
    job: Job, schema: dict[str, Any], message: str | None, now: datetime
) -> Decision:
    """The agent asked a person: the job waits without a lease until its deadline."""
    if job.status is not JobStatus.RUNNING:
        return NOTHING
    return Decision(
        status=JobStatus.AWAITING_INPUT,
        fields={"input_schema": schema, "input_request_message": message},
        events=(NewEvent(EventType.INPUT_REQUESTED, message or ""),),
        step=Scheduled(Step.INPUT_DEADLINE, job.deadline),
    )


def on_agent_failed(
    job: Job, invoice: Invoice | None, reason: str, message: str, now: datetime, policy: Policy
) -> Decision:
    return failure(job, invoice, reason, message, ms(now), policy)


def on_input_deadline(job: Job, invoice: Invoice | None, now: datetime, policy: Policy) -> Decision:
    now_ms = ms(now)
    if job.status is not JobStatus.AWAITING_INPUT:
        return Decision(step=None)
    if now_ms < job.deadline:
        return Decision(step=Scheduled(Step.INPUT_DEADLINE, job.deadline))
    return failure(job, invoice, "DEADLINE_EXCEEDED", "no input arrived in time", now_ms, policy)


@dataclass(frozen=True)
class Answer:
    input_data: dict[str, Any]
    input_hash: str
    request_id: str | None


def on_input(job: Job, status_id: str, answer: Answer, now: datetime) -> Decision:
    """ProvideInput: the answer resumes the job on whichever worker claims it."""
    if job.status is not JobStatus.AWAITING_INPUT:
        raise NotAwaitingInputError(job.job_id, job.status.value)
    if status_id != job.status_id:
        raise StatusIdMismatchError(job.job_id, status_id, job.status_id)
    return Decision(
        status=JobStatus.RUNNING,
        events=(
            NewEvent(
                EventType.INPUT_PROVIDED,
                "",
                {
                    "request_id": answer.request_id,
                    "input_hash": answer.input_hash,
                    "input_data": answer.input_data,
                    "status_id": status_id,
                },
            ),
        ),
        step=Scheduled(Step.RUN, ms(now)),
    )


# -- submitting the result -----------------------------------------------------------
def on_submit_claimed(job: Job, invoice: Invoice | None, now: datetime, policy: Policy) -> Decision:
    """Before submit-result: NOTHING means submit."""
    now_ms = ms(now)
    if job.status is not JobStatus.RUNNING or job.result is None:
        return Decision(step=None)
    if now_ms >= policy.last_submit(job):
        return failure(
            job,
            invoice,
            "SUBMIT_DEADLINE_PASSED",
            "the result could not be submitted while the chain could still take it",
            now_ms,
            policy,
        )
    return NOTHING


def submission_taken(job: Job, payment: Payment) -> bool:
    """The service holds our hash already (a try whose answer we did not get)."""
    if not job.result_hash:
        return False
    if payment.result_hash == job.result_hash:
        return True
    return (
        payment.next_action_result_hash == job.result_hash
        and payment.requested_action in IN_PROGRESS_ACTIONS
    )


def on_submitted(job: Job, now: datetime, policy: Policy, *, detail: str = "") -> Decision:
    """submit-result answered 200 (or had been taken): the buyer has the result."""
    if job.status is not JobStatus.RUNNING:
        return NOTHING
    now_ms = ms(now)
    return Decision(
        status=JobStatus.COMPLETED,
        invoice=InvoiceChange(status=InvoiceStatus.SUBMITTED),
        events=(
            NewEvent(EventType.RESULT_SUBMITTED, detail, {"result_hash": job.result_hash}),
            NewEvent(EventType.COMPLETED, ""),
        ),
        step=Scheduled(Step.FOLLOW, now_ms + policy.chain_pickup_ms + policy.retry_max_ms),
    ).then(attention_cleared(job))


def retry_later(job: Job, step: Step, now: datetime, policy: Policy) -> Decision:
    """A try that may work later (409, the service down): the same step, backed off."""
    return Decision(step=Scheduled(step, ms(now) + policy.backoff(max(job.attempt, 1))))


def on_submit_refused_key(job: Job, now: datetime, policy: Policy) -> Decision:
    """403: the payment was created with another API key than the one we hold now."""
    now_ms = ms(now)
    message = (
        "this payment was created with another API key: submit-result is refused with "
        "the current PAYMENT_API_KEY; restore the key that created it (then "
        f"`agentjobs recover {job.job_id}`)"
    )
    # Rarely, but once more before the last moment (never at once: no hot loop).
    retry_at = min(
        now_ms + policy.key_retry_ms, max(now_ms + 1_000, policy.last_submit(job) - 1_000)
    )
    return needs_attention(
        job, AttentionReason.API_KEY_MISMATCH, message, f"agentjobs recover {job.job_id}", now
    ).with_step(Scheduled(Step.SUBMIT, retry_at))


def on_submit_rejected(
    job: Job, invoice: Invoice | None, message: str, now: datetime, policy: Policy
) -> Decision:
    return failure(job, invoice, "SUBMISSION_REJECTED", message, ms(now), policy)


# -- recovery and refunds ------------------------------------------------------------
def on_recover_claimed(
    job: Job, invoice: Invoice | None, payment: Payment | None, now: datetime, policy: Policy
) -> Decision:
    """Before error-state-recovery: NOTHING means recover now."""
    if payment is None or not payment.needs_manual_action:
        return on_follow(job, invoice, payment, now, policy)
    return NOTHING


def on_recovered(job: Job, now: datetime, policy: Policy) -> Decision:
    return Decision(
        fields={"recoveries": job.recoveries + 1},
        invoice=InvoiceChange(next_action=""),
        events=(
            NewEvent(
                EventType.RECOVERY_REQUESTED,
                "error-state-recovery accepted: the chain job retries the parked action",
            ),
        ),
        step=Scheduled(Step.FOLLOW, ms(now) + policy.chain_pickup_ms + policy.retry_base_ms),
    ).then(attention_cleared(job))


def refund_possible(job: Job, payment: Payment) -> bool:
    return (
        payment.on_chain_state in REFUNDABLE_BY_SELLER[is_v2(job)]
        and payment.requested_action == NextAction.WAITING_FOR_EXTERNAL_ACTION
    )


def on_refund_claimed(
    job: Job, invoice: Invoice | None, payment: Payment | None, now: datetime, policy: Policy
) -> Decision:
    """Before authorize-refund: NOTHING means authorize now."""
    if payment is None:
        return on_follow(job, invoice, payment, now, policy)
    if payment.requested_action in (
        NextAction.AUTHORIZE_REFUND_REQUESTED,
        NextAction.AUTHORIZE_REFUND_INITIATED,
    ):
        return Decision(step=Scheduled(Step.FOLLOW, ms(now) + policy.chain_pickup_ms))
    if refund_possible(job, payment):
        return NOTHING
    if payment.requested_action in IN_PROGRESS_ACTIONS:
        return retry_later(job, Step.REFUND, now, policy)
    # Not (or no longer) refundable by us: the state says what happens to the money.
    return on_follow(job, invoice, payment, now, policy)


def on_refund_authorized(job: Job, now: datetime, policy: Policy) -> Decision:
    return Decision(
        events=(
            NewEvent(
                EventType.REFUND_AUTHORIZED,
                "authorize-refund accepted: the chain job builds the refund transaction",
            ),
        ),
        step=Scheduled(Step.FOLLOW, ms(now) + policy.chain_pickup_ms + policy.retry_base_ms),
    ).then(attention_cleared(job))


def on_refund_refused_key(job: Job, now: datetime) -> Decision:
    message = (
        "this payment was created with another API key: authorize-refund is refused with "
        "the current PAYMENT_API_KEY"
    )
    return needs_attention(job, AttentionReason.API_KEY_MISMATCH, message, "", now).with_step(None)


# -- the operator --------------------------------------------------------------------
def on_cancel(
    job: Job,
    invoice: Invoice | None,
    payment: Payment | None,
    reason: str,
    now: datetime,
    policy: Policy,
) -> Decision:
    if job.status is not JobStatus.AWAITING_PAYMENT:
        raise OperationNotPossibleError(
            f"job {job.job_id} is {job.status.value}: only a job awaiting payment can be cancelled",
            reason="NOT_CANCELLABLE",
            metadata={"job_id": job.job_id, "current_status": job.status.value},
        )
    if payment is not None and payment.on_chain_state is not None:
        raise FundsAlreadyLockedError(job.job_id, payment.on_chain_state)
    message = reason or "cancelled by the operator"
    return failure(
        job,
        invoice,
        "CANCELLED",
        message,
        ms(now),
        policy,
        invoice_change=InvoiceChange(status=InvoiceStatus.EXPIRED) if invoice else None,
    )


def on_operator_refund(job: Job, payment: Payment, now: datetime) -> Decision:
    if not job.has_payment:
        raise OperationNotPossibleError(
            f"job {job.job_id} has no payment to refund", reason="REFUND_NOT_POSSIBLE"
        )
    if not refund_possible(job, payment):
        allowed = ", ".join(sorted(REFUNDABLE_BY_SELLER[is_v2(job)]))
        source = "V2" if is_v2(job) else "V1"
        raise OperationNotPossibleError(
            f"the payment of job {job.job_id} is {payment.describe}: on {source} the seller "
            f"can authorize a refund only from {allowed} with no other action in progress",
            reason="REFUND_NOT_POSSIBLE",
            metadata={"job_id": job.job_id, "on_chain_state": payment.on_chain_state or ""},
        )
    return Decision(step=Scheduled(Step.REFUND, ms(now)))


def on_operator_recover(job: Job, payment: Payment, now: datetime, policy: Policy) -> Decision:
    now_ms = ms(now)
    if payment.needs_manual_action:
        # error-state-recovery answers 400 for these: say so rather than fail later.
        refusal = None
        if payment.on_chain_state is None:
            refusal = "it was never paid"
        elif not payment.error_type:
            refusal = "its error has no type (the payment service cannot retry it)"
        elif payment.on_chain_state in SETTLED_STATES:
            refusal = f"its money has moved for good ({payment.on_chain_state})"
        if refusal is None and _agent_at_work(job):
            # The job's one step is the agent's (RUN, or the deadline of its question):
            # a RECOVER step in its place would stop the agent and leave the job RUNNING
            # with nothing left to run it.
            raise OperationNotPossibleError(
                f"the agent is still at work on job {job.job_id} ({job.status.value}): its "
                "payment can be recovered once the agent has its result",
                reason="AGENT_AT_WORK",
                metadata={"job_id": job.job_id, "current_status": job.status.value},
            )
        if refusal is None:
            return Decision(step=Scheduled(Step.RECOVER, now_ms))
        raise OperationNotPossibleError(
            f"the payment of job {job.job_id} cannot be recovered: {refusal}",
            reason="NOTHING_TO_RECOVER",
            metadata={"job_id": job.job_id, "on_chain_state": payment.on_chain_state or ""},
        )
    if (
        job.attention is not None
        and job.attention.reason == AttentionReason.API_KEY_MISMATCH
        and job.status is JobStatus.RUNNING
        and job.result is not None
    ):
        return Decision(step=Scheduled(Step.SUBMIT, now_ms))
    raise OperationNotPossibleError(
        f"the payment of job {job.job_id} is {payment.describe}: nothing to recover",
        reason="NOTHING_TO_RECOVER",
        metadata={"job_id": job.job_id},
    )


def _agent_at_work(job: Job) -> bool:
    """The agent has not produced the job's result yet (running, or asking a person)."""
    return job.status is JobStatus.AWAITING_INPUT or (
        job.status is JobStatus.RUNNING and job.result is None
    )


def on_recover_refused(
    job: Job, message: str, now: datetime, *, retryable: bool = True
) -> Decision:
    """error-state-recovery refused for good: a person must look. `retryable`: worth
    asking again once the person has acted (a refused key, say); otherwise (the parked
    action is not retryable) suggesting the same command again would be a loop."""
    refused = f"error-state-recovery was refused: {message}"
    if not retryable:
        refused += "; look at the payment in the payment service's admin interface"
    return needs_attention(
        job,
        AttentionReason.SUBMISSION_FAILED
        if job.status is JobStatus.COMPLETED
        else AttentionReason.PAYMENT_ERROR,
        refused,
        f"agentjobs recover {job.job_id}" if retryable else "",
        now,
    ).with_step(None)


def attention_for_source(job: Job, message: str, now: datetime) -> Decision:
    return needs_attention(job, AttentionReason.PAYMENT_SOURCE, message, "", now)
