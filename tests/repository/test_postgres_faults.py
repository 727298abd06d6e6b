"""PostgreSQL faults a caller can only wait out answer StorageUnavailableError (the
API's UNAVAILABLE, "retry later"), never a raw driver error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from agentjobs.server.domain import StorageUnavailableError
from agentjobs.server.repository.base import JobRepository
from tests.repository.builders import at, event_only, insert
from tests.repository.conftest import POSTGRES_URL, Backend, fresh_backend

pytestmark = pytest.mark.postgres


@pytest.fixture
async def postgres(tmp_path: Path) -> AsyncIterator[Backend]:
    async with fresh_backend("postgres", tmp_path) as backend:
        yield backend


async def _blocked_by(admin: asyncpg.Connection, holder_pid: int) -> int:
    """The backend waiting for a lock `holder_pid` holds (waits until there is one)."""
    async with asyncio.timeout(10):
        while True:
            pid = await admin.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                holder_pid,
            )
            if pid is not None:
                return int(pid)
            await asyncio.sleep(0.01)  # (the next look at the server's own state)


async def test_a_statement_cancelled_while_it_waits_for_a_lock_is_unavailable(
    postgres: Backend,
) -> None:
    """statement_timeout (15 s) cancels a write stuck behind a lock with SQLSTATE 57014;
    pg_cancel_backend raises the same, without the wait."""
    repo: JobRepository = await postgres.open()
    job = await insert(repo)
    holder = await asyncpg.connect(POSTGRES_URL)
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        holder_pid = await holder.fetchval("SELECT pg_backend_pid()")
        locking = holder.transaction()
        await locking.start()
        await holder.execute(
            f'SELECT 1 FROM "{postgres.schema}".jobs WHERE job_id = $1 FOR UPDATE', job.job_id
        )
        write = asyncio.ensure_future(repo.apply(job, event_only("stuck"), at(1)))
        waiting = await _blocked_by(admin, holder_pid)
        assert await admin.fetchval("SELECT pg_cancel_backend($1)", waiting)
        with pytest.raises(StorageUnavailableError, match="57014"):
            await write
        await locking.rollback()
    finally:
        await holder.close()
        await admin.close()
    assert await repo.get(job.job_id) == job
    assert (await repo.apply(job, event_only("later"), at(2))).event_count == 2
