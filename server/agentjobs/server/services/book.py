"""Every write to a job goes through JobBook, so that WatchJob streams in this process
wake up after each committed change (they then read the events from the repository,
which stays the single source of truth)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agentjobs.server.domain import EventType, Job, JobEvent
from agentjobs.server.repository.base import InvoiceChange, JobRepository, StatusChange


class JobChanges:
    """In-process wake-ups per job id. Losing one is harmless: readers re-read events."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def notify(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]


class JobBook:
    def __init__(self, repository: JobRepository, changes: JobChanges) -> None:
        self.repository = repository
        self.changes = changes

    async def update_status(self, job_id: str, change: StatusChange) -> Job:
        job = await self.repository.update_status(job_id, change)
        self.changes.notify(job_id)
        return job

    async def store_result(self, job_id: str, result: str, result_hash: str) -> Job:
        job = await self.repository.store_result(job_id, result, result_hash)
        self.changes.notify(job_id)
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
        written = await self.repository.record_event(
            job_id, event, detail=detail, data=data, invoice=invoice
        )
        self.changes.notify(job_id)
        return written
