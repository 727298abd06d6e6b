"""The operator's books: earnings report and invoices."""

from __future__ import annotations

from datetime import datetime

from agentjobs.server.domain import (
    EarningsReport,
    FieldViolation,
    InvalidArgumentError,
    InvoiceStatus,
)
from agentjobs.server.repository.base import JobRepository, Page
from agentjobs.server.services.jobs import check_page_size

DEFAULT_RECENT = 10
MAX_RECENT = 100


class EarningsService:
    def __init__(self, repository: JobRepository) -> None:
        self._repository = repository

    async def report(
        self, start: datetime | None = None, end: datetime | None = None, recent_limit: int = 0
    ) -> EarningsReport:
        if start is not None and end is not None and start >= end:
            raise InvalidArgumentError(
                "start_time must be before end_time",
                [FieldViolation("start_time", "must be before end_time")],
            )
        if recent_limit < 0:
            raise InvalidArgumentError(
                "recent_limit must not be negative",
                [FieldViolation("recent_limit", "must be >= 0")],
            )
        return await self._repository.earnings(
            start=start, end=end, recent_limit=min(recent_limit or DEFAULT_RECENT, MAX_RECENT)
        )

    async def invoices(
        self, page_size: int = 0, page_token: str | None = None, status: InvoiceStatus | None = None
    ) -> Page:
        return await self._repository.list_invoices(
            page_size=check_page_size(page_size), page_token=page_token or None, status=status
        )
