"""Values the repository tests store: new jobs with unique payments, a settable clock."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from agentjobs.server.domain import Amount, EventType, InvoiceStatus, JobStatus, PaymentTerms
from agentjobs.server.repository.base import InvoiceChange, NewJob, StatusChange

_numbers = itertools.count(1)

# More than 2^31: the books must add lovelace exactly, never through a float or int32.
BIG_LOVELACE = 3_000_000_007
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def new_job(
    *,
    request_id: str | None = None,
    amounts: tuple[Amount, ...] = (Amount(amount=BIG_LOVELACE),),
    pay_by_time: int = 1_900_000_000_000,
    input_data: dict[str, Any] | None = None,
) -> NewJob:
    n = next(_numbers)
    return NewJob(
        identifier_from_purchaser="aabbccddeeff0011",
        input_data={"text": f"job {n}", "nested": {"n": n}} if input_data is None else input_data,
        input_hash=f"{n:064x}",
        payment=PaymentTerms(
            blockchain_identifier=f"bid-{uuid.uuid4().hex}",
            seller_vkey="seller-vkey",
            agent_identifier="agent" + "0" * 60,
            pay_by_time=pay_by_time,
            submit_result_time=pay_by_time + 3_600_000,
            unlock_time=pay_by_time + 7_200_000,
            external_dispute_unlock_time=pay_by_time + 10_800_000,
            amounts=amounts,
        ),
        request_id=request_id,
    )


class ManualClock:
    """A wall clock that moves only when told to (or never: equal timestamps)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta = timedelta(seconds=1)) -> datetime:
        self.now += delta
        return self.now


def funds_locked() -> StatusChange:
    """What the payment monitor writes when the buyer locks funds."""
    return StatusChange(
        to=JobStatus.RUNNING,
        expected=JobStatus.AWAITING_PAYMENT,
        event=EventType.FUNDS_LOCKED,
        invoice=InvoiceChange(status=InvoiceStatus.PAID, on_chain_state="FundsLocked"),
    )


def completed(result: str = "the result") -> StatusChange:
    return StatusChange(
        to=JobStatus.COMPLETED,
        expected=JobStatus.RUNNING,
        event=EventType.COMPLETED,
        result=result,
    )
