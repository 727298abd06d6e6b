"""The one persistence contract every backend (memory, SQLite, PostgreSQL) fulfils.

Rules every backend keeps:
- a returned Job / Invoice is a fresh immutable value, never mutated afterwards;
- a status change, its lifecycle event and any invoice change are one atomic write;
- the read-validate-write of a transition is atomic: of two conflicting transitions
  exactly one succeeds, the other raises InvalidStateTransitionError;
- nothing here invents payment fields: they come from the payment service via NewJob.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from agentjobs.server.domain import (
    EarningsReport,
    EventType,
    Invoice,
    InvoiceStatus,
    Job,
    JobError,
    JobEvent,
    JobStatus,
    PaymentTerms,
)

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class NewJob:
    """Everything create() stores: the request and the payment service's answer."""

    identifier_from_purchaser: str
    input_data: dict[str, Any]
    input_hash: str
    payment: PaymentTerms
    request_id: str | None = None


@dataclass(frozen=True)
class InvoiceChange:
    """An invoice update written in the same transaction as a job change."""

    status: InvoiceStatus | None = None
    on_chain_state: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    # Opaque keyset token for the next page; None on the last page.
    next_page_token: str | None = None


@dataclass(frozen=True)
class Watermark:
    """Where the payment monitor's diff polling resumes: (lastUpdate, cursorId)."""

    last_update: datetime
    cursor_id: str | None = None


@dataclass(frozen=True)
class StatusChange:
    """One transition: validated against LEGAL_TRANSITIONS and written with its event."""

    to: JobStatus
    event: EventType
    # When set, the job must be in this status now (compare-and-set), else
    # InvalidStateTransitionError; when None, the current status is read and validated.
    expected: JobStatus | None = None
    # When set, the job's status_id must still be this one (compare-and-set), else
    # StatusIdMismatchError: two answers to one question, even from two processes,
    # cannot both be taken.
    expected_status_id: str | None = None
    detail: str = ""
    event_data: dict[str, Any] = field(default_factory=dict)
    # Set on the job with the transition; None leaves the stored value, except that
    # input_schema / input_request_message are cleared when leaving AWAITING_INPUT.
    result: str | None = None
    error: JobError | None = None
    input_schema: dict[str, Any] | None = None
    input_request_message: str | None = None
    invoice: InvoiceChange | None = None


class JobRepository(Protocol):
    # -- lifecycle -----------------------------------------------------------
    async def open(self) -> None:
        """Create / migrate storage as needed. Idempotent."""

    async def close(self) -> None: ...

    # -- jobs ----------------------------------------------------------------
    async def create(self, new: NewJob) -> Job:
        """Store a new AWAITING_PAYMENT job, its pending invoice and its CREATED and
        PAYMENT_REQUESTED events in one transaction. If new.request_id was used
        before, return that job instead (no second write)."""
        ...

    async def get(self, job_id: str) -> Job:
        """Raises JobNotFoundError."""
        ...

    async def get_by_request_id(self, request_id: str) -> Job | None: ...

    async def get_by_blockchain_identifiers(self, ids: Sequence[str]) -> dict[str, Job]:
        """The jobs of those payments that are ours (unknown ids are left out)."""
        ...

    async def update_status(self, job_id: str, change: StatusChange) -> Job:
        """Atomic read-validate-write of one transition + its event (+ invoice change).
        Raises JobNotFoundError, InvalidStateTransitionError."""
        ...

    async def store_result(self, job_id: str, result: str, result_hash: str) -> Job:
        """Keep the agent's result durably while the job is RUNNING (RESULT_STORED
        event), before it is submitted. Raises InvalidStateTransitionError unless RUNNING."""
        ...

    async def record_event(
        self,
        job_id: str,
        event: EventType,
        *,
        detail: str = "",
        data: dict[str, Any] | None = None,
        invoice: InvoiceChange | None = None,
    ) -> JobEvent:
        """Append an event that does not change the job's status (e.g. WITHDRAWN),
        with an optional invoice change, in one transaction."""
        ...

    async def count(self, status: JobStatus | None = None) -> int: ...

    async def list(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
        status: JobStatus | None = None,
    ) -> Page[Job]:
        """Newest first, keyset pagination. Raises InvalidPageTokenError."""
        ...

    async def list_unpaid_expired(self, now_ms: int, limit: int = 500) -> builtins.list[Job]:
        """AWAITING_PAYMENT jobs whose pay_by_time is before now_ms."""
        ...

    async def list_in_status(
        self, statuses: Sequence[JobStatus], limit: int = 10_000
    ) -> builtins.list[Job]:
        """For crash recovery: jobs in any of these statuses, oldest first."""
        ...

    async def events(self, job_id: str, after_sequence: int = 0) -> builtins.list[JobEvent]:
        """The job's events with sequence > after_sequence, in order.
        Raises JobNotFoundError for an unknown job."""
        ...

    # -- invoices and earnings -----------------------------------------------
    async def get_invoice(self, blockchain_identifier: str) -> Invoice:
        """Raises InvoiceNotFoundError."""
        ...

    async def list_invoices(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
        status: InvoiceStatus | None = None,
    ) -> Page[Invoice]:
        """Newest first, keyset pagination. Raises InvalidPageTokenError."""
        ...

    async def list_open_invoices(self, limit: int = 100_000) -> builtins.list[Invoice]:
        """Invoices whose money is not settled yet (pending or paid): what the
        payment monitor still follows."""
        ...

    async def earnings(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        recent_limit: int = 10,
    ) -> EarningsReport:
        """Totals per invoice status and unit over invoices created in [start, end),
        jobs per status (all five, zeros included), the most recently updated invoices."""
        ...

    # -- payment monitor state -----------------------------------------------
    async def get_watermark(self, name: str) -> Watermark | None: ...

    async def set_watermark(self, name: str, watermark: Watermark) -> None: ...
