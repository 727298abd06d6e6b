"""The Job: one sale of the agent's work. Immutable; a transition yields a new Job."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from agentjobs.server.domain.status import JobStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobError(BaseModel):
    """Why a job failed: a stable UPPER_SNAKE reason and a human-readable message."""

    model_config = ConfigDict(frozen=True)

    reason: str
    message: str


class Amount(BaseModel):
    """Money: an integer in the smallest unit plus the unit ("" = lovelace)."""

    model_config = ConfigDict(frozen=True)

    amount: int
    unit: str = ""


class PaymentTerms(BaseModel):
    """What the payment service returned for a payment request. Never invented by us:
    the four times are epoch milliseconds exactly as the service sent them, because the
    buyer's purchase verifies a signature over them."""

    model_config = ConfigDict(frozen=True)

    blockchain_identifier: str
    seller_vkey: str
    agent_identifier: str
    pay_by_time: int
    submit_result_time: int
    unlock_time: int
    external_dispute_unlock_time: int
    amounts: tuple[Amount, ...] = ()


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    status: JobStatus
    # Changes with every status change; ProvideInput must echo the current one.
    status_id: str
    identifier_from_purchaser: str
    input_data: dict[str, Any] = Field(default_factory=dict)
    input_hash: str
    blockchain_identifier: str
    seller_vkey: str
    agent_identifier: str
    pay_by_time: int
    submit_result_time: int
    unlock_time: int
    external_dispute_unlock_time: int
    input_schema: dict[str, Any] | None = None
    input_request_message: str | None = None
    # Stored as soon as the agent returns (while RUNNING), shown only once COMPLETED.
    result: str | None = None
    error: JobError | None = None
    request_id: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal
