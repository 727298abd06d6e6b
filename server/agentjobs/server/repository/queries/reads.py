"""Reading jobs, events, invoices and the books."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, func, literal, or_, select, tuple_
from sqlalchemy.engine import Connection

from agentjobs.server.domain import (
    Amount,
    EarningsReport,
    Invoice,
    InvoiceStatus,
    Job,
    JobEvent,
    JobNotFoundError,
    JobStatus,
    MoneyTotal,
)
from agentjobs.server.domain.invoice import OPEN_INVOICE_STATUSES
from agentjobs.server.repository.pagination import Cursor, decode_page_token, encode_page_token
from agentjobs.server.repository.rows import (
    event_from_row,
    invoices_from_joined_rows,
    job_from_row,
)
from agentjobs.server.repository.tables import invoice_amounts, invoices, job_events, jobs
from agentjobs.server.repository.timestamps import as_utc

T = TypeVar("T")

# Identifiers per IN (...) query: far below SQLite's and asyncpg's parameter limits.
IN_CHUNK = 500

# The point reads, built once: building `select(jobs)` (a wide table) and its cache key
# on every call cost more than running it (GetJobStatus on SQLite: about half the read).
_JOB_BY_ID = select(jobs).where(jobs.c.job_id == bindparam("job_id"))
_JOB_BY_REQUEST_ID = select(jobs).where(jobs.c.request_id == bindparam("request_id"))
_EVENTS_AFTER = (
    select(job_events)
    .where(job_events.c.job_id == bindparam("job_id"), job_events.c.sequence > bindparam("after"))
    .order_by(job_events.c.sequence)
)
_JOB_EXISTS = select(jobs.c.job_id).where(jobs.c.job_id == bindparam("job_id"))


def listed() -> ColumnElement[bool]:
    """Jobs callers can know of: not a payment intent still waiting for its payment's
    answer (its StartJob has not answered; a payment found for it later lists it)."""
    return or_(jobs.c.blockchain_identifier.is_not(None), jobs.c.pricing == "free")


@dataclass(frozen=True)
class Page:
    items: list[Any]
    # Opaque keyset token for the next page; None on the last page.
    next_page_token: str | None = None


@dataclass(frozen=True)
class JobState:
    status: JobStatus
    status_id: str
    step: str | None
    lease_owner: str | None


def get_job(connection: Connection, job_id: str) -> Job:
    row = connection.execute(_JOB_BY_ID, {"job_id": job_id}).first()
    if row is None:
        raise JobNotFoundError(job_id)
    return job_from_row(row._mapping)


def get_job_and_invoice(connection: Connection, job_id: str) -> tuple[Job, Invoice | None]:
    job = get_job(connection, job_id)
    return job, invoice_of(connection, job)


def invoice_of(connection: Connection, job: Job) -> Invoice | None:
    if not job.blockchain_identifier:
        return None
    found = select_invoices(
        connection, [invoices.c.blockchain_identifier == job.blockchain_identifier], limit=1
    )
    return found[0] if found else None


def job_by_request_id(connection: Connection, request_id: str) -> Job | None:
    row = connection.execute(_JOB_BY_REQUEST_ID, {"request_id": request_id}).first()
    return None if row is None else job_from_row(row._mapping)


def job_states(connection: Connection, job_ids: Sequence[str]) -> dict[str, JobState]:
    found: dict[str, JobState] = {}
    wanted = list(dict.fromkeys(job_ids))
    for start in range(0, len(wanted), IN_CHUNK):
        query = select(
            jobs.c.job_id, jobs.c.status, jobs.c.status_id, jobs.c.step, jobs.c.lease_owner
        ).where(jobs.c.job_id.in_(wanted[start : start + IN_CHUNK]))
        for row in connection.execute(query):
            found[row.job_id] = JobState(
                JobStatus(row.status), row.status_id, row.step, row.lease_owner
            )
    return found


def jobs_for_payments(
    connection: Connection, blockchain_identifiers: Sequence[str], input_hashes: Sequence[str]
) -> tuple[dict[str, tuple[Job, Invoice | None]], dict[str, list[Job]]]:
    """Our jobs of these payments (with their invoices), and the payment intents (jobs
    still without a payment) by input hash."""
    by_payment: dict[str, tuple[Job, Invoice | None]] = {}
    wanted = list(dict.fromkeys(blockchain_identifiers))
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        found = [
            job_from_row(row._mapping)
            for row in connection.execute(
                select(jobs).where(jobs.c.blockchain_identifier.in_(chunk))
            )
        ]
        if not found:
            continue
        bills = {
            invoice.blockchain_identifier: invoice
            for invoice in select_invoices(
                connection,
                [invoices.c.blockchain_identifier.in_([j.blockchain_identifier for j in found])],
                limit=len(found),
            )
        }
        for job in found:
            by_payment[job.blockchain_identifier] = (job, bills.get(job.blockchain_identifier))
    intents: dict[str, list[Job]] = {}
    hashes = list(dict.fromkeys(input_hashes))
    for start in range(0, len(hashes), IN_CHUNK):
        query = (
            select(jobs)
            .where(
                jobs.c.blockchain_identifier.is_(None),
                jobs.c.input_hash.in_(hashes[start : start + IN_CHUNK]),
            )
            .order_by(jobs.c.created_at)
        )
        for row in connection.execute(query):
            job = job_from_row(row._mapping)
            if not job.is_free:
                intents.setdefault(job.input_hash, []).append(job)
    return by_payment, intents


def events_of(connection: Connection, job_id: str, after_sequence: int = 0) -> list[JobEvent]:
    rows = connection.execute(_EVENTS_AFTER, {"job_id": job_id, "after": after_sequence})
    found = [event_from_row(row._mapping) for row in rows]
    if not found:
        exists = connection.execute(_JOB_EXISTS, {"job_id": job_id}).first()
        if exists is None:
            raise JobNotFoundError(job_id)
    return found


def _before(created_at: Any, key: Any, cursor: Cursor) -> ColumnElement[bool]:
    """(created_at, key) < cursor, with each value bound as its column's type (a bare
    tuple would bind the timestamp untyped, and SQLite compares our text format)."""
    return tuple_(created_at, key) < tuple_(
        literal(cursor.created_at, created_at.type), literal(cursor.key, key.type)
    )


def _page(
    found: Sequence[T],
    page_size: int,
    kind: str,
    filter_value: str | None,
    cursor: Callable[[T], Cursor],
) -> Page:
    """A page of `page_size` from `found` (fetched with one row more than that): the
    extra row says a next page exists, which starts after the page's last item."""
    items = list(found[:page_size])
    token = None
    if len(found) > page_size:
        token = encode_page_token(kind, filter_value, cursor(items[-1]))
    return Page(items=items, next_page_token=token)


def list_jobs(
    connection: Connection,
    *,
    page_size: int,
    page_token: str | None,
    status: JobStatus | None,
    intents: bool = True,
) -> Page:
    filter_value = None if status is None else status.value
    query: Select[Any] = select(jobs)
    if not intents:
        query = query.where(listed())
    if filter_value is not None:
        query = query.where(jobs.c.status == filter_value)
    if page_token is not None:
        cursor = decode_page_token(page_token, "jobs", filter_value)
        query = query.where(_before(jobs.c.created_at, jobs.c.job_id, cursor))
    query = query.order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc()).limit(page_size + 1)
    found = [job_from_row(row._mapping) for row in connection.execute(query)]
    return _page(
        found, page_size, "jobs", filter_value, lambda job: Cursor(job.created_at, job.job_id)
    )


def list_attention(connection: Connection, *, page_size: int, page_token: str | None) -> Page:
    query: Select[Any] = select(jobs).where(jobs.c.attention.is_not(None))
    if page_token is not None:
        cursor = decode_page_token(page_token, "attention", None)
        query = query.where(_before(jobs.c.updated_at, jobs.c.job_id, cursor))
    query = query.order_by(jobs.c.updated_at.desc(), jobs.c.job_id.desc()).limit(page_size + 1)
    found = [job_from_row(row._mapping) for row in connection.execute(query)]
    # The cursor's time is the attention order's: updated_at.
    return _page(
        found, page_size, "attention", None, lambda job: Cursor(job.updated_at, job.job_id)
    )


def count_attention(connection: Connection) -> dict[str, int]:
    """Jobs needing attention, by reason."""
    rows = connection.execute(select(jobs.c.attention).where(jobs.c.attention.is_not(None)))
    counts: dict[str, int] = {}
    for row in rows:
        reason = str((row.attention or {}).get("reason", "UNKNOWN"))
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def count_jobs(
    connection: Connection, status: JobStatus | None = None, *, intents: bool = True
) -> int:
    query = select(func.count()).select_from(jobs)
    if not intents:
        query = query.where(listed())
    if status is not None:
        query = query.where(jobs.c.status == status.value)
    return int(connection.execute(query).scalar() or 0)


def select_invoices(
    connection: Connection,
    where: Sequence[ColumnElement[bool]],
    *,
    order: tuple[str, str] = ("created_at", "blockchain_identifier"),
    descending: bool = True,
    limit: int,
) -> list[Invoice]:
    """Invoices matching `where`, sorted by the two `order` columns, with their amounts
    (one query: the limited invoices joined to their amount rows)."""
    if limit <= 0:
        return []
    inner_order = [invoices.c[name] for name in order]
    chosen = (
        select(invoices)
        .where(*where)
        .order_by(*(c.desc() if descending else c.asc() for c in inner_order))
        .limit(limit)
        .subquery("chosen")
    )
    outer_order = [chosen.c[name] for name in order]
    query = (
        select(chosen, invoice_amounts.c.unit, invoice_amounts.c.amount)
        .select_from(
            chosen.outerjoin(
                invoice_amounts,
                invoice_amounts.c.blockchain_identifier == chosen.c.blockchain_identifier,
            )
        )
        .order_by(
            *(c.desc() if descending else c.asc() for c in outer_order),
            invoice_amounts.c.position,
        )
    )
    return invoices_from_joined_rows(row._mapping for row in connection.execute(query))


def list_invoices(
    connection: Connection,
    *,
    page_size: int,
    page_token: str | None,
    status: InvoiceStatus | None,
) -> Page:
    filter_value = None if status is None else status.value
    where: list[ColumnElement[bool]] = []
    if filter_value is not None:
        where.append(invoices.c.status == filter_value)
    if page_token is not None:
        cursor = decode_page_token(page_token, "invoices", filter_value)
        where.append(_before(invoices.c.created_at, invoices.c.blockchain_identifier, cursor))
    found = select_invoices(
        connection, where, order=("created_at", "blockchain_identifier"), limit=page_size + 1
    )
    return _page(
        found,
        page_size,
        "invoices",
        filter_value,
        lambda invoice: Cursor(invoice.created_at, invoice.blockchain_identifier),
    )


def source_types_in_use(connection: Connection) -> set[str | None]:
    """The payment source types of invoices whose money is not settled yet."""
    rows = connection.execute(
        select(invoices.c.payment_source_type)
        .where(invoices.c.status.in_([s.value for s in OPEN_INVOICE_STATUSES]))
        .distinct()
    )
    return {row.payment_source_type for row in rows}


def oldest_open_invoice(connection: Connection) -> datetime | None:
    value = connection.execute(
        select(func.min(invoices.c.created_at)).where(
            invoices.c.status.in_([s.value for s in OPEN_INVOICE_STATUSES])
        )
    ).scalar()
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return as_utc(value)


def earnings(
    connection: Connection,
    *,
    start: datetime | None,
    end: datetime | None,
    recent_limit: int,
) -> EarningsReport:
    in_range: list[ColumnElement[bool]] = []
    jobs_in_range: list[ColumnElement[bool]] = []
    if start is not None:
        in_range.append(invoices.c.created_at >= as_utc(start, "start"))
        jobs_in_range.append(jobs.c.created_at >= as_utc(start, "start"))
    if end is not None:
        in_range.append(invoices.c.created_at < as_utc(end, "end"))
        jobs_in_range.append(jobs.c.created_at < as_utc(end, "end"))
    counts: dict[InvoiceStatus, int] = dict.fromkeys(InvoiceStatus, 0)
    sums: dict[InvoiceStatus, list[Amount]] = {s: [] for s in InvoiceStatus}
    jobs_by_status: dict[JobStatus, int] = dict.fromkeys(JobStatus, 0)
    counted = select(invoices.c.status, func.count()).where(*in_range).group_by(invoices.c.status)
    for status, count in connection.execute(counted):
        counts[InvoiceStatus(status)] = int(count)
    summed = (
        select(invoices.c.status, invoice_amounts.c.unit, func.sum(invoice_amounts.c.amount))
        .join_from(
            invoices,
            invoice_amounts,
            invoice_amounts.c.blockchain_identifier == invoices.c.blockchain_identifier,
        )
        .where(*in_range)
        .group_by(invoices.c.status, invoice_amounts.c.unit)
    )
    for status, unit, total in connection.execute(summed):
        # PostgreSQL sums bigint as numeric (Decimal): exact, converted exactly.
        sums[InvoiceStatus(status)].append(Amount(amount=int(total), unit=unit))
    for status, count in connection.execute(
        select(jobs.c.status, func.count()).where(listed()).group_by(jobs.c.status)
    ):
        jobs_by_status[JobStatus(status)] = int(count)
    free = connection.execute(
        select(func.count()).select_from(jobs).where(jobs.c.pricing == "free", *jobs_in_range)
    ).scalar()
    recent = select_invoices(
        connection, in_range, order=("updated_at", "blockchain_identifier"), limit=recent_limit
    )
    # Ordered by unit in Python: a database collation may order text differently.
    totals = {
        status: MoneyTotal(
            count=counts[status], amounts=tuple(sorted(sums[status], key=lambda a: a.unit))
        )
        for status in InvoiceStatus
    }
    return EarningsReport(
        totals=totals,
        jobs_by_status=jobs_by_status,
        recent=tuple(recent),
        free_jobs=int(free or 0),
    )
