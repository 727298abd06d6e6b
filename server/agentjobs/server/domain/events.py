"""Typed lifecycle events. The job_events table is append-only: the job's history."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from agentjobs.server.domain.status import JobStatus


class EventType(StrEnum):
    CREATED = "CREATED"
    PAYMENT_REQUESTED = "PAYMENT_REQUESTED"
    FUNDS_LOCKED = "FUNDS_LOCKED"
    STARTED = "STARTED"
    INPUT_REQUESTED = "INPUT_REQUESTED"
    INPUT_PROVIDED = "INPUT_PROVIDED"
    RESULT_STORED = "RESULT_STORED"
    # submit-result answered 200: the request is queued, not yet on chain.
    RESULT_SUBMITTED = "RESULT_SUBMITTED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    PAYMENT_EXPIRED = "PAYMENT_EXPIRED"
    WITHDRAWN = "WITHDRAWN"
    REFUNDED = "REFUNDED"
    PAYMENT_STATE_CHANGED = "PAYMENT_STATE_CHANGED"
    # onChainState ResultSubmitted: our result hash is on chain.
    RESULT_CONFIRMED = "RESULT_CONFIRMED"
    # authorize-refund answered 200 (the chain job then builds the transaction).
    REFUND_AUTHORIZED = "REFUND_AUTHORIZED"
    DISPUTED = "DISPUTED"
    # DisputedWithdrawn: the network's admins settled the dispute.
    DISPUTE_RESOLVED = "DISPUTE_RESOLVED"
    # error-state-recovery answered 200 for an action the chain job had parked.
    RECOVERY_REQUESTED = "RECOVERY_REQUESTED"
    # The job's money needs a person (see Job.attention); cleared by a later event.
    ATTENTION_NEEDED = "ATTENTION_NEEDED"


class JobEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    # 1, 2, 3 ... per job, in the order the events were written.
    sequence: int
    type: EventType
    # The job's status after the event.
    status: JobStatus
    detail: str = ""
    # Event-specific facts (e.g. the request_id and input_hash of INPUT_PROVIDED).
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime
