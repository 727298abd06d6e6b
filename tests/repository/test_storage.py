"""What the durable backends keep across restarts, and the migrations that make them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from agentjobs.server.domain import EventType, InvoiceStatus, JobStatus
from agentjobs.server.repository.base import JobRepository, Watermark
from agentjobs.server.repository.database_url import parse_database_url
from agentjobs.server.repository.engines import create_engine_for
from agentjobs.server.repository.factory import migrate, open_repository
from agentjobs.server.repository.migrator import VERSION_TABLE, current_revision, head_revision
from agentjobs.server.repository.sql import SqlJobRepository
from agentjobs.server.repository.tables import metadata
from tests.repository.builders import T0, ManualClock, completed, funds_locked, new_job
from tests.repository.conftest import Backend


async def test_watermark_round_trip(repo: JobRepository) -> None:
    assert await repo.get_watermark("payments") is None
    first = Watermark(last_update=T0, cursor_id=None)
    await repo.set_watermark("payments", first)
    assert await repo.get_watermark("payments") == first
    moved = Watermark(last_update=T0.replace(microsecond=123456), cursor_id="cursor-7")
    await repo.set_watermark("payments", moved)
    assert await repo.get_watermark("payments") == moved
    assert await repo.get_watermark("other") is None


async def test_a_reopened_store_keeps_everything(durable_backend: Backend) -> None:
    clock = ManualClock()
    repo = await durable_backend.open(clock)
    job = await repo.create(new_job(request_id="req-durable"))
    clock.advance()
    await repo.update_status(job.job_id, funds_locked())
    await repo.store_result(job.job_id, "the result", "ab" * 32)
    done = await repo.update_status(job.job_id, completed("the result"))
    watermark = Watermark(last_update=T0.replace(microsecond=42), cursor_id="c-1")
    await repo.set_watermark("payments", watermark)
    events = await repo.events(job.job_id)
    invoice = await repo.get_invoice(job.blockchain_identifier)
    await repo.close()

    reopened = await durable_backend.open()
    assert await reopened.get(job.job_id) == done
    assert await reopened.get_by_request_id("req-durable") == done
    assert await reopened.events(job.job_id) == events
    assert await reopened.get_invoice(job.blockchain_identifier) == invoice
    assert invoice.status is InvoiceStatus.PAID
    assert await reopened.get_watermark("payments") == watermark
    # The sequence continues where it stopped.
    appended = await reopened.record_event(job.job_id, EventType.WITHDRAWN)
    assert appended.sequence == len(events) + 1


async def test_open_twice_and_close_twice_are_harmless(backend: Backend) -> None:
    repo = await backend.open()
    await repo.open()
    await repo.create(new_job())
    assert await repo.count() == 1
    await repo.close()
    await repo.close()


async def test_a_closed_sql_repository_says_so(durable_backend: Backend) -> None:
    repo = await durable_backend.open()
    await repo.close()
    with pytest.raises(RuntimeError, match="not open"):
        await repo.count()


async def test_migrate_is_idempotent(durable_backend: Backend) -> None:
    await migrate(durable_backend.url)
    await migrate(durable_backend.url)
    repo = await durable_backend.open()  # open() migrates once more
    await repo.create(new_job())
    target = parse_database_url(durable_backend.url)
    engine = create_engine_for(target)
    try:
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            versions = await conn.scalar(select(func.count()).select_from(text(VERSION_TABLE)))
        assert versions == 1
    finally:
        await engine.dispose()


async def test_concurrent_migrations_apply_once(durable_backend: Backend) -> None:
    await asyncio.gather(*(migrate(durable_backend.url) for _ in range(4)))
    repo = await durable_backend.open()
    assert await repo.count() == 0


def _schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": lambda name, kind, _parents: name != VERSION_TABLE,
        },
    )
    return compare_metadata(context, metadata)


async def test_migrations_create_exactly_the_tables_the_queries_use(
    durable_backend: Backend,
) -> None:
    await migrate(durable_backend.url)
    engine = create_engine_for(parse_database_url(durable_backend.url))
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(_schema_differences)
    finally:
        await engine.dispose()
    assert differences == []


async def test_status_checks_hold_in_the_database(durable_backend: Backend) -> None:
    repo = await durable_backend.open()
    job = await repo.create(new_job())
    assert isinstance(repo, SqlJobRepository)
    engine = create_engine_for(repo.target)
    try:
        with pytest.raises(IntegrityError, match=r"(?i)check"):
            async with engine.begin() as conn:
                await conn.execute(
                    text("UPDATE jobs SET status = 'unknown' WHERE job_id = :id"),
                    {"id": job.job_id},
                )
    finally:
        await engine.dispose()
    assert (await repo.get(job.job_id)).status is JobStatus.AWAITING_PAYMENT


async def test_no_url_means_agentjobs_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    repo = open_repository(None)
    await repo.open()
    try:
        await repo.create(new_job())
    finally:
        await repo.close()
    assert (tmp_path / "agentjobs.db").is_file()
    await migrate(None)  # already at head: nothing to do


async def test_a_missing_sqlite_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "state" / "jobs" / "agentjobs.db"
    repo = open_repository(f"sqlite:///{path}")
    await repo.open()
    try:
        await repo.create(new_job())
    finally:
        await repo.close()
    assert path.is_file()
