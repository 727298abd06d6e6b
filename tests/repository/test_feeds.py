"""Change hints: the in-process hub, and the feeds that carry another process's writes
(SQLite: PRAGMA data_version, PostgreSQL: LISTEN/NOTIFY). Every wait is on the event
itself, bounded by asyncio.timeout."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Connection

from agentjobs.server.domain import EventType, JobStatus
from agentjobs.server.domain.lifecycle import NewEvent
from agentjobs.server.domain.steps import Step
from agentjobs.server.repository.base import JobRepository
from agentjobs.server.repository.queries import writes
from tests.repository.builders import T0_MS, at, created_events, event_only, insert, new_job
from tests.repository.conftest import Backend

# Far above the feeds' latency (a 0.1 s poll, a NOTIFY), far below a test's patience.
SEEN_WITHIN_S = 5.0


async def _woken(event: asyncio.Event) -> None:
    async with asyncio.timeout(SEEN_WITHIN_S):
        await event.wait()
    event.clear()


def _listener(repo: JobRepository) -> asyncio.Event:
    called = asyncio.Event()
    repo.changes.on_change(called.set)
    return called


# -- this process ----------------------------------------------------------------------
async def test_local_writes_wake_the_jobs_subscribers(repo: JobRepository) -> None:
    job = new_job()
    other = await insert(repo)
    any_change = _listener(repo)
    with repo.changes.subscribe(job.job_id) as mine, repo.changes.subscribe(other.job_id) as theirs:
        assert repo.changes.watched == 2
        stored = await repo.insert(job, created_events(job))
        assert mine.is_set() and any_change.is_set()
        mine.clear()
        any_change.clear()
        stored = await repo.apply(stored, event_only(), at(1))
        assert mine.is_set() and any_change.is_set()
        mine.clear()
        claimed = await repo.claim(
            "w1", now_ms=stored.run_at or 0, lease_ms=1_000, limit=5, affinity_grace_ms=0
        )
        assert job.job_id in {j.job_id for j in claimed}
        await repo.release("w1", [job.job_id])
        assert mine.is_set()
        mine.clear()
        await repo.delete_intent(await repo.get(job.job_id))
        assert mine.is_set()
        assert not theirs.is_set()
        repo.changes.changed_all()
        assert theirs.is_set()
    assert repo.changes.watched == 0


async def test_a_page_wakes_the_subscribers_of_the_jobs_written(repo: JobRepository) -> None:
    written, stale = await insert(repo), await insert(repo)
    await repo.apply(stale, event_only(), at(1))
    with (
        repo.changes.subscribe(written.job_id) as woken,
        repo.changes.subscribe(stale.job_id) as left_out,
    ):
        await repo.apply_page([(written, event_only()), (stale, event_only())], at(2))
        assert woken.is_set()
        assert not left_out.is_set()


# -- another process ---------------------------------------------------------------------
async def test_another_repository_sees_writes_on_the_same_store(durable_backend: Backend) -> None:
    """A second JobRepository on the same SQLite file / PostgreSQL schema (as another
    replica would open it) is woken by the first one's writes."""
    writer = await durable_backend.open()
    watcher = await durable_backend.open(watch=True)
    job = new_job()
    any_change = _listener(watcher)
    with watcher.changes.subscribe(job.job_id) as seen:
        stored = await writer.insert(job, created_events(job))
        await _woken(seen)
        await _woken(any_change)
        assert await watcher.get(job.job_id) == stored
        moved = await writer.apply(stored, event_only("moved"), at(1))
        await _woken(seen)
        assert (await watcher.events(job.job_id))[-1].detail == "moved"
        # Several writes between two looks: one wake-up, and every event is there.
        for n in range(3):
            moved = await writer.apply(moved, event_only(str(n)), at(2 + n))
        await _woken(seen)
        assert len(await watcher.events(job.job_id)) == moved.event_count


async def test_a_released_step_wakes_the_other_replicas_workers(durable_backend: Backend) -> None:
    """release() makes a step due at once elsewhere: the other replicas' workers (hub
    listeners) must hear of it, not find it at their next poll."""
    holder = await durable_backend.open()
    other = await durable_backend.open(watch=True)
    job = await insert(holder, status=JobStatus.RUNNING, step=Step.RUN, run_at=T0_MS)
    (claimed,) = await holder.claim(
        "w1", now_ms=T0_MS, lease_ms=60_000, limit=1, affinity_grace_ms=0
    )
    # Let the feed catch up with everything so far (a write it surely reports).
    marker = new_job()
    with other.changes.subscribe(marker.job_id) as seen:
        await holder.insert(marker, created_events(marker))
        await _woken(seen)
    worker_wake = _listener(other)
    assert await holder.release("w1", [claimed.job_id]) == 1
    await _woken(worker_wake)
    (again,) = await other.claim("w2", now_ms=T0_MS, lease_ms=1_000, limit=1, affinity_grace_ms=0)
    assert again.job_id == job.job_id


async def test_a_deleted_intent_does_not_hide_the_next_write(durable_backend: Backend) -> None:
    """An intent removed (its payment request failed) takes its events with it; the
    next event written may then reuse their place in the table. The other replica
    must still hear of it."""
    writer = await durable_backend.open()
    watcher = await durable_backend.open(watch=True)
    intent = new_job()
    with watcher.changes.subscribe(intent.job_id) as seen:
        stored = await writer.insert(intent, created_events(intent))
        await _woken(seen)  # the feed has looked past the intent's event
    await writer.delete_intent(stored)
    job = new_job()
    with watcher.changes.subscribe(job.job_id) as seen:
        await writer.insert(job, created_events(job))
        await _woken(seen)
        # And the feed goes on working afterwards.
        await writer.apply(await writer.get(job.job_id), event_only(), at(1))
        await _woken(seen)


async def test_a_burst_of_events_wakes_every_job(durable_backend: Backend) -> None:
    """More events between two looks of the feed than it reads at once."""
    writer = await durable_backend.open()
    watcher = await durable_backend.open(watch=True)
    chatty, quiet = new_job(), new_job()
    many = [NewEvent(EventType.PAYMENT_STATE_CHANGED, str(n)) for n in range(10_001)]

    def burst(connection: Connection) -> None:
        writes.insert_job(connection, chatty, many, None)
        writes.insert_job(connection, quiet, created_events(quiet), None)

    with watcher.changes.subscribe(quiet.job_id) as seen:
        await writer.db.write(burst)
        await _woken(seen)
    assert len(await watcher.events(chatty.job_id)) == 10_001
