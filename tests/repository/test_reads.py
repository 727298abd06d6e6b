"""The books and the operator's reads: earnings, attention, open invoices, job states,
and the monitor's look-up of jobs by payment."""

from __future__ import annotations

from typing import Any

from agentjobs.server.domain import (
    Amount,
    InvoiceStatus,
    Job,
    JobStatus,
    MoneyTotal,
)
from agentjobs.server.domain.lifecycle import Decision, InvoiceChange
from agentjobs.server.domain.lifecycle.attention import attention_cleared, needs_attention
from agentjobs.server.domain.steps import Step
from agentjobs.server.repository.base import JobRepository, JobState
from tests.repository.builders import (
    BIG_LOVELACE,
    T0_MS,
    at,
    event_only,
    funds_locked,
    insert,
    new_job,
    with_payment,
)

USDM = "c48cbb3d5e57ed56e276bc45f99ab39abe94e6cd7ac39fb402da47ad0014df105553444d"


async def _invoice_in(
    repo: JobRepository, status: InvoiceStatus, n: int, **terms_fields: Any
) -> Job:
    """A job created at at(n) whose invoice is in `status`, updated at at(100 + n)."""
    job = await with_payment(repo, now=at(n), **terms_fields)
    if status is not InvoiceStatus.PENDING:
        change = Decision(invoice=InvoiceChange(status=status), events=event_only().events)
        job = await repo.apply(job, change, at(100 + n))
    return job


async def test_empty_books_report_all_zeros(repo: JobRepository) -> None:
    report = await repo.earnings()
    assert set(report.totals) == set(InvoiceStatus)
    assert all(total == MoneyTotal() for total in report.totals.values())
    assert report.jobs_by_status == dict.fromkeys(JobStatus, 0)
    assert (report.free_jobs, report.recent) == (0, ())


async def test_earnings_add_exactly_per_status_and_unit(repo: JobRepository) -> None:
    amounts = (Amount(amount=BIG_LOVELACE), Amount(amount=5, unit=USDM))
    for n, status in enumerate(InvoiceStatus):
        await _invoice_in(repo, status, n, amounts=amounts)
    await _invoice_in(repo, InvoiceStatus.PENDING, 50, amounts=(Amount(amount=BIG_LOVELACE),))
    await _invoice_in(repo, InvoiceStatus.PAID, 51, amounts=())
    await insert(repo, free=True, created_at=at(1))
    await insert(repo, free=True, created_at=at(2))
    report = await repo.earnings()
    for status in InvoiceStatus:
        total = report.total(status)
        if status is InvoiceStatus.PENDING:
            assert total == MoneyTotal(
                count=2,
                amounts=(Amount(amount=2 * BIG_LOVELACE), Amount(amount=5, unit=USDM)),
            )
        elif status is InvoiceStatus.PAID:
            assert total == MoneyTotal(count=2, amounts=amounts)
        else:
            assert total == MoneyTotal(count=1, amounts=amounts), status
    assert type(report.total(InvoiceStatus.PENDING).amounts[0].amount) is int
    # The new statuses are in the books like the old ones.
    for status in (
        InvoiceStatus.SUBMITTED,
        InvoiceStatus.CONFIRMED,
        InvoiceStatus.DISPUTED,
        InvoiceStatus.DISPUTE_RESOLVED,
    ):
        assert report.total(status).count == 1
    assert report.free_jobs == 2
    assert report.jobs_by_status[JobStatus.AWAITING_PAYMENT] == len(InvoiceStatus) + 2
    assert report.jobs_by_status[JobStatus.RUNNING] == 2  # the free jobs
    # recent: the most recently updated first.
    assert [i.updated_at for i in report.recent] == sorted(
        (i.updated_at for i in report.recent), reverse=True
    )
    assert len(report.recent) == 10
    assert report.recent[0].updated_at == at(151)


async def test_earnings_cover_what_was_created_in_the_range(repo: JobRepository) -> None:
    for n in range(6):
        await _invoice_in(repo, InvoiceStatus.WITHDRAWN, n)
        await insert(repo, free=True, created_at=at(n))
    report = await repo.earnings(start=at(2), end=at(5), recent_limit=2)
    assert report.total(InvoiceStatus.WITHDRAWN) == MoneyTotal(
        count=3, amounts=(Amount(amount=3 * BIG_LOVELACE),)
    )
    assert report.free_jobs == 3
    assert [i.created_at for i in report.recent] == [at(4), at(3)]
    # Jobs per status are counted now, whatever the range (it selects invoices).
    assert report.jobs_by_status[JobStatus.AWAITING_PAYMENT] == 6
    assert report.jobs_by_status[JobStatus.RUNNING] == 6
    everything = await repo.earnings(recent_limit=0)
    assert everything.total(InvoiceStatus.WITHDRAWN).count == 6
    assert (everything.free_jobs, everything.recent) == (6, ())


async def test_the_attention_view(repo: JobRepository) -> None:
    flagged: list[Job] = []
    for n, reason in enumerate(["DISPUTED", "API_KEY_MISMATCH", "DISPUTED"]):
        job = await with_payment(repo, now=at(n))
        decision = needs_attention(job, reason, f"look at {n}", f"agentjobs recover {n}", at(n))
        flagged.append(await repo.apply(job, decision, at(10 + n)))
    await with_payment(repo)  # nothing to look at
    assert (await repo.list_attention()).items == list(reversed(flagged))
    first = await repo.list_attention(page_size=2)
    assert first.items == [flagged[2], flagged[1]]
    assert first.next_page_token is not None
    rest = await repo.list_attention(page_size=2, page_token=first.next_page_token)
    assert (rest.items, rest.next_page_token) == ([flagged[0]], None)
    assert await repo.count_attention() == {"DISPUTED": 2, "API_KEY_MISMATCH": 1}
    attention = flagged[1].attention
    assert attention is not None and attention.since == at(1)
    cleared = await repo.apply(flagged[1], attention_cleared(flagged[1]), at(20))
    assert cleared.attention is None
    assert await repo.count_attention() == {"DISPUTED": 2}
    assert (await repo.list_attention()).items == [flagged[2], flagged[0]]


async def test_source_types_in_use_are_those_of_unsettled_money(repo: JobRepository) -> None:
    assert await repo.source_types_in_use() == set()
    await _invoice_in(repo, InvoiceStatus.PENDING, 1, source_type="Web3CardanoV1")
    await _invoice_in(repo, InvoiceStatus.CONFIRMED, 2, source_type=None)
    await _invoice_in(repo, InvoiceStatus.WITHDRAWN, 3, source_type="Web3CardanoV2")
    await _invoice_in(repo, InvoiceStatus.REFUNDED, 4, source_type="Web3CardanoV2")
    assert await repo.source_types_in_use() == {"Web3CardanoV1", None}
    await _invoice_in(repo, InvoiceStatus.DISPUTED, 5, source_type="Web3CardanoV2")
    assert await repo.source_types_in_use() == {"Web3CardanoV1", None, "Web3CardanoV2"}


async def test_the_oldest_open_invoice(repo: JobRepository) -> None:
    assert await repo.oldest_open_invoice() is None
    await _invoice_in(repo, InvoiceStatus.WITHDRAWN, 3)
    assert await repo.oldest_open_invoice() is None
    await _invoice_in(repo, InvoiceStatus.SUBMITTED, 7)
    await _invoice_in(repo, InvoiceStatus.PENDING, 5)
    await _invoice_in(repo, InvoiceStatus.EXPIRED, 4)
    oldest = await repo.oldest_open_invoice()
    assert oldest == at(5)
    assert oldest is not None and oldest.utcoffset() is not None


async def test_job_states(repo: JobRepository) -> None:
    waiting = await with_payment(repo)
    runs = await funds_locked(repo, await with_payment(repo))
    (held,) = await repo.claim("w1", now_ms=T0_MS, lease_ms=1_000, limit=1, affinity_grace_ms=0)
    assert held.job_id == runs.job_id
    done = await insert(repo, status=JobStatus.COMPLETED, step=None, run_at=None)
    missing = [f"missing-{n}" for n in range(1_200)]  # several IN (...) chunks
    wanted = [*missing[:600], waiting.job_id, runs.job_id, runs.job_id, *missing[600:], done.job_id]
    assert await repo.job_states(wanted) == {
        waiting.job_id: JobState(JobStatus.AWAITING_PAYMENT, waiting.status_id, "expire", None),
        runs.job_id: JobState(JobStatus.RUNNING, runs.status_id, Step.RUN.value, "w1"),
        done.job_id: JobState(JobStatus.COMPLETED, done.status_id, None, None),
    }
    assert await repo.job_states([]) == {}


async def test_jobs_for_payments(repo: JobRepository) -> None:
    paid = [await with_payment(repo, now=at(n)) for n in range(3)]
    paid[0] = await funds_locked(repo, paid[0])
    digest = "ab" * 32
    late = await insert(repo, input_hash=digest, created_at=at(9))
    early = await insert(repo, input_hash=digest, created_at=at(8))
    await insert(repo, input_hash=digest, free=True)  # runs without a payment: no intent
    attached = await with_payment(repo, await insert(repo, input_hash=digest))
    other = await insert(repo, input_hash="cd" * 32)
    unknown = [f"bid-unknown-{n}" for n in range(700)]
    by_payment, intents = await repo.jobs_for_payments(
        [*unknown, *(j.blockchain_identifier for j in paid), attached.blockchain_identifier],
        [digest, "ef" * 32, digest],
    )
    assert set(by_payment) == {j.blockchain_identifier for j in [*paid, attached]}
    for job in [*paid, attached]:
        assert by_payment[job.blockchain_identifier] == await repo.get_with_invoice(job.job_id)
    invoice = by_payment[paid[0].blockchain_identifier][1]
    assert invoice is not None and invoice.status is InvoiceStatus.PAID
    assert intents == {digest: [early, late]}
    assert other.job_id not in {j.job_id for js in intents.values() for j in js}
    assert await repo.jobs_for_payments([], []) == ({}, {})


async def test_a_job_and_its_invoice_read_together(repo: JobRepository) -> None:
    job = await with_payment(repo, amounts=(Amount(amount=1), Amount(amount=2, unit=USDM)))
    read, invoice = await repo.get_with_invoice(job.job_id)
    assert read == job
    assert invoice is not None
    assert invoice.amounts == (Amount(amount=1), Amount(amount=2, unit=USDM))
    assert (await repo.list_invoices()).items == [invoice]
    assert await repo.invoice_of(new_job()) is None
