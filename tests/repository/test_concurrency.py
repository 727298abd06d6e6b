"""Concurrent writers: no lost write, no silent overwrite, no duplicate sequence."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentjobs.server.domain import (
    EventType,
    InvalidStateTransitionError,
    Job,
    JobError,
    JobStatus,
)
from agentjobs.server.repository.base import JobRepository, StatusChange
from agentjobs.server.repository.memory import InMemoryJobRepository
from tests.repository.builders import funds_locked, new_job
from tests.repository.conftest import Backend

RACERS = 100


async def test_concurrent_creates_give_unique_ids(repo: JobRepository) -> None:
    jobs = await asyncio.gather(*(repo.create(new_job()) for _ in range(RACERS)))
    assert len({j.job_id for j in jobs}) == RACERS
    assert len({j.status_id for j in jobs}) == RACERS
    assert await repo.count() == RACERS


def test_creates_from_many_threads_each_with_its_own_loop() -> None:
    repo = InMemoryJobRepository()
    start = threading.Barrier(RACERS)

    def create_in_own_loop() -> Job:
        start.wait()
        return asyncio.run(repo.create(new_job()))

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        jobs = list(pool.map(lambda _: create_in_own_loop(), range(RACERS)))
    assert len({j.job_id for j in jobs}) == RACERS
    assert asyncio.run(repo.count()) == RACERS


def test_transitions_from_many_threads_have_one_winner() -> None:
    repo = InMemoryJobRepository()
    job = asyncio.run(repo.create(new_job()))
    start = threading.Barrier(RACERS)

    def race() -> bool:
        start.wait()
        try:
            asyncio.run(repo.update_status(job.job_id, funds_locked()))
        except InvalidStateTransitionError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        outcomes = list(pool.map(lambda _: race(), range(RACERS)))
    assert outcomes.count(True) == 1
    assert len(asyncio.run(repo.events(job.job_id))) == 3


async def test_racing_terminal_transitions_have_exactly_one_winner(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    await repo.update_status(job.job_id, funds_locked())

    def change(i: int) -> StatusChange:
        if i % 2:
            return StatusChange(
                to=JobStatus.COMPLETED,
                expected=JobStatus.RUNNING,
                event=EventType.COMPLETED,
                result=f"result {i}",
            )
        return StatusChange(
            to=JobStatus.FAILED,
            event=EventType.FAILED,
            error=JobError(reason="AGENT_ERROR", message=f"racer {i}"),
        )

    outcomes = await asyncio.gather(
        *(repo.update_status(job.job_id, change(i)) for i in range(RACERS)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, Job)]
    losers = [o for o in outcomes if not isinstance(o, Job)]
    assert len(winners) == 1
    assert all(isinstance(o, InvalidStateTransitionError) for o in losers), losers
    stored = await repo.get(job.job_id)
    assert stored == winners[0]
    terminal = [
        e
        for e in await repo.events(job.job_id)
        if e.type in (EventType.COMPLETED, EventType.FAILED)
    ]
    assert len(terminal) == 1
    assert terminal[0].status is stored.status


async def test_concurrent_event_appends_get_consecutive_sequences(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    await asyncio.gather(
        *(
            repo.record_event(job.job_id, EventType.PAYMENT_STATE_CHANGED, detail=str(i))
            for i in range(50)
        )
    )
    events = await repo.events(job.job_id)
    assert [e.sequence for e in events] == list(range(1, 53))
    assert sorted(e.detail for e in events[2:]) == sorted(str(i) for i in range(50))


async def test_concurrent_creates_with_one_request_id_make_one_job(repo: JobRepository) -> None:
    outcomes = await asyncio.gather(
        *(repo.create(new_job(request_id="same-request")) for _ in range(20))
    )
    assert len({j.job_id for j in outcomes}) == 1
    assert await repo.count() == 1
    assert len((await repo.list_invoices()).items) == 1


async def test_two_repositories_on_one_database_race_safely(durable_backend: Backend) -> None:
    """Two repository objects = two pools, as two server processes would have: the
    in-process write queue does not help here, the database's locking must."""
    first, second = await durable_backend.open(), await durable_backend.open()
    jobs = await asyncio.gather(*(r.create(new_job()) for r in (first, second) * 10))
    target = jobs[0]
    outcomes = await asyncio.gather(
        *(r.update_status(target.job_id, funds_locked()) for r in (first, second) * 10),
        return_exceptions=True,
    )
    assert sum(isinstance(o, Job) for o in outcomes) == 1
    assert all(isinstance(o, (Job, InvalidStateTransitionError)) for o in outcomes), outcomes
    await asyncio.gather(
        *(
            r.record_event(target.job_id, EventType.PAYMENT_STATE_CHANGED)
            for r in (first, second) * 10
        )
    )
    assert [e.sequence for e in await second.events(target.job_id)] == list(range(1, 24))
    assert await first.count() == 20


@pytest.mark.parametrize("racers", [2, 20])
async def test_racing_writers_on_different_jobs_all_succeed(
    repo: JobRepository, racers: int
) -> None:
    jobs = [await repo.create(new_job()) for _ in range(racers)]
    moved = await asyncio.gather(*(repo.update_status(j.job_id, funds_locked()) for j in jobs))
    assert all(j.status is JobStatus.RUNNING for j in moved)
    assert await repo.count(JobStatus.RUNNING) == racers
