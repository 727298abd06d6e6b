"""Invoices (the money of one payment request) and the earnings report over them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from agentjobs.server.domain.job import Amount
from agentjobs.server.domain.status import JobStatus


class InvoiceStatus(StrEnum):
    PENDING = "pending"  # waiting for the buyer to lock funds
    PAID = "paid"  # funds locked in escrow, no result submitted
    EXPIRED = "expired"  # not paid before payByTime, or cancelled unpaid
    WITHDRAWN = "withdrawn"  # the seller withdrew: earned
    REFUNDED = "refunded"  # the funds went back to the buyer
    INVALID = "invalid"  # FundsOrDatumInvalid
    # submit-result accepted (200) but the result is not on chain yet: unconfirmed.
    SUBMITTED = "submitted"
    # ResultSubmitted on chain: ours to withdraw after unlockTime.
    CONFIRMED = "confirmed"
    # The buyer disputes the submitted result (a person decides, or the admins).
    DISPUTED = "disputed"
    # DisputedWithdrawn: the admins split the funds between buyer and seller.
    DISPUTE_RESOLVED = "dispute_resolved"


# Money not settled yet: the payment is still followed.
OPEN_INVOICE_STATUSES = frozenset(
    {
        InvoiceStatus.PENDING,
        InvoiceStatus.PAID,
        InvoiceStatus.SUBMITTED,
        InvoiceStatus.CONFIRMED,
        InvoiceStatus.DISPUTED,
    }
)


class Invoice(BaseModel):
    model_config = ConfigDict(frozen=True)

    blockchain_identifier: str
    job_id: str
    status: InvoiceStatus
    amounts: tuple[Amount, ...] = ()
    on_chain_state: str | None = None
    # The payment's NextAction as last seen ("" before any), with its error if any.
    next_action: str = ""
    payment_source_type: str | None = None
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
    # Jobs run without a payment request (free pricing), created in the range.
    free_jobs: int = 0
    recent: tuple[Invoice, ...] = ()

    def total(self, status: InvoiceStatus) -> MoneyTotal:
        return self.totals.get(status, MoneyTotal())
