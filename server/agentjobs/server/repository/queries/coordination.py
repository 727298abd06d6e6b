"""What the replicas share besides jobs: the diff watermarks, the replicas' heartbeats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from agentjobs.server.repository.tables import jobs, monitor_watermarks, replicas
from agentjobs.server.repository.timestamps import as_utc


@dataclass(frozen=True)
class Watermark:
    """Where diff polling resumes: (lastUpdate, cursorId)."""

    last_update: datetime
    cursor_id: str | None = None


@dataclass(frozen=True)
class ReplicaRow:
    replica_id: str
    role: str
    started_at: int
    heartbeat_at: int
    steps_held: int


def _upsert(
    connection: Connection,
    table: Table,
    values: dict[str, Any],
    keys: list[str],
    replace: dict[str, Any],
) -> None:
    if connection.dialect.name == "postgresql":
        pg = postgresql.insert(table).values(values)
        connection.execute(pg.on_conflict_do_update(index_elements=keys, set_=replace))
    else:
        lite = sqlite.insert(table).values(values)
        connection.execute(lite.on_conflict_do_update(index_elements=keys, set_=replace))


def get_watermark(connection: Connection, name: str) -> Watermark | None:
    row = connection.execute(
        select(monitor_watermarks).where(monitor_watermarks.c.name == name)
    ).first()
    if row is None:
        return None
    return Watermark(last_update=row.last_update, cursor_id=row.cursor_id)


def set_watermark(connection: Connection, name: str, watermark: Watermark) -> None:
    values = {
        "name": name,
        "last_update": as_utc(watermark.last_update, "last_update"),
        "cursor_id": watermark.cursor_id,
    }
    _upsert(
        connection,
        monitor_watermarks,
        values,
        ["name"],
        {"last_update": values["last_update"], "cursor_id": values["cursor_id"]},
    )


def heartbeat(
    connection: Connection, replica_id: str, role: str, *, started_at: int, now_ms: int
) -> None:
    _upsert(
        connection,
        replicas,
        {"replica_id": replica_id, "role": role, "started_at": started_at, "heartbeat_at": now_ms},
        ["replica_id"],
        # started_at too: a replica restarted under a fixed id is a new process.
        {"role": role, "started_at": started_at, "heartbeat_at": now_ms},
    )


def remove_replica(connection: Connection, replica_id: str) -> None:
    connection.execute(delete(replicas).where(replicas.c.replica_id == replica_id))


def prune_replicas(connection: Connection, older_than_ms: int) -> None:
    connection.execute(delete(replicas).where(replicas.c.heartbeat_at < older_than_ms))


def list_replicas(connection: Connection, now_ms: int) -> list[ReplicaRow]:
    held = (
        select(func.count())
        .select_from(jobs)
        .where(jobs.c.lease_owner == replicas.c.replica_id, jobs.c.lease_expires_at >= now_ms)
        .scalar_subquery()
    )
    rows = connection.execute(
        select(replicas, held.label("steps_held")).order_by(replicas.c.started_at)
    )
    return [
        ReplicaRow(r.replica_id, r.role, int(r.started_at), int(r.heartbeat_at), int(r.steps_held))
        for r in rows
    ]
