"""Invoices (the money of one payment request) and the earnings report over them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from agentjobs.server.domain.job import Amount
from agentjobs.server.domain.status import JobStatus


class InvoiceStatus(StrEnum):
    PENDING = "pending"  # waiting for the buyer to lock funds
    PAID = "paid"  # funds locked in escrow
    EXPIRED = "expired"  # not paid before payByTime, or cancelled unpaid
    WITHDRAWN = "withdrawn"  # the seller withdrew: earned
    REFUNDED = "refunded"  # the funds went back to the buyer
    INVALID = "invalid"  # FundsOrDatumInvalid


class Invoice(BaseModel):
    model_config = ConfigDict(frozen=True)

    blockchain_identifier: str
    job_id: str
    status: InvoiceStatus
    amounts: tuple[Amount, ...] = ()
    on_chain_state: str | None = None
    created_at: AwareDatetime
    paid_at: AwareDatetime | None = None
    updated_at: AwareDatetime


class MoneyTotal(BaseModel):
    model_config = ConfigDict(frozen=True)

    count: int = 0
    # Summed per unit, ordered by unit.
    amounts: tuple[Amount, ...] = ()


class EarningsReport(BaseModel):
    """Totals by state of money, from the durable books. Empty books: all zero."""

    model_config = ConfigDict(frozen=True)

    totals: dict[InvoiceStatus, MoneyTotal] = Field(default_factory=dict)
    jobs_by_status: dict[JobStatus, int] = Field(default_factory=dict)
    recent: tuple[Invoice, ...] = ()

    def total(self, status: InvoiceStatus) -> MoneyTotal:
        return self.totals.get(status, MoneyTotal())
