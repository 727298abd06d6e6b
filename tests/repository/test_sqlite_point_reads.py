"""SQLite reads a job on the event loop's thread (engines.py): it must see every
committed write, and a "busy" answer must send it to the async engine (which waits off
the loop) rather than fail."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from agentjobs.server.domain import JobNotFoundError, JobStatus
from agentjobs.server.repository import sql
from agentjobs.server.repository.factory import open_repository
from tests.repository.builders import funds_locked, new_job


async def test_a_read_sees_the_latest_commit(tmp_path: Path) -> None:
    repo = open_repository(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    await repo.open()
    try:
        job = await repo.create(new_job())
        assert (await repo.get(job.job_id)).status is JobStatus.AWAITING_PAYMENT
        await repo.update_status(job.job_id, funds_locked())
        assert (await repo.get(job.job_id)).status is JobStatus.RUNNING
    finally:
        await repo.close()


async def test_a_busy_answer_falls_back_to_the_async_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = open_repository(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    await repo.open()
    try:
        job = await repo.create(new_job())

        def busy(*_args: object) -> None:
            raise OperationalError("SELECT", {}, sqlite3.OperationalError("database is locked"))

        monkeypatch.setattr(sql, "_first_row", busy)
        assert (await repo.get(job.job_id)).job_id == job.job_id
        with pytest.raises(JobNotFoundError):
            await repo.get("no-such-job")
    finally:
        await repo.close()
