"""Claiming due steps, keeping the leases, and the named leases (monitor leadership).

A claim is one statement: due steps (run_at <= now) whose lease is free or expired, in
run_at order, get this replica as owner until now + lease, and their attempt counted.
PostgreSQL picks them with FOR UPDATE SKIP LOCKED, so concurrent claimers never wait for
each other or take the same step; on SQLite the writer holds the database's write lock
(BEGIN IMMEDIATE), which orders claimers of every process. An expired lease is taken over
by the same statement: there is no separate rescuer and nothing is "re-run at boot".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import case, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from agentjobs.server.domain import EventType, Job
from agentjobs.server.domain.steps import Step
from agentjobs.server.repository.queries.writes import notify
from agentjobs.server.repository.rows import job_from_row
from agentjobs.server.repository.tables import job_events, jobs, leases


def claim_due(
    connection: Connection,
    owner: str,
    *,
    now_ms: int,
    lease_ms: int,
    limit: int,
    affinity_grace_ms: int,
    steps: Sequence[str] | None = None,
) -> list[Job]:
    """Claim up to `limit` due steps (of the kinds in `steps`, all when None)."""
    kinds = [] if steps is None else [jobs.c.step.in_(list(steps))]
    due = (
        select(jobs.c.job_id)
        .where(
            jobs.c.step.is_not(None),
            *kinds,
            jobs.c.run_at <= now_ms,
            or_(jobs.c.lease_owner.is_(None), jobs.c.lease_expires_at < now_ms),
            # A job answered while its handler waits here goes back to that handler
            # first; anyone may take it once the grace has passed.
            or_(
                jobs.c.affinity.is_(None),
                jobs.c.affinity == owner,
                jobs.c.run_at < now_ms - affinity_grace_ms,
            ),
        )
        .order_by(jobs.c.run_at)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    # A claimed run is the agent starting: its STARTED event is written by the claim
    # itself (no transaction of its own), so watchers see when the agent began.
    starting = case((jobs.c.step == Step.RUN.value, 1), else_=0)
    claimed = connection.execute(
        update(jobs)
        .where(jobs.c.job_id.in_(due.scalar_subquery()))
        .values(
            lease_owner=owner,
            lease_expires_at=now_ms + lease_ms,
            attempt=jobs.c.attempt + 1,
            affinity=None,
            event_count=jobs.c.event_count + starting,
            version=jobs.c.version + starting,
        )
        .returning(*jobs.c)
    )
    found = [job_from_row(row._mapping) for row in claimed]
    found.sort(key=lambda job: job.run_at or 0)
    runs = [job for job in found if job.step is Step.RUN]
    if runs:
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        connection.execute(
            insert(job_events),
            [
                {
                    "job_id": job.job_id,
                    "sequence": job.event_count,
                    "type": EventType.STARTED.value,
                    "status": job.status.value,
                    "detail": f"on {owner}"
                    if job.attempt <= 1
                    else f"run again (try {job.attempt}) on {owner}",
                    "data": {"replica": owner},
                    "created_at": max(now, job.updated_at),
                }
                for job in runs
            ],
        )
        notify(connection, [job.job_id for job in runs])
    return found


def defer_step(connection: Connection, job: Job, owner: str, *, run_at_ms: int) -> bool:
    """Give back the step `owner` holds, due again at `run_at_ms` (whoever is free then
    takes it); False if the lease was no longer ours."""
    deferred = connection.execute(
        update(jobs)
        .where(jobs.c.job_id == job.job_id, jobs.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None, run_at=run_at_ms)
        .returning(jobs.c.job_id)
    ).first()
    if deferred is not None:
        notify(connection, [job.job_id])
    return deferred is not None


def renew_leases(connection: Connection, owner: str, *, until_ms: int) -> set[str]:
    """Extend every lease `owner` still holds; returns the jobs it holds."""
    renewed = connection.execute(
        update(jobs)
        .where(jobs.c.lease_owner == owner)
        .values(lease_expires_at=until_ms)
        .returning(jobs.c.job_id)
    )
    return {row.job_id for row in renewed}


def release_leases(connection: Connection, owner: str, job_ids: Sequence[str]) -> int:
    """Give steps back unfinished (a clean shutdown): due again at once elsewhere (the
    other replicas are told), and the interrupted try does not count against the step's
    attempts."""
    if not job_ids:
        return 0
    released = connection.execute(
        update(jobs)
        .where(jobs.c.lease_owner == owner, jobs.c.job_id.in_(list(job_ids)))
        .values(
            lease_owner=None,
            lease_expires_at=None,
            attempt=case((jobs.c.attempt > 0, jobs.c.attempt - 1), else_=0),
        )
        .returning(jobs.c.job_id)
    )
    given_back = [row.job_id for row in released]
    if given_back:
        notify(connection, given_back)
    return len(given_back)


def release_all(connection: Connection, owner: str) -> int:
    """Every lease `owner` holds, given back: a replica starting under the id of one
    that stopped (the same host and pid, or a fixed AGENTJOBS_REPLICA_ID) knows that no
    one works on them; the interrupted tries count."""
    released = connection.execute(
        update(jobs)
        .where(jobs.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )
    return int(released.rowcount or 0)


def next_due(connection: Connection) -> int | None:
    """When a step next becomes claimable (epoch ms): the earliest run_at of a free
    step, or the earliest expiry of a held one."""
    free = connection.execute(
        select(func.min(jobs.c.run_at)).where(
            jobs.c.step.is_not(None), jobs.c.lease_owner.is_(None)
        )
    ).scalar()
    held = connection.execute(
        select(func.min(jobs.c.lease_expires_at)).where(
            jobs.c.lease_owner.is_not(None), jobs.c.step.is_not(None)
        )
    ).scalar()
    times = [int(value) for value in (free, held) if value is not None]
    return min(times) if times else None


# -- named leases ----------------------------------------------------------------------
def acquire_lease(
    connection: Connection, name: str, owner: str, *, now_ms: int, until_ms: int
) -> bool:
    """Take or keep the lease `name` until `until_ms`; False if another owner holds it."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(leases).values(name=name, owner=owner, expires_at=until_ms)
    statement = statement.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={"owner": owner, "expires_at": until_ms},
        where=or_(leases.c.owner == owner, leases.c.expires_at < now_ms),
    ).returning(leases.c.owner)
    return connection.execute(statement).first() is not None


def release_lease(connection: Connection, name: str, owner: str) -> None:
    connection.execute(delete(leases).where(leases.c.name == name, leases.c.owner == owner))


def lease_holder(connection: Connection, name: str, now_ms: int) -> str | None:
    row = connection.execute(
        select(leases.c.owner).where(leases.c.name == name, leases.c.expires_at >= now_ms)
    ).first()
    return None if row is None else str(row.owner)


def take_over(
    connection: Connection, job: Job, owner: str, *, now_ms: int, until_ms: int
) -> Job | None:
    """Claim this one job's step if its lease is free or expired (None otherwise)."""
    claimed = connection.execute(
        update(jobs)
        .where(
            jobs.c.job_id == job.job_id,
            jobs.c.step.is_not(None),
            or_(jobs.c.lease_owner.is_(None), jobs.c.lease_expires_at < now_ms),
        )
        .values(lease_owner=owner, lease_expires_at=until_ms, attempt=jobs.c.attempt + 1)
        .returning(*jobs.c)
    ).first()
    return None if claimed is None else job_from_row(claimed._mapping)
