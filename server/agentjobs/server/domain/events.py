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
    RESULT_SUBMITTED = "RESULT_SUBMITTED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    PAYMENT_EXPIRED = "PAYMENT_EXPIRED"
    WITHDRAWN = "WITHDRAWN"
    REFUNDED = "REFUNDED"
    PAYMENT_STATE_CHANGED = "PAYMENT_STATE_CHANGED"


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
