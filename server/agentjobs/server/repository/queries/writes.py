"""Writing decisions: the job row (compare-and-set on its version, fenced by the lease
when a worker writes), its events, its invoice and the change notification, in the
caller's transaction. Nothing here decides: `preview` says what the decision does."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.engine import Connection

from agentjobs.server.domain import InvoiceStatus, Job, StaleJobError
from agentjobs.server.domain.lifecycle import Continue, Decision, NewEvent, preview
from agentjobs.server.domain.lifecycle.decision import InvoiceChange
from agentjobs.server.domain.steps import KEEP, Scheduled
from agentjobs.server.repository.rows import JOB_COLUMNS, amount_rows, column_values, job_row
from agentjobs.server.repository.tables import invoice_amounts, invoices, job_events, jobs

# Delivered with the commit to every replica's listener (PostgreSQL).
NOTIFY_CHANNEL = "agentjobs_changes"
_NOTIFY_LIMIT = 7000  # bytes; PostgreSQL's payload limit is 8000


@dataclass(frozen=True)
class Fence:
    """The lease a worker holds on a job: its write counts only while it still holds it."""

    owner: str
    attempt: int


@dataclass(frozen=True)
class Lease:
    owner: str
    expires_at: int


def notify(connection: Connection, job_ids: Iterable[str]) -> None:
    """Tell the other replicas (at commit) which jobs changed."""
    if connection.dialect.name != "postgresql":
        return
    payload = ""
    for job_id in job_ids:
        if len(payload) + len(job_id) + 1 > _NOTIFY_LIMIT:
            connection.execute(
                text("SELECT pg_notify(:c, :p)"), {"c": NOTIFY_CHANNEL, "p": payload}
            )
            payload = ""
        payload = f"{payload},{job_id}" if payload else job_id
    connection.execute(text("SELECT pg_notify(:c, :p)"), {"c": NOTIFY_CHANNEL, "p": payload})


def insert_job(
    connection: Connection,
    job: Job,
    events: Sequence[NewEvent],
    lease: Lease | None,
) -> Job:
    """A new job with its first events (and, when `lease` is given, held by the caller).
    Raises IntegrityError when its request_id is taken."""
    stored = job.model_copy(update={"event_count": len(events)})
    if lease is not None:
        stored = stored.model_copy(
            update={"lease_owner": lease.owner, "lease_expires_at": lease.expires_at}
        )
    row = job_row(stored)
    connection.execute(insert(jobs), row)
    _insert_events(connection, stored, events, 0, stored.created_at)
    notify(connection, [job.job_id])
    return stored


def apply_decision(
    connection: Connection,
    job: Job,
    decision: Decision,
    now: datetime,
    *,
    fence: Fence | None = None,
    affinity: str | None = None,
    keep_affinity: bool = False,
    lease: Lease | None = None,
) -> Job:
    """Write `decision`, made on `job` as read, in this transaction. Raises StaleJobError
    if the job changed since (another writer won) or the fence's lease is gone.

    `affinity`: when the decision leaves the job waiting (a new unleased step), the
    replica that gets the first claim on it; `keep_affinity`: the one it had (an answer
    goes back to the handler that waits for it). `lease`: a new lease for a Continue."""
    if decision.writes_nothing:
        return job
    after = preview(job, decision, now)
    after = after.model_copy(update={"event_count": job.event_count + len(decision.events)})
    step = decision.step
    held: dict[str, Any] = {}
    if isinstance(step, Continue):
        if lease is not None:
            held = {"lease_owner": lease.owner, "lease_expires_at": lease.expires_at}
    elif step is not KEEP:
        # The lease belonged to the step that is over.
        held = {"lease_owner": None, "lease_expires_at": None}
    after = after.model_copy(update=held)
    values = _changed_columns(job, after)
    values.update(held)
    if step is not KEEP and not isinstance(step, Continue):
        if not keep_affinity:
            values["affinity"] = affinity
        if not isinstance(step, Scheduled) or step.step is not job.step:
            # A new step (or none) starts untried, even if a claim counted a try of the
            # old one after `job` was read (claims do not move the version).
            values["attempt"] = after.attempt
    where = [jobs.c.job_id == job.job_id, jobs.c.version == job.version]
    if fence is not None:
        where += [jobs.c.lease_owner == fence.owner, jobs.c.attempt == fence.attempt]
    written = connection.execute(update(jobs).where(*where).values(values))
    if written.rowcount != 1:
        raise StaleJobError(job.job_id)
    _insert_events(connection, after, decision.events, job.event_count, now)
    if decision.new_invoice is not None:
        _create_invoice(connection, after, decision.new_invoice, now)
    if decision.invoice is not None and after.blockchain_identifier:
        _change_invoice(connection, after.blockchain_identifier, decision.invoice, now)
    notify(connection, [job.job_id])
    return after


def delete_intent(connection: Connection, job: Job) -> None:
    """Remove a payment intent that never got a payment (compare-and-set on the version
    and on the intent's lease as read: a take-over moves the lease, not the version, and
    the replica that took the intent over may be asking for its payment now)."""
    connection.execute(delete(job_events).where(job_events.c.job_id == job.job_id))
    holder = (
        jobs.c.lease_owner.is_(None)
        if job.lease_owner is None
        else jobs.c.lease_owner == job.lease_owner
    )
    gone = connection.execute(
        delete(jobs).where(
            jobs.c.job_id == job.job_id,
            jobs.c.version == job.version,
            jobs.c.blockchain_identifier.is_(None),
            holder,
            jobs.c.attempt == job.attempt,
        )
    )
    if gone.rowcount != 1:
        raise StaleJobError(job.job_id)
    notify(connection, [job.job_id])


def _changed_columns(before: Job, after: Job) -> dict[str, Any]:
    changed = {}
    for name in JOB_COLUMNS:
        old, new = getattr(before, name), getattr(after, name)
        # Identity first: the input (up to a MiB) is the same object after a decision.
        if new is not old and new != old:
            changed[name] = new
    return column_values(changed)


def _insert_events(
    connection: Connection,
    job: Job,
    events: Sequence[NewEvent],
    written_before: int,
    now: datetime,
) -> None:
    if not events:
        return
    connection.execute(
        insert(job_events),
        [
            {
                "job_id": job.job_id,
                "sequence": written_before + index,
                "type": event.type.value,
                "status": job.status.value,
                "detail": event.detail,
                "data": dict(event.data),
                "created_at": now,
            }
            for index, event in enumerate(events, start=1)
        ],
    )


def _create_invoice(connection: Connection, job: Job, amounts: Any, now: datetime) -> None:
    connection.execute(
        insert(invoices),
        {
            "blockchain_identifier": job.blockchain_identifier,
            "job_id": job.job_id,
            "status": InvoiceStatus.PENDING.value,
            "on_chain_state": None,
            "next_action": "",
            "payment_source_type": job.payment_source_type,
            "created_at": now,
            "paid_at": None,
            "updated_at": now,
        },
    )
    if amounts:
        connection.execute(insert(invoice_amounts), amount_rows(job.blockchain_identifier, amounts))


def _change_invoice(
    connection: Connection, blockchain_identifier: str, change: InvoiceChange, now: datetime
) -> None:
    values: dict[str, Any] = {}
    if change.status is not None:
        values["status"] = change.status.value
    if change.on_chain_state is not None:
        values["on_chain_state"] = change.on_chain_state
    if change.next_action is not None:
        values["next_action"] = change.next_action
    if not values:
        return
    current = connection.execute(
        select(invoices.c.paid_at, invoices.c.updated_at).where(
            invoices.c.blockchain_identifier == blockchain_identifier
        )
    ).first()
    if current is None:
        return
    updated_at = max(now, current.updated_at)
    values["updated_at"] = updated_at
    # Paid once: a repeated "paid" keeps the first time.
    if change.status is InvoiceStatus.PAID and current.paid_at is None:
        values["paid_at"] = updated_at
    connection.execute(
        update(invoices)
        .where(invoices.c.blockchain_identifier == blockchain_identifier)
        .values(values)
    )
