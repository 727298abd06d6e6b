"""JobRepository: the books and the schedule, on any store (memory, SQLite, PostgreSQL).

Every method is one transaction of the driver. Writes apply what the lifecycle decided
(repository/queries/writes.py) and then tell the change hub (and, on PostgreSQL, every
other replica, through NOTIFY in the same transaction) which jobs changed.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from agentjobs.server.domain import (
    EarningsReport,
    Invoice,
    InvoiceStatus,
    Job,
    JobEvent,
    JobStatus,
    StaleJobError,
)
from agentjobs.server.domain.lifecycle import Decision, NewEvent
from agentjobs.server.domain.steps import Step
from agentjobs.server.repository.database_url import Backend, DatabaseTarget, parse_database_url
from agentjobs.server.repository.drivers import Database, open_database
from agentjobs.server.repository.feeds import ChangeHub
from agentjobs.server.repository.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from agentjobs.server.repository.queries import claims, coordination, reads, writes
from agentjobs.server.repository.queries.coordination import ReplicaRow, Watermark
from agentjobs.server.repository.queries.reads import JobState, Page
from agentjobs.server.repository.queries.writes import Fence, Lease

log = logging.getLogger(__name__)


class RequestIdTakenError(Exception):
    """insert(): another job already has this request_id (the caller reads it)."""


class JobRepository:
    def __init__(self, database_url: str | DatabaseTarget | None) -> None:
        self.target = (
            database_url
            if isinstance(database_url, DatabaseTarget)
            else parse_database_url(database_url)
        )
        self.db: Database = open_database(self.target)
        self.changes = ChangeHub()
        self._feed: Any = None

    @property
    def backend(self) -> Backend:
        return self.target.backend

    # -- lifecycle -----------------------------------------------------------
    async def open(self, *, watch_other_processes: bool = True) -> None:
        await self.db.open()
        if not watch_other_processes:
            return
        if self.backend is Backend.POSTGRESQL:
            from agentjobs.server.repository.feeds.postgres import PostgresListener

            self._feed = PostgresListener(self.target, self.changes)
        elif self.backend is Backend.SQLITE:
            from agentjobs.server.repository.feeds.sqlite import SqliteWatcher

            self._feed = SqliteWatcher(str(self.target.sql_url.database), self.changes)
        if self._feed is not None:
            await self._feed.start()

    async def close(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            await feed.stop()
        await self.db.close()

    # -- jobs ----------------------------------------------------------------
    async def get(self, job_id: str) -> Job:
        return await self.db.read(lambda c: reads.get_job(c, job_id))

    async def get_with_invoice(self, job_id: str) -> tuple[Job, Invoice | None]:
        return await self.db.read(lambda c: reads.get_job_and_invoice(c, job_id))

    async def invoice_of(self, job: Job) -> Invoice | None:
        return await self.db.read(lambda c: reads.invoice_of(c, job))

    async def get_by_request_id(self, request_id: str) -> Job | None:
        return await self.db.read(lambda c: reads.job_by_request_id(c, request_id))

    async def events(self, job_id: str, after_sequence: int = 0) -> builtins.list[JobEvent]:
        return await self.db.read(lambda c: reads.events_of(c, job_id, after_sequence))

    async def list(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
        status: JobStatus | None = None,
        intents: bool = True,
    ) -> Page:
        """`intents` False: without the payment intents still waiting for their payment's
        answer (no caller knows of them yet)."""
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        return await self.db.read(
            lambda c: reads.list_jobs(
                c, page_size=size, page_token=page_token, status=status, intents=intents
            ),
            heavy=True,
        )

    async def count(self, status: JobStatus | None = None, *, intents: bool = True) -> int:
        return await self.db.read(
            lambda c: reads.count_jobs(c, status, intents=intents), heavy=True
        )

    async def job_states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        return await self.db.read(lambda c: reads.job_states(c, job_ids))

    async def jobs_for_payments(
        self, blockchain_identifiers: Sequence[str], input_hashes: Sequence[str]
    ) -> tuple[dict[str, tuple[Job, Invoice | None]], dict[str, builtins.list[Job]]]:
        return await self.db.read(
            lambda c: reads.jobs_for_payments(c, blockchain_identifiers, input_hashes)
        )

    async def insert(
        self, job: Job, events: Sequence[NewEvent], *, lease: Lease | None = None
    ) -> Job:
        """Store a new job. Raises RequestIdTakenError if its request_id is taken."""
        try:
            stored = await self.db.write(lambda c: writes.insert_job(c, job, events, lease))
        except IntegrityError as exc:
            if job.request_id is not None and "request_id" in str(exc.orig).lower():
                raise RequestIdTakenError(job.request_id) from None
            raise
        self.changes.changed([job.job_id])
        return stored

    async def apply(
        self,
        job: Job,
        decision: Decision,
        now: datetime,
        *,
        fence: Fence | None = None,
        affinity: str | None = None,
        keep_affinity: bool = False,
        lease: Lease | None = None,
    ) -> Job:
        """Write `decision` (made on `job` as read). Raises StaleJobError when the job
        changed meanwhile: read it again and decide again."""
        if decision.writes_nothing:
            return job
        after = await self.db.write(
            lambda c: writes.apply_decision(
                c,
                job,
                decision,
                now,
                fence=fence,
                affinity=affinity,
                keep_affinity=keep_affinity,
                lease=lease,
            )
        )
        self._written(after, decision)
        return after

    async def apply_page(
        self,
        decided: Sequence[tuple[Job, Decision]],
        now: datetime,
        *,
        watermarks: Sequence[tuple[str, Watermark]] = (),
    ) -> builtins.list[Job | StaleJobError]:
        """Several decisions (a page of the diff) and the watermark past them, in one
        transaction; a decision whose job changed meanwhile is left out (StaleJobError
        in its place) and the others are written."""

        def body(connection: Connection) -> builtins.list[Job | StaleJobError]:
            outcomes: builtins.list[Job | StaleJobError] = []
            for job, decision in decided:
                # Any failure rolls its savepoint back (and closes it) on the way out.
                try:
                    with connection.begin_nested():
                        outcomes.append(writes.apply_decision(connection, job, decision, now))
                except StaleJobError as stale:
                    outcomes.append(stale)
            for name, watermark in watermarks:
                coordination.set_watermark(connection, name, watermark)
            return outcomes

        outcomes = await self.db.write(body)
        for (_job, decision), outcome in zip(decided, outcomes, strict=True):
            if isinstance(outcome, Job):
                self._written(outcome, decision)
        return outcomes

    async def delete_intent(self, job: Job) -> None:
        await self.db.write(lambda c: writes.delete_intent(c, job))
        self.changes.changed([job.job_id])

    def _written(self, job: Job, decision: Decision) -> None:
        for warning in decision.warnings:
            log.warning("job %s: %s", job.job_id, warning)
        self.changes.changed([job.job_id])

    # -- the schedule --------------------------------------------------------
    async def claim(
        self,
        owner: str,
        *,
        now_ms: int,
        lease_ms: int,
        limit: int,
        affinity_grace_ms: int,
        steps: Sequence[str] | None = None,
    ) -> builtins.list[Job]:
        claimed = await self.db.write(
            lambda c: claims.claim_due(
                c,
                owner,
                now_ms=now_ms,
                lease_ms=lease_ms,
                limit=limit,
                affinity_grace_ms=affinity_grace_ms,
                steps=steps,
            )
        )
        started = [job.job_id for job in claimed if job.step is Step.RUN]
        if started:
            self.changes.changed(started)
        return claimed

    async def take_over(self, job: Job, owner: str, *, now_ms: int, until_ms: int) -> Job | None:
        return await self.db.write(
            lambda c: claims.take_over(c, job, owner, now_ms=now_ms, until_ms=until_ms)
        )

    async def defer(self, job: Job, owner: str, *, run_at_ms: int) -> bool:
        deferred = await self.db.write(
            lambda c: claims.defer_step(c, job, owner, run_at_ms=run_at_ms)
        )
        self.changes.changed([job.job_id])
        return deferred

    async def renew(self, owner: str, *, until_ms: int) -> set[str]:
        return await self.db.write(lambda c: claims.renew_leases(c, owner, until_ms=until_ms))

    async def release(self, owner: str, job_ids: Sequence[str]) -> int:
        released = await self.db.write(lambda c: claims.release_leases(c, owner, job_ids))
        self.changes.changed(job_ids)
        return released

    async def release_all(self, owner: str) -> int:
        released = await self.db.write(lambda c: claims.release_all(c, owner))
        if released:
            self.changes.changed_all()
        return released

    async def next_due(self) -> int | None:
        return await self.db.read(claims.next_due)

    async def acquire_lease(self, name: str, owner: str, *, now_ms: int, until_ms: int) -> bool:
        return await self.db.write(
            lambda c: claims.acquire_lease(c, name, owner, now_ms=now_ms, until_ms=until_ms)
        )

    async def release_lease(self, name: str, owner: str) -> None:
        await self.db.write(lambda c: claims.release_lease(c, name, owner))

    async def lease_holder(self, name: str, now_ms: int) -> str | None:
        return await self.db.read(lambda c: claims.lease_holder(c, name, now_ms))

    # -- replicas and watermarks ---------------------------------------------
    async def heartbeat(self, replica_id: str, role: str, *, started_at: int, now_ms: int) -> None:
        await self.db.write(
            lambda c: coordination.heartbeat(
                c, replica_id, role, started_at=started_at, now_ms=now_ms
            )
        )

    async def remove_replica(self, replica_id: str) -> None:
        await self.db.write(lambda c: coordination.remove_replica(c, replica_id))

    async def prune_replicas(self, older_than_ms: int) -> None:
        await self.db.write(lambda c: coordination.prune_replicas(c, older_than_ms))

    async def list_replicas(self, now_ms: int) -> builtins.list[ReplicaRow]:
        return await self.db.read(lambda c: coordination.list_replicas(c, now_ms))

    async def get_watermark(self, name: str) -> Watermark | None:
        return await self.db.read(lambda c: coordination.get_watermark(c, name))

    async def set_watermark(self, name: str, watermark: Watermark) -> None:
        await self.db.write(lambda c: coordination.set_watermark(c, name, watermark))

    # -- the books -----------------------------------------------------------
    async def list_invoices(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
        status: InvoiceStatus | None = None,
    ) -> Page:
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        return await self.db.read(
            lambda c: reads.list_invoices(c, page_size=size, page_token=page_token, status=status),
            heavy=True,
        )

    async def earnings(
        self, *, start: datetime | None = None, end: datetime | None = None, recent_limit: int = 10
    ) -> EarningsReport:
        return await self.db.read(
            lambda c: reads.earnings(c, start=start, end=end, recent_limit=recent_limit),
            heavy=True,
        )

    async def list_attention(self, *, page_size: int = 0, page_token: str | None = None) -> Page:
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        return await self.db.read(
            lambda c: reads.list_attention(c, page_size=size, page_token=page_token), heavy=True
        )

    async def count_attention(self) -> dict[str, int]:
        return await self.db.read(reads.count_attention, heavy=True)

    async def source_types_in_use(self) -> set[str | None]:
        return await self.db.read(reads.source_types_in_use, heavy=True)

    async def oldest_open_invoice(self) -> datetime | None:
        return await self.db.read(reads.oldest_open_invoice, heavy=True)
