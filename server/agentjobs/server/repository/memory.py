"""InMemoryJobRepository: the whole contract in process memory (`memory://`).

For tests, demos and benchmarks: nothing survives the process. It is safe to share
between threads (each with its own event loop) and asyncio tasks: every read and write
runs under one threading.Lock, and no method awaits while holding it.

Stored values never leave the lock: callers get deep copies, and what they pass in is
copied before it is stored, so nobody can mutate the store from outside.
"""

from __future__ import annotations

import builtins
import heapq
import threading
from bisect import bisect_left, insort
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from agentjobs.server.domain import (
    Amount,
    EarningsReport,
    EventType,
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
from agentjobs.server.repository.pagination import (
    Cursor,
    decode_page_token,
    encode_page_token,
    page_size_or_default,
)
from agentjobs.server.repository.timestamps import Clock, as_utc, utcnow

M = TypeVar("M", bound=BaseModel)

# A (created_at, key) pair: the keyset order of both listings.
_SortKey = tuple[datetime, str]

_OPEN_INVOICE_STATUSES = (InvoiceStatus.PENDING, InvoiceStatus.PAID)


def _fresh(value: M) -> M:
    return value.model_copy(deep=True)


class _SortedIndex:
    """(created_at, key) pairs in ascending order, overall and per status."""

    def __init__(self) -> None:
        self.all: list[_SortKey] = []
        self.by_status: defaultdict[str, list[_SortKey]] = defaultdict(list)

    def add(self, key: _SortKey, status: str) -> None:
        insort(self.all, key)
        insort(self.by_status[status], key)

    def move(self, key: _SortKey, old: str, new: str) -> None:
        if old == new:
            return
        bucket = self.by_status[old]
        del bucket[bisect_left(bucket, key)]
        insort(self.by_status[new], key)

    def newest_before(self, status: str | None, cursor: Cursor | None, limit: int) -> list[str]:
        """Up to `limit` keys, newest first, strictly older than the cursor."""
        keys = self.all if status is None else self.by_status.get(status, [])
        end = len(keys) if cursor is None else bisect_left(keys, (cursor.created_at, cursor.key))
        return [keys[i][1] for i in range(end - 1, max(end - 1 - limit, -1), -1)]


class InMemoryJobRepository:
    def __init__(self, *, clock: Clock = utcnow) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._events: dict[str, builtins.list[JobEvent]] = {}
        self._invoices: dict[str, Invoice] = {}
        self._by_request_id: dict[str, str] = {}
        self._by_blockchain_id: dict[str, str] = {}
        self._job_order = _SortedIndex()
        self._invoice_order = _SortedIndex()
        self._watermarks: dict[str, Watermark] = {}

    # -- lifecycle -----------------------------------------------------------
    async def open(self) -> None:
        """Nothing to create: the store exists from construction."""

    async def close(self) -> None:
        """Nothing to release; the data stays readable until the object is dropped."""

    # -- jobs ----------------------------------------------------------------
    async def create(self, new: NewJob) -> Job:
        terms = new.payment
        with self._lock:
            if new.request_id is not None and new.request_id in self._by_request_id:
                return _fresh(self._jobs[self._by_request_id[new.request_id]])
            if terms.blockchain_identifier in self._by_blockchain_id:
                raise ValueError(
                    f"payment {terms.blockchain_identifier!r} already belongs to a job"
                )
            now = as_utc(self._clock(), "clock()")
            job, invoice = new_records(new, now)
            history = [
                _event(job, 1, EventType.CREATED, "", created_event_data(new), now),
                _event(
                    job, 2, EventType.PAYMENT_REQUESTED, "", payment_requested_event_data(new), now
                ),
            ]
            # Everything is built; from here on nothing can fail half-way.
            self._jobs[job.job_id] = job
            self._events[job.job_id] = history
            self._invoices[invoice.blockchain_identifier] = invoice
            self._by_blockchain_id[invoice.blockchain_identifier] = job.job_id
            if new.request_id is not None:
                self._by_request_id[new.request_id] = job.job_id
            self._job_order.add((now, job.job_id), job.status)
            self._invoice_order.add((now, invoice.blockchain_identifier), invoice.status)
            return _fresh(job)

    async def get(self, job_id: str) -> Job:
        with self._lock:
            return _fresh(self._job(job_id))

    async def get_by_request_id(self, request_id: str) -> Job | None:
        with self._lock:
            job_id = self._by_request_id.get(request_id)
            return None if job_id is None else _fresh(self._jobs[job_id])

    async def get_by_blockchain_identifiers(self, ids: Sequence[str]) -> dict[str, Job]:
        with self._lock:
            return {
                bid: _fresh(self._jobs[self._by_blockchain_id[bid]])
                for bid in ids
                if bid in self._by_blockchain_id
            }

    async def update_status(self, job_id: str, change: StatusChange) -> Job:
        with self._lock:
            current = self._job(job_id)
            job = current.model_copy(update=transition_updates(current, change, self._clock()))
            written = self._next_event(
                job, change.event, change.detail, change.event_data, job.updated_at
            )
            invoice = self._changed_invoice(job, change.invoice)
            self._jobs[job_id] = job
            self._job_order.move((job.created_at, job_id), current.status, job.status)
            self._events[job_id].append(written)
            self._store_invoice(invoice)
            return _fresh(job)

    async def store_result(self, job_id: str, result: str, result_hash: str) -> Job:
        with self._lock:
            current = self._job(job_id)
            job = current.model_copy(update=result_updates(current, result, self._clock()))
            written = self._next_event(
                job, EventType.RESULT_STORED, "", {"result_hash": result_hash}, job.updated_at
            )
            self._jobs[job_id] = job
            self._events[job_id].append(written)
            return _fresh(job)

    async def record_event(
        self,
        job_id: str,
        event: EventType,
        *,
        detail: str = "",
        data: dict[str, Any] | None = None,
        invoice: InvoiceChange | None = None,
    ) -> JobEvent:
        with self._lock:
            job = self._job(job_id)
            written = self._next_event(job, event, detail, data or {}, self._clock())
            changed = self._changed_invoice(job, invoice)
            self._events[job_id].append(written)
            self._store_invoice(changed)
            return _fresh(written)

    async def count(self, status: JobStatus | None = None) -> int:
        with self._lock:
            if status is None:
                return len(self._jobs)
            return len(self._job_order.by_status.get(status, ()))

    async def list(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
        status: JobStatus | None = None,
    ) -> Page[Job]:
        size = page_size_or_default(page_size)
        filter_value = None if status is None else status.value
        cursor = None if page_token is None else decode_page_token(page_token, "jobs", filter_value)
        with self._lock:
            keys = self._job_order.newest_before(filter_value, cursor, size + 1)
            items = [_fresh(self._jobs[job_id]) for job_id in keys[:size]]
        token = None
        if len(keys) > size:
            last = items[-1]
            token = encode_page_token(
                "jobs", filter_value, Cursor(created_at=last.created_at, key=last.job_id)
            )
        return Page(items=items, next_page_token=token)

    async def list_unpaid_expired(self, now_ms: int, limit: int = 500) -> builtins.list[Job]:
        with self._lock:
            waiting = (
                self._jobs[job_id]
                for _, job_id in self._job_order.by_status.get(JobStatus.AWAITING_PAYMENT, ())
            )
            expired = [job for job in waiting if job.pay_by_time < now_ms]
            expired.sort(key=lambda job: (job.pay_by_time, job.job_id))
            return [_fresh(job) for job in expired[:limit]]

    async def list_in_status(
        self, statuses: Sequence[JobStatus], limit: int = 10_000
    ) -> builtins.list[Job]:
        with self._lock:
            keys = heapq.merge(*(self._job_order.by_status.get(s, []) for s in set(statuses)))
            found: builtins.list[Job] = []
            for _, job_id in keys:
                if len(found) >= limit:
                    break
                found.append(_fresh(self._jobs[job_id]))
            return found

    async def events(self, job_id: str, after_sequence: int = 0) -> builtins.list[JobEvent]:
        with self._lock:
            self._job(job_id)
            # Sequences are 1, 2, 3 ... so event n sits at index n - 1.
            return [_fresh(e) for e in self._events[job_id][max(after_sequence, 0) :]]

    # -- invoices and earnings -----------------------------------------------
    async def get_invoice(self, blockchain_identifier: str) -> Invoice:
        with self._lock:
            invoice = self._invoices.get(blockchain_identifier)
            if invoice is None:
                raise InvoiceNotFoundError(blockchain_identifier)
            return _fresh(invoice)

    async def list_invoices(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
        status: InvoiceStatus | None = None,
    ) -> Page[Invoice]:
        size = page_size_or_default(page_size)
        filter_value = None if status is None else status.value
        cursor = (
            None if page_token is None else decode_page_token(page_token, "invoices", filter_value)
        )
        with self._lock:
            keys = self._invoice_order.newest_before(filter_value, cursor, size + 1)
            items = [_fresh(self._invoices[bid]) for bid in keys[:size]]
        token = None
        if len(keys) > size:
            last = items[-1]
            token = encode_page_token(
                "invoices",
                filter_value,
                Cursor(created_at=last.created_at, key=last.blockchain_identifier),
            )
        return Page(items=items, next_page_token=token)

    async def list_open_invoices(self, limit: int = 100_000) -> builtins.list[Invoice]:
        with self._lock:
            keys = heapq.merge(
                *(self._invoice_order.by_status.get(s, []) for s in _OPEN_INVOICE_STATUSES)
            )
            found: builtins.list[Invoice] = []
            for _, bid in keys:
                if len(found) >= limit:
                    break
                found.append(_fresh(self._invoices[bid]))
            return found

    async def earnings(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        recent_limit: int = 10,
    ) -> EarningsReport:
        start = None if start is None else as_utc(start, "start")
        end = None if end is None else as_utc(end, "end")
        counts: dict[InvoiceStatus, int] = dict.fromkeys(InvoiceStatus, 0)
        sums: dict[InvoiceStatus, dict[str, int]] = {s: {} for s in InvoiceStatus}
        with self._lock:
            in_range = [
                invoice
                for invoice in self._invoices.values()
                if (start is None or invoice.created_at >= start)
                and (end is None or invoice.created_at < end)
            ]
            jobs_by_status = {s: len(self._job_order.by_status.get(s, ())) for s in JobStatus}
            recent = heapq.nlargest(
                max(recent_limit, 0),
                in_range,
                key=lambda i: (i.updated_at, i.blockchain_identifier),
            )
            recent_copies = tuple(_fresh(i) for i in recent)
        for invoice in in_range:
            counts[invoice.status] += 1
            per_unit = sums[invoice.status]
            for amount in invoice.amounts:
                per_unit[amount.unit] = per_unit.get(amount.unit, 0) + amount.amount
        totals = {
            status: MoneyTotal(
                count=counts[status],
                amounts=tuple(
                    Amount(amount=total, unit=unit) for unit, total in sorted(sums[status].items())
                ),
            )
            for status in InvoiceStatus
        }
        return EarningsReport(totals=totals, jobs_by_status=jobs_by_status, recent=recent_copies)

    # -- payment monitor state -----------------------------------------------
    async def get_watermark(self, name: str) -> Watermark | None:
        with self._lock:
            return self._watermarks.get(name)

    async def set_watermark(self, name: str, watermark: Watermark) -> None:
        stored = Watermark(
            last_update=as_utc(watermark.last_update, "last_update"), cursor_id=watermark.cursor_id
        )
        with self._lock:
            self._watermarks[name] = stored

    # -- helpers (call with the lock held) -------------------------------------
    def _job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def _next_event(
        self, job: Job, event: EventType, detail: str, data: dict[str, Any], now: datetime
    ) -> JobEvent:
        return _event(job, len(self._events[job.job_id]) + 1, event, detail, data, now)

    def _changed_invoice(
        self, job: Job, change: InvoiceChange | None
    ) -> tuple[Invoice, Invoice] | None:
        """(before, after) of the job's invoice, or None when nothing changes."""
        if change is None:
            return None
        current = self._invoices[job.blockchain_identifier]
        updates = invoice_updates(current, change, self._clock())
        return (current, current.model_copy(update=updates)) if updates else None

    def _store_invoice(self, change: tuple[Invoice, Invoice] | None) -> None:
        if change is None:
            return
        before, after = change
        self._invoices[after.blockchain_identifier] = after
        self._invoice_order.move(
            (after.created_at, after.blockchain_identifier), before.status, after.status
        )


def _event(
    job: Job, sequence: int, event: EventType, detail: str, data: dict[str, Any], now: datetime
) -> JobEvent:
    return JobEvent(
        job_id=job.job_id,
        sequence=sequence,
        type=event,
        status=job.status,
        detail=detail,
        data=json_copy(data),
        created_at=as_utc(now, "clock()"),
    )
