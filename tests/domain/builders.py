"""Small builders for the lifecycle's inputs, and `apply`: what the repository does with
a Decision (the job through `preview`, the invoice as the SQL writer changes it), so a
test can follow a job through several decisions without a database.

One payment with fixed, readable times:

    T0 (job created) < PAY_BY (T0 + 30 min) < SUBMIT_BY (T0 + 3 h)
                     < UNLOCK (T0 + 6 h) < DISPUTE_UNLOCK (T0 + 9 h)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agentjobs.server.domain.invoice import Invoice, InvoiceStatus
from agentjobs.server.domain.job import Amount, Attention, Job, JobError, PaymentTerms
from agentjobs.server.domain.lifecycle import Decision, Policy, preview
from agentjobs.server.domain.payment import NextAction, OnChainState, PaymentSourceType
from agentjobs.server.domain.payment import PaymentState as Payment
from agentjobs.server.domain.status import JobStatus
from agentjobs.server.domain.steps import Step

S = JobStatus
State = OnChainState
Action = NextAction
V1 = PaymentSourceType.V1
V2 = PaymentSourceType.V2
SOURCES = (V1, V2)

MINUTE = 60_000
HOUR = 60 * MINUTE
POLICY = Policy()

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
PAY_BY = T0_MS + 30 * MINUTE
SUBMIT_BY = T0_MS + 3 * HOUR
UNLOCK = T0_MS + 6 * HOUR
DISPUTE_UNLOCK = T0_MS + 9 * HOUR
DEADLINE = POLICY.agent_deadline(SUBMIT_BY)
# The chain job takes a submission only while submitResultTime is > 5 min away when it
# picks it up, and it runs every chain_pickup_ms: the last moment a submit can land.
LAST_SUBMIT = SUBMIT_BY - 5 * MINUTE - POLICY.chain_pickup_ms

JOB_ID = "job-1"
BID = "blockchain-id-1"
RESULT = '{"answer": 42}'
RESULT_HASH = "ab" * 32
OTHER_HASH = "cd" * 32
PRICE = (Amount(amount=5_000_000),)


def at(epoch_ms: int) -> datetime:
    """The moment `epoch_ms` as the lifecycle's `now`."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def minutes(n: float) -> int:
    return int(n * MINUTE)


def terms(blockchain_identifier: str = BID, source: PaymentSourceType = V1) -> PaymentTerms:
    return PaymentTerms(
        blockchain_identifier=blockchain_identifier,
        seller_vkey="seller-vkey",
        agent_identifier="agent-" + "0" * 60,
        pay_by_time=PAY_BY,
        submit_result_time=SUBMIT_BY,
        unlock_time=UNLOCK,
        external_dispute_unlock_time=DISPUTE_UNLOCK,
        amounts=PRICE,
        source_type=source.value,
        source_index=0 if source is V2 else None,
    )


def intent(**fields: Any) -> Job:
    """A job written before POST /payment: no payment attached yet."""
    base: dict[str, Any] = {
        "job_id": JOB_ID,
        "status": S.AWAITING_PAYMENT,
        "status_id": "status-0",
        "identifier_from_purchaser": "aabbccddeeff0011",
        "input_data": {"text": "hello"},
        "input_hash": "ef" * 32,
        "step": Step.REQUEST_PAYMENT,
        "run_at": T0_MS,
        "attempt": 1,
        "created_at": T0,
        "updated_at": T0,
    }
    base.update(fields)
    return Job(**base)


# What a job in each status normally has: its step and the fields its history set.
_BY_STATUS: dict[JobStatus, dict[str, Any]] = {
    S.AWAITING_PAYMENT: {"step": Step.EXPIRE, "run_at": PAY_BY + POLICY.expiry_grace_ms},
    S.RUNNING: {"step": Step.RUN, "run_at": T0_MS + MINUTE, "attempt": 1},
    S.AWAITING_INPUT: {
        "step": Step.INPUT_DEADLINE,
        "run_at": DEADLINE,
        "input_schema": {"input_data": [{"id": "name", "type": "string"}]},
        "input_request_message": "what is your name?",
    },
    S.COMPLETED: {
        "result": RESULT,
        "result_hash": RESULT_HASH,
        "step": Step.FOLLOW,
        "run_at": T0_MS + HOUR,
    },
    S.FAILED: {
        "error": JobError(reason="AGENT_FAILED", message="the agent raised"),
        "step": None,
        "run_at": None,
    },
}


def a_job(
    status: JobStatus = S.RUNNING,
    source: PaymentSourceType = V1,
    **fields: Any,
) -> Job:
    """A paid-for job in `status` with the payment of `terms()` attached."""
    attached = terms(source=source)
    base: dict[str, Any] = {
        "job_id": JOB_ID,
        "status": status,
        "status_id": f"status-{status.value}",
        "identifier_from_purchaser": "aabbccddeeff0011",
        "input_data": {"text": "hello"},
        "input_hash": "ef" * 32,
        "blockchain_identifier": attached.blockchain_identifier,
        "seller_vkey": attached.seller_vkey,
        "agent_identifier": attached.agent_identifier,
        "pay_by_time": attached.pay_by_time,
        "submit_result_time": attached.submit_result_time,
        "unlock_time": attached.unlock_time,
        "external_dispute_unlock_time": attached.external_dispute_unlock_time,
        "payment_source_type": attached.source_type,
        "payment_source_index": attached.source_index,
        "deadline": DEADLINE,
        "version": 3,
        "event_count": 3,
        "created_at": T0,
        "updated_at": T0,
        **_BY_STATUS[status],
    }
    base.update(fields)
    return Job(**base)


def running_with_result(source: PaymentSourceType = V1, **fields: Any) -> Job:
    """The agent returned; the result waits to be submitted."""
    base: dict[str, Any] = {
        "result": RESULT,
        "result_hash": RESULT_HASH,
        "step": Step.SUBMIT,
        "run_at": T0_MS + HOUR,
        "attempt": 1,
    }
    base.update(fields)
    return a_job(S.RUNNING, source, **base)


def free_job(status: JobStatus = S.RUNNING, **fields: Any) -> Job:
    base: dict[str, Any] = {
        "job_id": "free-1",
        "status": status,
        "status_id": f"status-{status.value}",
        "identifier_from_purchaser": "",
        "input_hash": "ef" * 32,
        "pricing": "free",
        "deadline": T0_MS + POLICY.free_deadline_ms,
        "created_at": T0,
        "updated_at": T0,
        **_BY_STATUS[status],
    }
    base.update(fields)
    return Job(**base)


def attention(reason: str, message: str = "look", action: str = "") -> Attention:
    return Attention(reason=reason, message=message, action=action, since=T0)


# The invoice a job in each status normally has (status, onChainState).
_INVOICE_BY_STATUS: dict[JobStatus, tuple[InvoiceStatus, str | None]] = {
    S.AWAITING_PAYMENT: (InvoiceStatus.PENDING, None),
    S.RUNNING: (InvoiceStatus.PAID, State.FUNDS_LOCKED),
    S.AWAITING_INPUT: (InvoiceStatus.PAID, State.FUNDS_LOCKED),
    S.COMPLETED: (InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED),
    S.FAILED: (InvoiceStatus.PAID, State.FUNDS_LOCKED),
}


def an_invoice(
    status: InvoiceStatus | None = None,
    on_chain_state: str | None = None,
    *,
    for_status: JobStatus = S.RUNNING,
    next_action: str = "",
    source: PaymentSourceType = V1,
) -> Invoice:
    """The job's invoice; by default as a job in `for_status` has it."""
    usual_status, usual_state = _INVOICE_BY_STATUS[for_status]
    chosen_status = usual_status if status is None else status
    return Invoice(
        blockchain_identifier=BID,
        job_id=JOB_ID,
        status=chosen_status,
        amounts=PRICE,
        on_chain_state=usual_state if status is None and on_chain_state is None else on_chain_state,
        next_action=next_action,
        payment_source_type=source.value,
        created_at=T0,
        paid_at=T0 if chosen_status is not InvoiceStatus.PENDING else None,
        updated_at=T0,
    )


def payment(
    state: str | None,
    action: str = Action.WAITING_FOR_EXTERNAL_ACTION,
    *,
    next_action_hash: str | None = None,
    result_hash: str | None = None,
    error_type: str | None = None,
    error_note: str | None = None,
    source: PaymentSourceType = V1,
) -> Payment:
    """The payment as the payment service shows it (diff, resolve)."""
    return Payment(
        blockchain_identifier=BID,
        on_chain_state=state,
        requested_action=action,
        next_action_result_hash=next_action_hash,
        result_hash=result_hash,
        error_type=error_type,
        error_note=error_note,
        changed_at=T0,
        payment_id="payment-row-1",
        updated_at=T0,
        source_type=source,
    )


def submission_failed(state: str = State.FUNDS_LOCKED, **kw: Any) -> Payment:
    """The chain job could not build our submit-result transaction."""
    return payment(
        state,
        Action.WAITING_FOR_MANUAL_ACTION,
        next_action_hash=RESULT_HASH,
        error_type="Unknown",
        error_note="Submitting result failed: UTxO not found",
        **kw,
    )


# -- what the repository does with a decision -----------------------------------------
def apply_invoice(invoice: Invoice | None, decision: Decision, job: Job, now: datetime) -> Invoice:
    """The invoice as repository/queries/writes.py leaves it."""
    if decision.new_invoice is not None:
        invoice = Invoice(
            blockchain_identifier=job.blockchain_identifier,
            job_id=job.job_id,
            status=InvoiceStatus.PENDING,
            amounts=decision.new_invoice,
            payment_source_type=job.payment_source_type,
            created_at=now,
            updated_at=now,
        )
    assert invoice is not None, "a decision changed an invoice the job does not have"
    change = decision.invoice
    if change is None:
        return invoice
    updates: dict[str, Any] = {}
    if change.status is not None:
        updates["status"] = change.status
    if change.on_chain_state is not None:
        updates["on_chain_state"] = change.on_chain_state
    if change.next_action is not None:
        updates["next_action"] = change.next_action
    if not updates:
        return invoice
    updates["updated_at"] = max(now, invoice.updated_at)
    if change.status is InvoiceStatus.PAID and invoice.paid_at is None:
        updates["paid_at"] = updates["updated_at"]
    return invoice.model_copy(update=updates)


def apply(
    job: Job, invoice: Invoice | None, decision: Decision, now: datetime
) -> tuple[Job, Invoice | None]:
    """Job and invoice once the repository has written `decision`."""
    if decision.writes_nothing:
        return job, invoice
    after = preview(job, decision, now)
    after = after.model_copy(update={"event_count": job.event_count + len(decision.events)})
    if decision.new_invoice is not None or (decision.invoice is not None and invoice is not None):
        invoice = apply_invoice(invoice, decision, after, now)
    return after, invoice


def claim(job: Job) -> Job:
    """A worker claims the job's due step: its attempt is counted."""
    return job.model_copy(update={"attempt": job.attempt + 1})


def later(moment: datetime, ms: int) -> datetime:
    return moment + timedelta(milliseconds=ms)
