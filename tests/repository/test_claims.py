"""The schedule: claiming due steps, keeping and giving back leases, named leases."""

from __future__ import annotations

import asyncio
from typing import Any

from agentjobs.server.domain import Job, JobStatus
from agentjobs.server.domain.lifecycle import Decision
from agentjobs.server.domain.steps import Scheduled, Step
from agentjobs.server.repository.base import JobRepository, Lease
from tests.repository.builders import T0, T0_MS, at, insert, new_job
from tests.repository.conftest import Backend, sql_rows

LEASE_MS = 30_000


async def _due(repo: JobRepository, run_at: int, step: Step = Step.SUBMIT, **fields: Any) -> Job:
    """A job whose `step` is due at `run_at` (epoch ms), free of any lease."""
    return await insert(repo, status=JobStatus.RUNNING, step=step, run_at=run_at, **fields)


async def _claim(
    repo: JobRepository,
    owner: str,
    now_ms: int,
    *,
    limit: int = 10,
    lease_ms: int = LEASE_MS,
    grace_ms: int = 0,
    steps: list[str] | None = None,
) -> list[Job]:
    return await repo.claim(
        owner,
        now_ms=now_ms,
        lease_ms=lease_ms,
        limit=limit,
        affinity_grace_ms=grace_ms,
        steps=steps,
    )


def _ids(jobs: list[Job]) -> list[str]:
    return [job.job_id for job in jobs]


async def test_due_steps_are_claimed_in_run_at_order_up_to_the_limit(repo: JobRepository) -> None:
    # Inserted out of order; run_at decides.
    offsets = [40, 10, 30, 0, 20]
    jobs = {offset: await _due(repo, T0_MS + offset) for offset in offsets}
    now = T0_MS + 100
    first = await _claim(repo, "w1", now, limit=3)
    assert _ids(first) == [jobs[0].job_id, jobs[10].job_id, jobs[20].job_id]
    for job in first:
        assert (job.lease_owner, job.lease_expires_at, job.attempt) == ("w1", now + LEASE_MS, 1)
        assert await repo.get(job.job_id) == job
    rest = await _claim(repo, "w2", now, limit=3)
    assert _ids(rest) == [jobs[30].job_id, jobs[40].job_id]
    assert await _claim(repo, "w3", now) == []


async def test_only_due_steps_are_claimed(repo: JobRepository) -> None:
    due = await _due(repo, T0_MS)
    at_now = await _due(repo, T0_MS + 500)
    await _due(repo, T0_MS + 501)  # not due yet
    await insert(repo, status=JobStatus.COMPLETED, step=None, run_at=None)  # nothing to do
    assert _ids(await _claim(repo, "w1", T0_MS + 500)) == [due.job_id, at_now.job_id]


async def test_the_step_kind_filter(repo: JobRepository) -> None:
    run = await _due(repo, T0_MS, Step.RUN)
    submit = await _due(repo, T0_MS + 1, Step.SUBMIT)
    follow = await _due(repo, T0_MS + 2, Step.FOLLOW)
    now = T0_MS + 10
    assert _ids(await _claim(repo, "w1", now, steps=[Step.SUBMIT, Step.FOLLOW])) == [
        submit.job_id,
        follow.job_id,
    ]
    assert await _claim(repo, "w1", now, steps=[Step.REFUND]) == []
    assert await _claim(repo, "w1", now, steps=[]) == []
    assert _ids(await _claim(repo, "w1", now, steps=[Step.RUN])) == [run.job_id]


async def test_a_held_step_is_taken_over_only_once_its_lease_expired(repo: JobRepository) -> None:
    job = await _due(repo, T0_MS)
    (mine,) = await _claim(repo, "w1", T0_MS, lease_ms=1_000)
    expiry = T0_MS + 1_000
    assert await _claim(repo, "w2", T0_MS + 500) == []
    assert await _claim(repo, "w1", T0_MS + 500) == []  # not even by its holder
    assert await _claim(repo, "w2", expiry) == []
    (theirs,) = await _claim(repo, "w2", expiry + 1)
    assert theirs.job_id == job.job_id
    assert (theirs.lease_owner, theirs.lease_expires_at, theirs.attempt) == (
        "w2",
        expiry + 1 + LEASE_MS,
        2,
    )
    # A claim is not a decided write: the version (the compare-and-set token) stays.
    assert theirs.version == mine.version == job.version


async def test_affinity_gives_the_waiting_replica_the_first_claim(repo: JobRepository) -> None:
    job = await _due(repo, T0_MS)
    (claimed,) = await _claim(repo, "w1", T0_MS)
    # w1's handler waits for the answer: the resumed step goes back to w1 first.
    resumed_at = T0_MS + 5_000
    await repo.apply(claimed, Decision(step=Scheduled(Step.RUN, resumed_at)), at(5), affinity="w1")
    grace = 2_000
    assert await _claim(repo, "w2", resumed_at, grace_ms=grace) == []
    assert await _claim(repo, "w2", resumed_at + grace, grace_ms=grace) == []
    (back,) = await _claim(repo, "w1", resumed_at, grace_ms=grace)
    assert (back.job_id, back.lease_owner) == (job.job_id, "w1")
    rows = await sql_rows(repo, "SELECT affinity FROM jobs WHERE job_id = :id", id=job.job_id)
    assert rows[0][0] is None  # the claim used it up


async def test_affinity_expires_after_the_grace(repo: JobRepository) -> None:
    job = await _due(repo, T0_MS)
    (claimed,) = await _claim(repo, "w1", T0_MS)
    resumed_at = T0_MS + 5_000
    await repo.apply(claimed, Decision(step=Scheduled(Step.RUN, resumed_at)), at(5), affinity="w1")
    (taken,) = await _claim(repo, "w2", resumed_at + 2_001, grace_ms=2_000)
    assert (taken.job_id, taken.lease_owner) == (job.job_id, "w2")


async def test_concurrent_claimers_never_get_the_same_step(backend: Backend) -> None:
    """8 claimers at once, each its own repository (pool, writer thread: as 8 processes
    would have), claiming in rounds until nothing is due: every step is claimed once."""
    claimers = await backend.replicas(8)
    total = 60
    for n in range(total):
        await _due(claimers[0], T0_MS + n)
    now = T0_MS + total
    got: dict[str, list[str]] = {f"w{i}": [] for i in range(len(claimers))}

    async def claim_all(index: int, repository: JobRepository) -> None:
        owner = f"w{index}"
        while True:
            jobs = await _claim(repository, owner, now, limit=3)
            if not jobs:
                return
            assert len(jobs) <= 3
            assert all(job.lease_owner == owner for job in jobs)
            got[owner] += _ids(jobs)

    await asyncio.gather(*(claim_all(i, r) for i, r in enumerate(claimers)))
    claimed = [job_id for ids in got.values() for job_id in ids]
    assert len(claimed) == total
    assert len(set(claimed)) == total, "a step was claimed twice"
    rows = await sql_rows(claimers[-1], "SELECT job_id, lease_owner, attempt FROM jobs")
    held = {row.job_id: (row.lease_owner, row.attempt) for row in rows}
    for owner, ids in got.items():
        for job_id in ids:
            assert held[job_id] == (owner, 1)


async def test_renew_extends_only_the_owners_leases(repo: JobRepository) -> None:
    for n in range(3):
        await _due(repo, T0_MS + n)
    mine = await _claim(repo, "w1", T0_MS + 10, limit=2)
    (theirs,) = await _claim(repo, "w2", T0_MS + 10)
    held = await repo.renew("w1", until_ms=T0_MS + 99_000)
    assert held == set(_ids(mine))
    for job in mine:
        assert (await repo.get(job.job_id)).lease_expires_at == T0_MS + 99_000
    assert (await repo.get(theirs.job_id)).lease_expires_at == theirs.lease_expires_at
    assert await repo.renew("nobody", until_ms=T0_MS + 99_000) == set()


async def test_renew_no_longer_returns_a_step_taken_over(repo: JobRepository) -> None:
    job = await _due(repo, T0_MS)
    await _claim(repo, "w1", T0_MS, lease_ms=1_000)
    await _claim(repo, "w2", T0_MS + 1_001)
    assert await repo.renew("w1", until_ms=T0_MS + 60_000) == set()
    assert (await repo.get(job.job_id)).lease_owner == "w2"


async def test_release_gives_the_step_back_without_counting_the_try(repo: JobRepository) -> None:
    first, second = await _due(repo, T0_MS), await _due(repo, T0_MS + 1)
    mine = await _claim(repo, "w1", T0_MS + 10)
    assert await repo.release("w2", _ids(mine)) == 0  # not w2's to give back
    assert (await repo.get(first.job_id)).lease_owner == "w1"
    assert await repo.release("w1", []) == 0
    assert await repo.release("w1", [first.job_id, "no-such-job"]) == 1
    released = await repo.get(first.job_id)
    assert (released.lease_owner, released.lease_expires_at, released.attempt) == (None, None, 0)
    assert (await repo.get(second.job_id)).lease_owner == "w1"
    # Due again at once, elsewhere.
    (again,) = await _claim(repo, "w2", T0_MS + 11)
    assert (again.job_id, again.attempt) == (first.job_id, 1)


async def test_next_due(repo: JobRepository) -> None:
    assert await repo.next_due() is None
    await insert(repo, status=JobStatus.COMPLETED, step=None, run_at=None)
    assert await repo.next_due() is None
    await _due(repo, T0_MS + 5_000)
    early = await _due(repo, T0_MS + 1_000)
    assert await repo.next_due() == T0_MS + 1_000
    # Held: claimable again when the lease expires.
    (held,) = await _claim(repo, "w1", T0_MS + 1_000, limit=1, lease_ms=2_000)
    assert held.job_id == early.job_id
    assert await repo.next_due() == T0_MS + 3_000
    await repo.renew("w1", until_ms=T0_MS + 9_000)
    assert await repo.next_due() == T0_MS + 5_000


async def test_take_over_claims_one_job_if_its_lease_is_free_or_expired(
    repo: JobRepository,
) -> None:
    intent = new_job(created_at=T0)
    intent = await repo.insert(intent, [], lease=Lease("api-1", T0_MS + 1_000))
    assert await repo.take_over(intent, "w1", now_ms=T0_MS + 500, until_ms=T0_MS + 9_000) is None
    assert (await repo.get(intent.job_id)).lease_owner == "api-1"
    taken = await repo.take_over(intent, "w1", now_ms=T0_MS + 1_001, until_ms=T0_MS + 9_000)
    assert taken is not None
    assert (taken.lease_owner, taken.lease_expires_at, taken.attempt) == ("w1", T0_MS + 9_000, 1)
    assert await repo.get(intent.job_id) == taken
    # A free step is taken whenever it is due or not; a job without a step never.
    free = await _due(repo, T0_MS + 60_000)
    assert await repo.take_over(free, "w2", now_ms=T0_MS, until_ms=T0_MS + 1) is not None
    done = await insert(repo, status=JobStatus.COMPLETED, step=None, run_at=None)
    assert await repo.take_over(done, "w2", now_ms=T0_MS, until_ms=T0_MS + 1) is None


async def test_a_deferred_step_is_free_and_due_later(repo: JobRepository) -> None:
    intent = await repo.insert(new_job(created_at=T0), [], lease=Lease("api-1", T0_MS + 1_000))
    # Only its holder may defer it.
    assert not await repo.defer(intent, "api-2", run_at_ms=T0_MS + 5_000)
    assert await repo.defer(intent, "api-1", run_at_ms=T0_MS + 5_000)
    read = await repo.get(intent.job_id)
    assert (read.lease_owner, read.lease_expires_at, read.run_at) == (None, None, T0_MS + 5_000)

    async def claim(now_ms: int) -> list[Job]:
        return await repo.claim(
            "w1", now_ms=now_ms, lease_ms=LEASE_MS, limit=10, affinity_grace_ms=0
        )

    assert await claim(T0_MS + 4_999) == []
    (claimed,) = await claim(T0_MS + 5_000)
    assert claimed.job_id == intent.job_id


# -- named leases (monitor leadership) -------------------------------------------------
async def test_a_named_lease(repo: JobRepository) -> None:
    name = "payment-monitor"
    assert await repo.lease_holder(name, T0_MS) is None
    assert await repo.acquire_lease(name, "r1", now_ms=T0_MS, until_ms=T0_MS + 1_000)
    assert await repo.lease_holder(name, T0_MS) == "r1"
    # Kept (and extended) by its holder, refused to another while it holds.
    assert await repo.acquire_lease(name, "r1", now_ms=T0_MS + 900, until_ms=T0_MS + 2_000)
    assert not await repo.acquire_lease(name, "r2", now_ms=T0_MS + 1_500, until_ms=T0_MS + 9_000)
    assert not await repo.acquire_lease(name, "r2", now_ms=T0_MS + 2_000, until_ms=T0_MS + 9_000)
    assert await repo.lease_holder(name, T0_MS + 2_000) == "r1"
    assert await repo.lease_holder(name, T0_MS + 2_001) is None
    # Taken once expired.
    assert await repo.acquire_lease(name, "r2", now_ms=T0_MS + 2_001, until_ms=T0_MS + 9_000)
    assert await repo.lease_holder(name, T0_MS + 2_001) == "r2"
    assert not await repo.acquire_lease(name, "r1", now_ms=T0_MS + 2_002, until_ms=T0_MS + 9_000)
    # Released only by its holder.
    await repo.release_lease(name, "r1")
    assert await repo.lease_holder(name, T0_MS + 2_002) == "r2"
    await repo.release_lease(name, "r2")
    assert await repo.lease_holder(name, T0_MS + 2_002) is None
    assert await repo.acquire_lease(name, "r1", now_ms=T0_MS + 2_003, until_ms=T0_MS + 3_000)
    # Names are independent.
    assert await repo.acquire_lease("other", "r2", now_ms=T0_MS, until_ms=T0_MS + 1_000)
    assert await repo.lease_holder("other", T0_MS) == "r2"


async def test_racing_replicas_get_one_leader(backend: Backend) -> None:
    replicas = await backend.replicas(8)
    won = await asyncio.gather(
        *(
            r.acquire_lease("payment-monitor", f"r{i}", now_ms=T0_MS, until_ms=T0_MS + 30_000)
            for i, r in enumerate(replicas)
        )
    )
    assert won.count(True) == 1
    leader = f"r{won.index(True)}"
    assert await replicas[0].lease_holder("payment-monitor", T0_MS) == leader


async def test_claims_do_not_touch_jobs_created_later_than_t0(repo: JobRepository) -> None:
    """run_at alone decides: created_at and the wall clock play no part."""
    job = await _due(repo, T0_MS, created_at=T0.replace(year=2099))
    assert _ids(await _claim(repo, "w1", T0_MS)) == [job.job_id]
