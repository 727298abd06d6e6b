"""Jobs, payments and decisions the repository tests store.

Jobs are built as StartJob builds them (an intent awaiting its payment, or a free job
that runs at once); payments and transitions come from the real lifecycle functions
wherever the test is about what the lifecycle writes, and hand-made Decisions where it
is about the applier's mechanics.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from agentjobs.server.domain import (
    Amount,
    EventType,
    Invoice,
    Job,
    JobStatus,
    PaymentTerms,
)
from agentjobs.server.domain.lifecycle import (
    Decision,
    NewEvent,
    Policy,
    free_job_started,
    ms,
    on_payment,
    on_payment_requested,
)
from agentjobs.server.domain.payment import NextAction, OnChainState, PaymentState
from agentjobs.server.domain.steps import Step
from agentjobs.server.repository.base import JobRepository, Lease

_numbers = itertools.count(1)

# More than 2^31: the books must add lovelace exactly, never through a float or int32.
BIG_LOVELACE = 3_000_000_007
T0 = datetime(2030, 1, 1, tzinfo=UTC)
T0_MS = ms(T0)
POLICY = Policy()
HOUR_MS = 3_600_000


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def at_ms(seconds: float) -> int:
    return ms(at(seconds))


def new_job(
    *,
    request_id: str | None = None,
    input_data: dict[str, Any] | None = None,
    input_hash: str | None = None,
    created_at: datetime = T0,
    free: bool = False,
    **fields: Any,
) -> Job:
    """A job as StartJob writes it: an intent awaiting its payment (step
    REQUEST_PAYMENT), or a free job that runs at once. `fields` override anything."""
    n = next(_numbers)
    values: dict[str, Any] = {
        "job_id": str(uuid.uuid4()),
        "status_id": str(uuid.uuid4()),
        "identifier_from_purchaser": "aabbccddeeff0011",
        "input_data": {"text": f"job {n}", "nested": {"n": n}}
        if input_data is None
        else input_data,
        "input_hash": f"{n:064x}" if input_hash is None else input_hash,
        "request_id": request_id,
        "agent_identifier": "agent" + "0" * 60,
        "created_at": created_at,
        "updated_at": created_at,
    }
    if free:
        extra, step = free_job_started(created_at, POLICY)
        values.update(extra, status=JobStatus.RUNNING, step=step.step, run_at=step.run_at)
    else:
        values.update(
            status=JobStatus.AWAITING_PAYMENT,
            step=Step.REQUEST_PAYMENT,
            run_at=ms(created_at) + 60_000,
        )
    values.update(fields)
    return Job(**values)


def created_events(job: Job) -> list[NewEvent]:
    return [NewEvent(EventType.CREATED, "", {"input_hash": job.input_hash})]


def terms(
    *,
    amounts: tuple[Amount, ...] = (Amount(amount=BIG_LOVELACE),),
    pay_by_time: int = T0_MS + HOUR_MS,
    source_type: str | None = None,
    source_index: int | None = None,
) -> PaymentTerms:
    """What the payment service answers to POST /payment (times in epoch ms)."""
    return PaymentTerms(
        blockchain_identifier=f"bid-{uuid.uuid4().hex}",
        seller_vkey="seller-vkey",
        agent_identifier="agent" + "0" * 60,
        pay_by_time=pay_by_time,
        submit_result_time=pay_by_time + 5 * HOUR_MS,
        unlock_time=pay_by_time + 6 * HOUR_MS,
        external_dispute_unlock_time=pay_by_time + 7 * HOUR_MS,
        amounts=amounts,
        source_type=source_type,
        source_index=source_index,
    )


def payment(
    job: Job,
    on_chain_state: str | None,
    requested_action: str = NextAction.WAITING_FOR_EXTERNAL_ACTION,
    **fields: Any,
) -> PaymentState:
    return PaymentState(
        blockchain_identifier=job.blockchain_identifier,
        on_chain_state=on_chain_state,
        requested_action=requested_action,
        **fields,
    )


async def insert(repo: JobRepository, job: Job | None = None, **fields: Any) -> Job:
    job = new_job(**fields) if job is None else job
    return await repo.insert(job, created_events(job))


async def with_payment(
    repo: JobRepository,
    job: Job | None = None,
    *,
    now: datetime = T0,
    lease: Lease | None = None,
    **terms_fields: Any,
) -> Job:
    """A stored intent whose payment the service created (on_payment_requested)."""
    if job is None:
        job = new_job(created_at=now)
        job = await repo.insert(job, created_events(job), lease=lease)
    decision = on_payment_requested(job, terms(**terms_fields), now, POLICY)
    return await repo.apply(job, decision, now)


async def funds_locked(
    repo: JobRepository, job: Job, invoice: Invoice | None = None, *, now: datetime = T0
) -> Job:
    """The buyer locked funds (on_payment): RUNNING, invoice PAID, step RUN."""
    if invoice is None:
        job, invoice = await repo.get_with_invoice(job.job_id)
    decision = on_payment(job, invoice, payment(job, OnChainState.FUNDS_LOCKED), now, POLICY)
    assert decision.status is JobStatus.RUNNING, decision
    return await repo.apply(job, decision, now)


async def running(repo: JobRepository, *, now: datetime = T0, **terms_fields: Any) -> Job:
    """A paid job whose RUN step is due at `now`."""
    return await funds_locked(repo, await with_payment(repo, now=now, **terms_fields), now=now)


def event_only(detail: str = "") -> Decision:
    """A decision that only appends one event (the step is kept)."""
    return Decision(events=(NewEvent(EventType.PAYMENT_STATE_CHANGED, detail),))
