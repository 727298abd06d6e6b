"""What a write does to a stored job or invoice, decided once for every backend.

Backends differ in how they make the read-validate-write atomic; what the write
contains (new status_id, input fields set or cleared, paid_at ...) is decided here so
that memory, SQLite and PostgreSQL cannot drift apart.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from agentjobs.server.domain import (
    InvalidStateTransitionError,
    Invoice,
    InvoiceStatus,
    Job,
    JobStatus,
    StatusIdMismatchError,
    validate_transition,
)
from agentjobs.server.repository.base import InvoiceChange, NewJob, StatusChange
from agentjobs.server.repository.timestamps import later_than


def json_copy(value: Any) -> Any:
    """A deep copy as the SQL backends store it (JSON): the memory backend accepts
    exactly what they accept, and returns the same shapes (tuples come back as lists)."""
    return json.loads(json.dumps(value, ensure_ascii=False))


def transition_updates(current: Job, change: StatusChange, now: datetime) -> dict[str, Any]:
    """The Job fields a transition sets; raises InvalidStateTransitionError if the job
    is not in `change.expected` or the transition is not legal from where it is."""
    if change.expected is not None and current.status is not change.expected:
        raise InvalidStateTransitionError(current.job_id, current.status.value, change.to.value)
    if change.expected_status_id is not None and current.status_id != change.expected_status_id:
        raise StatusIdMismatchError(current.job_id, change.expected_status_id, current.status_id)
    validate_transition(current.job_id, current.status, change.to)
    updates: dict[str, Any] = {
        "status": change.to,
        "status_id": str(uuid.uuid4()),
        "updated_at": later_than(current.updated_at, now),
    }
    if change.to is JobStatus.AWAITING_INPUT:
        updates["input_schema"] = json_copy(change.input_schema)
        updates["input_request_message"] = change.input_request_message
    elif current.status is JobStatus.AWAITING_INPUT:
        updates["input_schema"] = None
        updates["input_request_message"] = None
    if change.result is not None:
        updates["result"] = change.result
    if change.error is not None:
        updates["error"] = change.error
    return updates


def result_updates(current: Job, result: str, now: datetime) -> dict[str, Any]:
    """The Job fields store_result sets; only a RUNNING job may keep a result."""
    if current.status is not JobStatus.RUNNING:
        raise InvalidStateTransitionError(
            current.job_id, current.status.value, JobStatus.RUNNING.value
        )
    return {"result": result, "updated_at": later_than(current.updated_at, now)}


def invoice_updates(current: Invoice, change: InvoiceChange, now: datetime) -> dict[str, Any]:
    """The Invoice fields a change sets; empty when the change changes nothing."""
    if change.status is None and change.on_chain_state is None:
        return {}
    updated_at = later_than(current.updated_at, now)
    updates: dict[str, Any] = {"updated_at": updated_at}
    if change.status is not None:
        updates["status"] = change.status
        # Paid once: a repeated "paid" (a replayed monitor page) keeps the first time.
        if change.status is InvoiceStatus.PAID and current.paid_at is None:
            updates["paid_at"] = updated_at
    if change.on_chain_state is not None:
        updates["on_chain_state"] = change.on_chain_state
    return updates


def created_event_data(new: NewJob) -> dict[str, Any]:
    data: dict[str, Any] = {"input_hash": new.input_hash}
    if new.request_id is not None:
        data["request_id"] = new.request_id
    return data


def payment_requested_event_data(new: NewJob) -> dict[str, Any]:
    return {
        "blockchain_identifier": new.payment.blockchain_identifier,
        "pay_by_time": new.payment.pay_by_time,
        "submit_result_time": new.payment.submit_result_time,
    }


def new_records(new: NewJob, now: datetime) -> tuple[Job, Invoice]:
    """The AWAITING_PAYMENT job and its PENDING invoice that create() stores. The payment
    fields are the payment service's, never ours; input_data is copied in JSON shapes, as
    it will read back, not the caller's object."""
    terms = new.payment
    job = Job(
        job_id=str(uuid.uuid4()),
        status=JobStatus.AWAITING_PAYMENT,
        status_id=str(uuid.uuid4()),
        identifier_from_purchaser=new.identifier_from_purchaser,
        input_data=json_copy(new.input_data),
        input_hash=new.input_hash,
        blockchain_identifier=terms.blockchain_identifier,
        seller_vkey=terms.seller_vkey,
        agent_identifier=terms.agent_identifier,
        pay_by_time=terms.pay_by_time,
        submit_result_time=terms.submit_result_time,
        unlock_time=terms.unlock_time,
        external_dispute_unlock_time=terms.external_dispute_unlock_time,
        request_id=new.request_id,
        created_at=now,
        updated_at=now,
    )
    invoice = Invoice(
        blockchain_identifier=terms.blockchain_identifier,
        job_id=job.job_id,
        status=InvoiceStatus.PENDING,
        amounts=terms.amounts,
        created_at=now,
        updated_at=now,
    )
    return job, invoice
