"""SqlJobRepository: the contract on SQLAlchemy Core (async), for SQLite and PostgreSQL.

Atomicity of a transition: the job row is read with SELECT ... FOR UPDATE (PostgreSQL
locks it, so concurrent writers of one job queue up and then see the committed status;
SQLite has no row locks, but every write transaction there begins IMMEDIATE and so
holds the database's write lock), validated, then written with a conditional
UPDATE ... WHERE status = <the status read>, whose row count is checked: even if the
locking above were lost, a conflicting transition could never overwrite silently.
The event sequence number is computed in the same transaction, under the same lock.

Within one process, SQLite writers also queue on an asyncio.Lock: waiting there is
cheap and fair, whereas waiting in SQLite's busy handler is a sleep-and-retry loop.
The busy timeout still covers writers in other processes.

One repository object serves one event loop (its connection pool belongs to it);
threads that want their own loops open their own repository.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import ColumnElement, Executable, Select, func, literal, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agentjobs.server import telemetry
from agentjobs.server.domain import (
    Amount,
    EarningsReport,
    EventType,
    InvalidStateTransitionError,
    Invoice,
    InvoiceNotFoundError,
    InvoiceStatus,
    Job,
    JobEvent,
    JobNotFoundError,
    JobStatus,
    MoneyTotal,
)
from agentjobs.server.repository.base import (
    DEFAULT_PAGE_SIZE,
    InvoiceChange,
    NewJob,
    Page,
    StatusChange,
    Watermark,
)
from agentjobs.server.repository.changes import (
    created_event_data,
    invoice_updates,
    json_copy,
    new_records,
    payment_requested_event_data,
    result_updates,
    transition_updates,
)
from agentjobs.server.repository.database_url import Backend, DatabaseTarget, parse_database_url
from agentjobs.server.repository.engines import (
    create_engine_for,
    snapshot_engine,
    sqlite_point_reader,
    write_engine,
)
from agentjobs.server.repository.migrator import upgrade_to_head
from agentjobs.server.repository.pagination import (
    Cursor,
    decode_page_token,
    encode_page_token,
    page_size_or_default,
)
from agentjobs.server.repository.sql_rows import (
    amount_rows,
    column_values,
    event_from_row,
    invoice_from_row,
    invoice_row,
    invoices_from_joined_rows,
    job_from_row,
    job_row,
)
from agentjobs.server.repository.tables import (
    invoice_amounts,
    invoices,
    job_events,
    jobs,
    monitor_watermarks,
)
from agentjobs.server.repository.timestamps import Clock, as_utc, utcnow

# Identifiers per IN (...) query: far below SQLite's and asyncpg's parameter limits.
_IN_CHUNK = 500
_OPEN_INVOICE_STATUSES = (InvoiceStatus.PENDING.value, InvoiceStatus.PAID.value)


log = logging.getLogger(__name__)


def _before(created_at: Any, key: Any, cursor: Cursor) -> ColumnElement[bool]:
    """(created_at, key) < cursor, with each value bound as its column's type (a bare
    tuple would bind the timestamp untyped, and SQLite compares our text format)."""
    return tuple_(created_at, key) < tuple_(
        literal(cursor.created_at, created_at.type), literal(cursor.key, key.type)
    )


def _first_row(engine: Engine, query: Select[Any]) -> RowMapping | None:
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else row._mapping


class SqlJobRepository:
    def __init__(self, database_url: str | DatabaseTarget | None, *, clock: Clock = utcnow):
        target = (
            database_url
            if isinstance(database_url, DatabaseTarget)
            else parse_database_url(database_url)
        )
        if target.backend is Backend.MEMORY:
            raise ValueError("SqlJobRepository needs a SQLite or PostgreSQL URL")
        self.target = target
        self._clock = clock
        self._engine: AsyncEngine | None = None
        self._writer: AsyncEngine | None = None
        self._snapshots: AsyncEngine | None = None
        # SQLite only: single-row reads on the event loop's thread (see engines.py).
        self._point_reads: Engine | None = None
        self._opening = asyncio.Lock()
        self._sqlite_writers = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------
    async def open(self) -> None:
        """Connect and bring the schema to head (idempotent, safe with concurrent
        starters: see migrator)."""
        async with self._opening:
            if self._engine is not None:
                return
            engine = create_engine_for(self.target)
            try:
                await upgrade_to_head(engine, self.target)
            except BaseException:
                await engine.dispose()
                raise
            self._engine = engine
            self._writer, self._snapshots = write_engine(engine), snapshot_engine(engine)
            if self.target.backend is Backend.SQLITE:
                self._point_reads = sqlite_point_reader(self.target)

    async def close(self) -> None:
        engine, point_reads = self._engine, self._point_reads
        self._engine = self._writer = self._snapshots = self._point_reads = None
        if point_reads is not None:
            point_reads.dispose()
        if engine is not None:
            await engine.dispose()

    def _reader(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for one SELECT."""
        if self._engine is None:
            raise RuntimeError("the repository is not open: call open() first")
        return self._engine.connect()

    async def _first(self, query: Select[Any]) -> RowMapping | None:
        """The first row of a one-row SELECT: on SQLite read on the event loop's thread
        (see engines.py), unless SQLite answers busy; otherwise the async engine."""
        if self._point_reads is not None:
            try:
                return _first_row(self._point_reads, query)
            except OperationalError as busy:
                # Never wait on the event loop: the async engine waits off it, and raises
                # if the database is really broken.
                log.debug("SQLite point read fell back to the async engine: %s", busy)
        async with self._reader() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else row._mapping

    def _snapshot(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection whose SELECTs all see the same committed state."""
        if self._snapshots is None:
            raise RuntimeError("the repository is not open: call open() first")
        return self._snapshots.connect()

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction; committed when the block ends without an exception."""
        if self._writer is None:
            raise RuntimeError("the repository is not open: call open() first")
        queue: AbstractAsyncContextManager[Any] = (
            self._sqlite_writers
            if self.target.backend is Backend.SQLITE
            else contextlib.nullcontext()
        )
        span = telemetry.span("db.transaction", backend=self.target.backend.value)
        async with span, queue, self._writer.begin() as connection:
            yield connection

    # -- jobs ----------------------------------------------------------------
    async def create(self, new: NewJob) -> Job:
        try:
            return await self._create(new)
        except IntegrityError:
            # Lost a race for the same request_id: the winner's job is the answer.
            if new.request_id is not None:
                existing = await self.get_by_request_id(new.request_id)
                if existing is not None:
                    return existing
            raise

    async def _create(self, new: NewJob) -> Job:
        async with self._writing() as conn:
            if new.request_id is not None:
                existing = await self._job_by_request_id(conn, new.request_id)
                if existing is not None:
                    return existing
            now = as_utc(self._clock(), "clock()")
            job, invoice = new_records(new, now)
            await conn.execute(jobs.insert(), job_row(job))
            await conn.execute(invoices.insert(), invoice_row(invoice))
            if invoice.amounts:
                await conn.execute(
                    invoice_amounts.insert(),
                    amount_rows(invoice.blockchain_identifier, invoice.amounts),
                )
            await conn.execute(
                job_events.insert(),
                [
                    _event_row(job, 1, EventType.CREATED, "", created_event_data(new), now),
                    _event_row(
                        job,
                        2,
                        EventType.PAYMENT_REQUESTED,
                        "",
                        payment_requested_event_data(new),
                        now,
                    ),
                ],
            )
        return job

    async def get(self, job_id: str) -> Job:
        row = await self._first(select(jobs).where(jobs.c.job_id == job_id))
        if row is None:
            raise JobNotFoundError(job_id)
        return job_from_row(row)

    async def get_by_request_id(self, request_id: str) -> Job | None:
        async with self._reader() as conn:
            return await self._job_by_request_id(conn, request_id)

    @staticmethod
    async def _job_by_request_id(conn: AsyncConnection, request_id: str) -> Job | None:
        query = select(jobs).where(jobs.c.request_id == request_id)
        row = (await conn.execute(query)).first()
        return None if row is None else job_from_row(row._mapping)

    async def get_by_blockchain_identifiers(self, ids: Sequence[str]) -> dict[str, Job]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Job] = {}
        async with self._snapshot() as conn:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                query = select(jobs).where(jobs.c.blockchain_identifier.in_(chunk))
                for row in await conn.execute(query):
                    job = job_from_row(row._mapping)
                    found[job.blockchain_identifier] = job
        return found

    async def update_status(self, job_id: str, change: StatusChange) -> Job:
        async with self._writing() as conn:
            current = await self._lock_job(conn, job_id)
            updates = transition_updates(current, change, self._clock())
            written = await conn.execute(
                update(jobs)
                .where(
                    jobs.c.job_id == job_id,
                    # status_id changes with every status: the row is exactly the one read.
                    jobs.c.status_id == current.status_id,
                )
                .values(column_values(updates))
            )
            if written.rowcount != 1:
                await self._raise_moved(conn, job_id, change.to)
            job = current.model_copy(update=updates)
            await self._append_event(
                conn, job, change.event, change.detail, change.event_data, job.updated_at
            )
            if change.invoice is not None:
                await self._change_invoice(conn, job.blockchain_identifier, change.invoice)
        return job

    async def store_result(self, job_id: str, result: str, result_hash: str) -> Job:
        async with self._writing() as conn:
            current = await self._lock_job(conn, job_id)
            updates = result_updates(current, result, self._clock())
            written = await conn.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id, jobs.c.status == JobStatus.RUNNING.value)
                .values(column_values(updates))
            )
            if written.rowcount != 1:
                await self._raise_moved(conn, job_id, JobStatus.RUNNING)
            job = current.model_copy(update=updates)
            await self._append_event(
                conn, job, EventType.RESULT_STORED, "", {"result_hash": result_hash}, job.updated_at
            )
        return job

    async def record_event(
        self,
        job_id: str,
        event: EventType,
        *,
        detail: str = "",
        data: dict[str, Any] | None = None,
        invoice: InvoiceChange | None = None,
    ) -> JobEvent:
        async with self._writing() as conn:
            job = await self._lock_job(conn, job_id)
            written = await self._append_event(
                conn, job, event, detail, data or {}, as_utc(self._clock(), "clock()")
            )
            if invoice is not None:
                await self._change_invoice(conn, job.blockchain_identifier, invoice)
        return written

    async def _lock_job(self, conn: AsyncConnection, job_id: str) -> Job:
        query = select(jobs).where(jobs.c.job_id == job_id).with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise JobNotFoundError(job_id)
        return job_from_row(row._mapping)

    @staticmethod
    async def _raise_moved(conn: AsyncConnection, job_id: str, target: JobStatus) -> NoReturn:
        """The conditional UPDATE matched nothing: another writer moved the job between
        our read and our write (not expected under the row lock; never overwritten)."""
        now = await conn.scalar(select(jobs.c.status).where(jobs.c.job_id == job_id))
        if now is None:
            raise JobNotFoundError(job_id)
        raise InvalidStateTransitionError(job_id, str(now), target.value)

    @staticmethod
    async def _append_event(
        conn: AsyncConnection,
        job: Job,
        event: EventType,
        detail: str,
        data: dict[str, Any],
        now: datetime,
    ) -> JobEvent:
        """Call with the job row locked: the next sequence is read, then taken."""
        last = await conn.scalar(
            select(func.max(job_events.c.sequence)).where(job_events.c.job_id == job.job_id)
        )
        row = _event_row(job, (last or 0) + 1, event, detail, data, now)
        await conn.execute(job_events.insert(), row)
        return event_from_row({**row, "data": json_copy(data)})

    async def _change_invoice(
        self, conn: AsyncConnection, blockchain_identifier: str, change: InvoiceChange
    ) -> None:
        query = select(invoices).where(invoices.c.blockchain_identifier == blockchain_identifier)
        row = (await conn.execute(query)).first()
        if row is None:
            raise InvoiceNotFoundError(blockchain_identifier)
        updates = invoice_updates(invoice_from_row(row._mapping), change, self._clock())
        if updates:
            await conn.execute(
                update(invoices)
                .where(invoices.c.blockchain_identifier == blockchain_identifier)
                .values(column_values(updates))
            )

    async def count(self, status: JobStatus | None = None) -> int:
        query = select(func.count()).select_from(jobs)
        if status is not None:
            query = query.where(jobs.c.status == status.value)
        async with self._reader() as conn:
            return int(await conn.scalar(query) or 0)

    async def list(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
        status: JobStatus | None = None,
    ) -> Page[Job]:
        size = page_size_or_default(page_size)
        filter_value = None if status is None else status.value
        query = select(jobs)
        if filter_value is not None:
            query = query.where(jobs.c.status == filter_value)
        if page_token is not None:
            cursor = decode_page_token(page_token, "jobs", filter_value)
            query = query.where(_before(jobs.c.created_at, jobs.c.job_id, cursor))
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc()).limit(size + 1)
        async with self._reader() as conn:
            found = [job_from_row(row._mapping) for row in await conn.execute(query)]
        items = found[:size]
        token = None
        if len(found) > size:
            last = items[-1]
            token = encode_page_token(
                "jobs", filter_value, Cursor(created_at=last.created_at, key=last.job_id)
            )
        return Page(items=items, next_page_token=token)

    async def list_unpaid_expired(self, now_ms: int, limit: int = 500) -> builtins.list[Job]:
        query = (
            select(jobs)
            .where(
                jobs.c.status == JobStatus.AWAITING_PAYMENT.value,
                jobs.c.pay_by_time < now_ms,
            )
            .order_by(jobs.c.pay_by_time, jobs.c.job_id)
            .limit(limit)
        )
        return await self._jobs(query)

    async def list_in_status(
        self, statuses: Sequence[JobStatus], limit: int = 10_000
    ) -> builtins.list[Job]:
        if not statuses:
            return []
        query = (
            select(jobs)
            .where(jobs.c.status.in_([s.value for s in statuses]))
            .order_by(jobs.c.created_at, jobs.c.job_id)
            .limit(limit)
        )
        return await self._jobs(query)

    async def _jobs(self, query: Select[Any]) -> builtins.list[Job]:
        async with self._reader() as conn:
            return [job_from_row(row._mapping) for row in await conn.execute(query)]

    async def events(self, job_id: str, after_sequence: int = 0) -> builtins.list[JobEvent]:
        query = (
            select(job_events)
            .where(job_events.c.job_id == job_id, job_events.c.sequence > after_sequence)
            .order_by(job_events.c.sequence)
        )
        async with self._reader() as conn:
            found = [event_from_row(row._mapping) for row in await conn.execute(query)]
            if not found:
                exists = await conn.scalar(select(jobs.c.job_id).where(jobs.c.job_id == job_id))
                if exists is None:
                    raise JobNotFoundError(job_id)
        return found

    # -- invoices and earnings -----------------------------------------------
    async def get_invoice(self, blockchain_identifier: str) -> Invoice:
        async with self._reader() as conn:
            found = await _select_invoices(
                conn, [invoices.c.blockchain_identifier == blockchain_identifier], limit=1
            )
        if not found:
            raise InvoiceNotFoundError(blockchain_identifier)
        return found[0]

    async def list_invoices(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
        status: InvoiceStatus | None = None,
    ) -> Page[Invoice]:
        size = page_size_or_default(page_size)
        filter_value = None if status is None else status.value
        where: builtins.list[ColumnElement[bool]] = []
        if filter_value is not None:
            where.append(invoices.c.status == filter_value)
        if page_token is not None:
            cursor = decode_page_token(page_token, "invoices", filter_value)
            where.append(_before(invoices.c.created_at, invoices.c.blockchain_identifier, cursor))
        async with self._reader() as conn:
            found = await _select_invoices(
                conn, where, order=("created_at", "blockchain_identifier"), limit=size + 1
            )
        items = found[:size]
        token = None
        if len(found) > size:
            last = items[-1]
            token = encode_page_token(
                "invoices",
                filter_value,
                Cursor(created_at=last.created_at, key=last.blockchain_identifier),
            )
        return Page(items=items, next_page_token=token)

    async def list_open_invoices(self, limit: int = 100_000) -> builtins.list[Invoice]:
        async with self._reader() as conn:
            return await _select_invoices(
                conn,
                [invoices.c.status.in_(_OPEN_INVOICE_STATUSES)],
                order=("created_at", "blockchain_identifier"),
                descending=False,
                limit=limit,
            )

    async def earnings(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        recent_limit: int = 10,
    ) -> EarningsReport:
        in_range: builtins.list[ColumnElement[bool]] = []
        if start is not None:
            in_range.append(invoices.c.created_at >= as_utc(start, "start"))
        if end is not None:
            in_range.append(invoices.c.created_at < as_utc(end, "end"))
        counts_query = (
            select(invoices.c.status, func.count()).where(*in_range).group_by(invoices.c.status)
        )
        sums_query = (
            select(invoices.c.status, invoice_amounts.c.unit, func.sum(invoice_amounts.c.amount))
            .join_from(
                invoices,
                invoice_amounts,
                invoice_amounts.c.blockchain_identifier == invoices.c.blockchain_identifier,
            )
            .where(*in_range)
            .group_by(invoices.c.status, invoice_amounts.c.unit)
        )
        jobs_query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        counts: dict[InvoiceStatus, int] = dict.fromkeys(InvoiceStatus, 0)
        sums: dict[InvoiceStatus, builtins.list[Amount]] = {s: [] for s in InvoiceStatus}
        jobs_by_status: dict[JobStatus, int] = dict.fromkeys(JobStatus, 0)
        # One read transaction: the parts of the report agree with each other.
        async with self._snapshot() as conn:
            for status, count in await conn.execute(counts_query):
                counts[InvoiceStatus(status)] = int(count)
            for status, unit, total in await conn.execute(sums_query):
                # PostgreSQL sums bigint as numeric (Decimal): exact, converted exactly.
                sums[InvoiceStatus(status)].append(Amount(amount=int(total), unit=unit))
            for status, count in await conn.execute(jobs_query):
                jobs_by_status[JobStatus(status)] = int(count)
            recent = await _select_invoices(
                conn,
                in_range,
                order=("updated_at", "blockchain_identifier"),
                limit=max(recent_limit, 0),
            )
        # Ordered by unit in Python: a database collation may order text differently.
        totals = {
            status: MoneyTotal(
                count=counts[status], amounts=tuple(sorted(sums[status], key=lambda a: a.unit))
            )
            for status in InvoiceStatus
        }
        return EarningsReport(totals=totals, jobs_by_status=jobs_by_status, recent=tuple(recent))

    # -- payment monitor state -----------------------------------------------
    async def get_watermark(self, name: str) -> Watermark | None:
        query = select(monitor_watermarks).where(monitor_watermarks.c.name == name)
        async with self._reader() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return Watermark(last_update=row.last_update, cursor_id=row.cursor_id)

    async def set_watermark(self, name: str, watermark: Watermark) -> None:
        values = {
            "name": name,
            "last_update": as_utc(watermark.last_update, "last_update"),
            "cursor_id": watermark.cursor_id,
        }
        replace = {"last_update": values["last_update"], "cursor_id": values["cursor_id"]}
        upsert: Executable
        if self.target.backend is Backend.POSTGRESQL:
            upsert = (
                postgresql.insert(monitor_watermarks)
                .values(values)
                .on_conflict_do_update(index_elements=["name"], set_=replace)
            )
        else:
            upsert = (
                sqlite.insert(monitor_watermarks)
                .values(values)
                .on_conflict_do_update(index_elements=["name"], set_=replace)
            )
        async with self._writing() as conn:
            await conn.execute(upsert)


def _event_row(
    job: Job, sequence: int, event: EventType, detail: str, data: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "sequence": sequence,
        "type": event.value,
        "status": job.status.value,
        "detail": detail,
        "data": data,
        "created_at": now,
    }


async def _select_invoices(
    conn: AsyncConnection,
    where: Sequence[ColumnElement[bool]],
    *,
    order: tuple[str, str] = ("created_at", "blockchain_identifier"),
    descending: bool = True,
    limit: int,
) -> builtins.list[Invoice]:
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
    rows = await conn.execute(query)
    return invoices_from_joined_rows(row._mapping for row in rows)
