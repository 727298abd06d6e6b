"""The Job: one sale of the agent's work. Immutable; a transition yields a new Job."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from agentjobs.server.domain.status import JobStatus
from agentjobs.server.domain.steps import Step


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


class Attention(BaseModel):
    """Why a job's money needs a person, and what they can do about it."""

    model_config = ConfigDict(frozen=True)

    reason: str
    message: str
    # The command or RPC that helps, e.g. "agentjobs recover <job_id>".
    action: str = ""
    since: AwareDatetime


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
    # Which contract holds the money (None: the service did not say; V1 then).
    source_type: str | None = None
    source_index: int | None = None


class Job(BaseModel):
    """A job and its payment. The payment fields are empty ("" / 0) until the payment
    service has answered (and stay so for a free job)."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    status: JobStatus
    # Changes with every status change; ProvideInput must echo the current one.
    status_id: str
    identifier_from_purchaser: str
    input_data: dict[str, Any] = Field(default_factory=dict)
    input_hash: str
    blockchain_identifier: str = ""
    seller_vkey: str = ""
    agent_identifier: str = ""
    pay_by_time: int = 0
    submit_result_time: int = 0
    unlock_time: int = 0
    external_dispute_unlock_time: int = 0
    # "fixed", "dynamic" or "free" (see domain.payment.Pricing).
    pricing: str = "fixed"
    payment_source_type: str | None = None
    payment_source_index: int | None = None
    # Epoch ms by which the agent must have produced its result (0: not known yet).
    deadline: int = 0
    input_schema: dict[str, Any] | None = None
    input_request_message: str | None = None
    # Stored as soon as the agent returns (while RUNNING), shown only once COMPLETED.
    result: str | None = None
    result_hash: str | None = None
    error: JobError | None = None
    attention: Attention | None = None
    # error-state-recovery calls made for this job's payment on our own initiative.
    recoveries: int = 0
    request_id: str | None = None
    # The job's next step, scheduled in the database (None: nothing to do).
    step: Step | None = None
    # Epoch ms when the step is due.
    run_at: int | None = None
    # How often the current step has been claimed (reset when the step changes).
    attempt: int = 0
    # Who holds the step and until when (epoch ms); written by claims, never decided.
    lease_owner: str | None = None
    lease_expires_at: int | None = None
    # Bumped by every write the lifecycle decides: the compare-and-set token.
    version: int = 0
    # Events written so far (the next event's sequence is this plus one).
    event_count: int = 0
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def is_free(self) -> bool:
        return self.pricing == "free"

    @property
    def has_payment(self) -> bool:
        return bool(self.blockchain_identifier)
