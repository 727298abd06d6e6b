"""Invoices and the earnings report: exact integer money, per status and unit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentjobs.server.domain import (
    Amount,
    EventType,
    InvalidStateTransitionError,
    InvoiceNotFoundError,
    InvoiceStatus,
    JobStatus,
    MoneyTotal,
)
from agentjobs.server.repository.base import InvoiceChange, JobRepository, StatusChange
from tests.repository.builders import BIG_LOVELACE, T0, ManualClock, funds_locked, new_job
from tests.repository.conftest import Backend

TOKEN_UNIT = "c0ffee" * 5 + "746f6b656e"


async def test_create_makes_a_pending_invoice(repo: JobRepository) -> None:
    amounts = (Amount(amount=BIG_LOVELACE), Amount(amount=7, unit=TOKEN_UNIT))
    job = await repo.create(new_job(amounts=amounts))
    invoice = await repo.get_invoice(job.blockchain_identifier)
    assert invoice.job_id == job.job_id
    assert invoice.status is InvoiceStatus.PENDING
    assert invoice.amounts == amounts
    assert invoice.paid_at is None
    assert invoice.on_chain_state is None
    assert invoice.created_at == invoice.updated_at == job.created_at


async def test_an_invoice_without_amounts(repo: JobRepository) -> None:
    job = await repo.create(new_job(amounts=()))
    assert (await repo.get_invoice(job.blockchain_identifier)).amounts == ()


async def test_unknown_invoice_raises_invoice_not_found(repo: JobRepository) -> None:
    with pytest.raises(InvoiceNotFoundError):
        await repo.get_invoice("no-such-payment")


async def test_paying_sets_paid_at_with_the_transition(backend: Backend) -> None:
    clock = ManualClock()
    repo = await backend.open(clock)
    job = await repo.create(new_job())
    clock.advance()
    await repo.update_status(job.job_id, funds_locked())
    invoice = await repo.get_invoice(job.blockchain_identifier)
    assert invoice.status is InvoiceStatus.PAID
    assert invoice.on_chain_state == "FundsLocked"
    assert invoice.paid_at == clock.now
    assert invoice.updated_at == clock.now
    clock.advance()
    await repo.record_event(
        job.job_id,
        EventType.WITHDRAWN,
        detail="Withdrawn",
        invoice=InvoiceChange(status=InvoiceStatus.WITHDRAWN, on_chain_state="Withdrawn"),
    )
    withdrawn = await repo.get_invoice(job.blockchain_identifier)
    assert (withdrawn.status, withdrawn.on_chain_state) == (InvoiceStatus.WITHDRAWN, "Withdrawn")
    assert withdrawn.paid_at == invoice.paid_at
    assert withdrawn.updated_at == clock.now
    assert (await repo.get(job.job_id)).status is JobStatus.RUNNING


async def test_an_on_chain_state_alone_leaves_the_status(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    await repo.update_status(job.job_id, funds_locked())
    await repo.record_event(
        job.job_id,
        EventType.PAYMENT_STATE_CHANGED,
        invoice=InvoiceChange(on_chain_state="ResultSubmitted"),
    )
    invoice = await repo.get_invoice(job.blockchain_identifier)
    assert (invoice.status, invoice.on_chain_state) == (InvoiceStatus.PAID, "ResultSubmitted")


async def test_a_rejected_transition_leaves_the_invoice_alone(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    with pytest.raises(InvalidStateTransitionError):
        await repo.update_status(
            job.job_id,
            StatusChange(
                to=JobStatus.COMPLETED,
                event=EventType.COMPLETED,
                invoice=InvoiceChange(status=InvoiceStatus.WITHDRAWN),
            ),
        )
    assert (await repo.get_invoice(job.blockchain_identifier)).status is InvoiceStatus.PENDING


async def test_list_open_invoices_follows_pending_and_paid(repo: JobRepository) -> None:
    pending, paid, expired = [await repo.create(new_job()) for _ in range(3)]
    await repo.update_status(paid.job_id, funds_locked())
    await repo.update_status(
        expired.job_id,
        StatusChange(
            to=JobStatus.FAILED,
            event=EventType.PAYMENT_EXPIRED,
            invoice=InvoiceChange(status=InvoiceStatus.EXPIRED),
        ),
    )
    open_ids = {i.blockchain_identifier for i in await repo.list_open_invoices()}
    assert open_ids == {pending.blockchain_identifier, paid.blockchain_identifier}
    assert len(await repo.list_open_invoices(limit=1)) == 1


async def test_empty_books_report_all_zeros(repo: JobRepository) -> None:
    report = await repo.earnings()
    assert set(report.jobs_by_status) == set(JobStatus)
    assert all(count == 0 for count in report.jobs_by_status.values())
    for status in InvoiceStatus:
        assert report.total(status) == MoneyTotal()
    assert report.recent == ()


async def test_earnings_add_exactly_per_status_and_unit(repo: JobRepository) -> None:
    amounts = (Amount(amount=BIG_LOVELACE), Amount(amount=2**40 + 1, unit=TOKEN_UNIT))
    jobs = [await repo.create(new_job(amounts=amounts)) for _ in range(5)]
    await repo.create(new_job(amounts=(Amount(amount=1),)))
    for job in jobs[:3]:
        await repo.update_status(job.job_id, funds_locked())
    await repo.record_event(
        jobs[0].job_id,
        EventType.WITHDRAWN,
        invoice=InvoiceChange(status=InvoiceStatus.WITHDRAWN, on_chain_state="Withdrawn"),
    )
    report = await repo.earnings()
    assert report.total(InvoiceStatus.WITHDRAWN) == MoneyTotal(count=1, amounts=amounts)
    assert report.total(InvoiceStatus.PAID) == MoneyTotal(
        count=2,
        amounts=(
            Amount(amount=2 * BIG_LOVELACE),
            Amount(amount=2 * (2**40 + 1), unit=TOKEN_UNIT),
        ),
    )
    assert report.total(InvoiceStatus.PENDING) == MoneyTotal(
        count=3,
        amounts=(
            Amount(amount=2 * BIG_LOVELACE + 1),
            Amount(amount=2 * (2**40 + 1), unit=TOKEN_UNIT),
        ),
    )
    assert report.total(InvoiceStatus.REFUNDED) == MoneyTotal()
    assert report.jobs_by_status == {
        JobStatus.AWAITING_PAYMENT: 3,
        JobStatus.RUNNING: 3,
        JobStatus.AWAITING_INPUT: 0,
        JobStatus.COMPLETED: 0,
        JobStatus.FAILED: 0,
    }


async def test_earnings_cover_invoices_created_in_the_range(backend: Backend) -> None:
    clock = ManualClock()
    repo = await backend.open(clock)
    early = await repo.create(new_job(amounts=(Amount(amount=1),)))
    clock.advance(timedelta(days=1))
    middle = await repo.create(new_job(amounts=(Amount(amount=BIG_LOVELACE),)))
    clock.advance(timedelta(days=1))
    await repo.create(new_job(amounts=(Amount(amount=100),)))
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=2)

    report = await repo.earnings(start=start, end=end)
    assert report.total(InvoiceStatus.PENDING) == MoneyTotal(
        count=1, amounts=(Amount(amount=BIG_LOVELACE),)
    )
    assert [i.job_id for i in report.recent] == [middle.job_id]
    # start is inclusive, end exclusive.
    assert (await repo.earnings(start=T0, end=start)).total(InvoiceStatus.PENDING).count == 1
    assert (await repo.earnings(start=start)).total(InvoiceStatus.PENDING).count == 2
    only_early = await repo.earnings(end=T0 + timedelta(microseconds=1))
    assert [i.job_id for i in only_early.recent] == [early.job_id]


async def test_recent_invoices_are_the_most_recently_updated(backend: Backend) -> None:
    clock = ManualClock()
    repo = await backend.open(clock)
    jobs = []
    for _ in range(4):
        jobs.append(await repo.create(new_job()))
        clock.advance()
    await repo.update_status(jobs[0].job_id, funds_locked())
    report = await repo.earnings(recent_limit=2)
    assert [i.job_id for i in report.recent] == [jobs[0].job_id, jobs[3].job_id]
    assert report.recent[0].status is InvoiceStatus.PAID
    assert (await repo.earnings(recent_limit=0)).recent == ()


async def test_naive_times_are_refused(repo: JobRepository) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await repo.earnings(start=T0.replace(tzinfo=None))
