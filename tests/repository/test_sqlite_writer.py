"""The SQLite driver's own promises: group commit (many callers, one fsync, each told
only after the commit, one caller's failure rolls back only its own work), a write lock
held by another process answered with UNAVAILABLE within the busy timeout, and reads on
the event loop's thread that see every committed write."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from agentjobs.server.domain import Job, StorageUnavailableError
from agentjobs.server.repository.base import JobRepository, RequestIdTakenError
from agentjobs.server.repository.drivers.sqlite import WRITE_BUSY_TIMEOUT_MS, SqliteDatabase
from agentjobs.server.repository.tables import replicas
from tests.repository.builders import T0_MS, created_events, new_job
from tests.repository.builders import insert as insert_job
from tests.repository.conftest import Backend

WRITERS = 200


def _path(repo: JobRepository) -> str:
    assert isinstance(repo.db, SqliteDatabase)
    return repo.db.path


def _visible(path: str, job_id: str) -> bool:
    """Whether a connection of its own (as another process would have) sees the job."""
    connection = sqlite3.connect(path)
    try:
        return (
            connection.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            is not None
        )
    finally:
        connection.close()


async def test_concurrent_writes_share_commits_and_are_acknowledged_after_them(
    sqlite_backend: Backend,
) -> None:
    repo = await sqlite_backend.open()
    db = repo.db
    assert isinstance(db, SqliteDatabase)
    path = _path(repo)
    batches, batched = db.batches, db.batched_writes
    unseen: list[str] = []

    async def write_and_look() -> Job:
        job = new_job()
        stored = await repo.insert(job, created_events(job))
        # Acknowledged: committed, so a fresh connection sees it at once.
        if not _visible(path, stored.job_id):
            unseen.append(stored.job_id)
        return stored

    stored = await asyncio.gather(*(write_and_look() for _ in range(WRITERS)))
    assert unseen == []
    assert len({job.job_id for job in stored}) == WRITERS
    commits = db.batches - batches
    assert db.batched_writes - batched == WRITERS
    assert commits < WRITERS, "concurrent writes were not committed together"
    assert await repo.count() == WRITERS
    # Everything is on disk for the next process.
    reopened = await sqlite_backend.open()
    assert await reopened.count() == WRITERS


async def test_a_failing_write_rolls_back_only_its_own_work(sqlite_backend: Backend) -> None:
    repo = await sqlite_backend.open()
    db = repo.db
    assert isinstance(db, SqliteDatabase)
    taken = await insert_job(repo, request_id="req-taken")
    # Hold the writer thread in a write until every other write is queued: they then
    # form one batch, committed together.
    queued = threading.Event()

    def hold(_connection: Connection) -> None:
        assert queued.wait(10), "the test never queued its writes"

    held = asyncio.ensure_future(db.write(hold))
    await asyncio.sleep(0)  # (lets the writer take the holding write first)
    batches = db.batches

    def half_done_then_fails(connection: Connection) -> None:
        connection.execute(
            insert(replicas).values(replica_id="half", role="x", started_at=0, heartbeat_at=0)
        )
        raise RuntimeError("a body that fails after writing")

    good = [new_job() for _ in range(5)]
    duplicate = new_job(request_id="req-taken")
    calls = [
        *(repo.insert(job, created_events(job)) for job in good[:2]),
        db.write(half_done_then_fails),
        repo.insert(duplicate, created_events(duplicate)),
        *(repo.insert(job, created_events(job)) for job in good[2:]),
        repo.heartbeat("whole", "all", started_at=T0_MS, now_ms=T0_MS),
    ]
    tasks = [asyncio.ensure_future(call) for call in calls]
    # One turn of the loop: every task runs up to its first await, which is after it
    # put its write on the writer's queue.
    await asyncio.sleep(0)
    queued.set()
    await held
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert db.batches - batches <= 2  # the held write's batch and (at most) one more
    assert isinstance(outcomes[2], RuntimeError)
    assert isinstance(outcomes[3], RequestIdTakenError)
    assert [o for i, o in enumerate(outcomes) if i not in (2, 3)][:-1] == [
        job.model_copy(update={"event_count": 1}) for job in good
    ]
    for job in good:
        assert (await repo.get(job.job_id)).job_id == job.job_id
    assert await repo.get_by_request_id("req-taken") == taken
    assert [r.replica_id for r in await repo.list_replicas(T0_MS)] == ["whole"]
    assert await repo.count() == 1 + len(good)


@pytest.mark.slow
async def test_a_write_locked_file_answers_unavailable_and_the_writer_goes_on(
    sqlite_backend: Backend,
) -> None:
    """Another process holds the write lock (BEGIN IMMEDIATE): a write waits the busy
    timeout, then fails with StorageUnavailableError instead of hanging; reads go on
    meanwhile (WAL), and once the lock is gone the same writer writes again."""
    repo = await sqlite_backend.open()
    before = await insert_job(repo)
    other = sqlite3.connect(_path(repo), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        blocked = new_job()
        async with asyncio.timeout(WRITE_BUSY_TIMEOUT_MS / 1000 + 10):
            write = asyncio.ensure_future(repo.insert(blocked, created_events(blocked)))
            # Reads do not wait for the writer, on the loop's thread or off it.
            assert await repo.get(before.job_id) == before
            assert (await repo.list()).items == [before]
            with pytest.raises(StorageUnavailableError, match="unavailable"):
                await write
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not _visible(_path(repo), blocked.job_id)
    async with asyncio.timeout(10):
        after = await insert_job(repo)
        assert await repo.count() == 2
    assert _visible(_path(repo), after.job_id)


async def test_reads_on_the_loop_see_every_commit(sqlite_backend: Backend) -> None:
    repo = await sqlite_backend.open()
    job = await insert_job(repo)
    for n in range(20):
        await repo.heartbeat("r", "all", started_at=0, now_ms=n)
        (row,) = await repo.list_replicas(0)
        assert row.heartbeat_at == n
    # A write by another process (another connection) is seen by the next read.
    other = sqlite3.connect(_path(repo), isolation_level=None)
    try:
        other.execute(
            "UPDATE jobs SET result = 'written elsewhere' WHERE job_id = ?", (job.job_id,)
        )
    finally:
        other.close()
    assert (await repo.get(job.job_id)).result == "written elsewhere"


async def test_a_file_in_a_directory_that_cannot_be_created_fails_to_open(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    repo = JobRepository(f"sqlite:///{blocker / 'sub' / 'agentjobs.db'}")
    with pytest.raises(OSError):
        await repo.open(watch_other_processes=False)
