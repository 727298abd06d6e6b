"""The SQL tables as the queries see them (SQLAlchemy Core, no ORM).

The migrations under migrations/versions/ create these tables; this module only
describes them to the query builder, with the two column types that convert values:
timestamps (tz-aware UTC, microseconds) and JSON documents (stored as text).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from agentjobs.server.domain import InvoiceStatus, JobStatus
from agentjobs.server.repository.timestamps import as_utc

# ISO-8601 UTC with microseconds and a Z: every value has the same width, so SQLite's
# text comparison orders them exactly as time does (keyset pages, ranges, ORDER BY).
SQLITE_TIMESTAMP_WIDTH = len("2000-01-01T00:00:00.000000Z")


def format_sqlite_timestamp(value: datetime) -> str:
    return as_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class UtcTimestamp(TypeDecorator[datetime]):
    """timestamptz on PostgreSQL, fixed-width ISO text on SQLite; always tz-aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(SQLITE_TIMESTAMP_WIDTH))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return format_sqlite_timestamp(value)
        return as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).astimezone(UTC)
        return as_utc(value)


class JsonText(TypeDecorator[Any]):
    """A JSON document kept as text: portable, and what the operator sees is the JSON."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


def one_of(column: str, values: type[JobStatus] | type[InvoiceStatus]) -> str:
    listed = ", ".join(f"'{v.value}'" for v in values)
    return f"{column} IN ({listed})"


metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("status_id", String(36), nullable=False),
    Column("identifier_from_purchaser", Text, nullable=False),
    Column("input_data", JsonText, nullable=False),
    Column("input_hash", Text, nullable=False),
    # NULL until the payment service has answered (and for free jobs).
    Column("blockchain_identifier", Text),
    Column("seller_vkey", Text, nullable=False),
    Column("agent_identifier", Text, nullable=False),
    Column("pay_by_time", BigInteger, nullable=False),
    Column("submit_result_time", BigInteger, nullable=False),
    Column("unlock_time", BigInteger, nullable=False),
    Column("external_dispute_unlock_time", BigInteger, nullable=False),
    Column("pricing", String(16), nullable=False),
    Column("payment_source_type", String(32)),
    Column("payment_source_index", Integer),
    Column("deadline", BigInteger, nullable=False),
    Column("input_schema", JsonText),
    Column("input_request_message", Text),
    Column("result", Text),
    Column("result_hash", Text),
    Column("error", JsonText),
    Column("attention", JsonText),
    Column("recoveries", Integer, nullable=False),
    Column("request_id", Text),
    # The next step: what, when (epoch ms), how often claimed, and who holds it until when.
    Column("step", String(32)),
    Column("run_at", BigInteger),
    Column("attempt", Integer, nullable=False),
    Column("lease_owner", Text),
    Column("lease_expires_at", BigInteger),
    # The replica whose handler waits for this job's answer gets the first claim.
    Column("affinity", Text),
    # Bumped by every decided write: the compare-and-set token.
    Column("version", Integer, nullable=False),
    # Events written so far: the next event's sequence is this plus one.
    Column("event_count", Integer, nullable=False),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    CheckConstraint(one_of("status", JobStatus), name="ck_jobs_status"),
    # One job per idempotency key (NULLs do not collide) and per payment.
    Index("ix_jobs_request_id", "request_id", unique=True),
    Index("ix_jobs_blockchain_identifier", "blockchain_identifier", unique=True),
    # list(): newest first, with and without a status filter; count().
    Index("ix_jobs_created_at", "created_at", "job_id"),
    Index("ix_jobs_status_created_at", "status", "created_at", "job_id"),
    # The claim: due steps in run_at order.
    Index(
        "ix_jobs_due",
        "run_at",
        sqlite_where=text("step IS NOT NULL"),
        postgresql_where=text("step IS NOT NULL"),
    ),
    # Lease renewal and "steps held" per replica.
    Index(
        "ix_jobs_lease_owner",
        "lease_owner",
        sqlite_where=text("lease_owner IS NOT NULL"),
        postgresql_where=text("lease_owner IS NOT NULL"),
    ),
    # Payment intents found in the diff by their input hash.
    Index(
        "ix_jobs_intent_input_hash",
        "input_hash",
        sqlite_where=text("blockchain_identifier IS NULL"),
        postgresql_where=text("blockchain_identifier IS NULL"),
    ),
    # The operator's attention view.
    Index(
        "ix_jobs_attention",
        "updated_at",
        sqlite_where=text("attention IS NOT NULL"),
        postgresql_where=text("attention IS NOT NULL"),
    ),
)

job_events = Table(
    "job_events",
    metadata,
    Column(
        "job_id",
        String(36),
        ForeignKey("jobs.job_id", name="fk_job_events_job_id"),
        primary_key=True,
    ),
    Column("sequence", Integer, primary_key=True),
    Column("type", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("data", JsonText, nullable=False),
    Column("created_at", UtcTimestamp, nullable=False),
    CheckConstraint(one_of("status", JobStatus), name="ck_job_events_status"),
)

invoices = Table(
    "invoices",
    metadata,
    Column("blockchain_identifier", Text, primary_key=True),
    Column(
        "job_id",
        String(36),
        ForeignKey("jobs.job_id", name="fk_invoices_job_id"),
        nullable=False,
    ),
    Column("status", String(32), nullable=False),
    Column("on_chain_state", Text),
    # The payment's last error as seen ("" when none).
    Column("next_action", Text, nullable=False),
    Column("payment_source_type", String(32)),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("paid_at", UtcTimestamp),
    Column("updated_at", UtcTimestamp, nullable=False),
    CheckConstraint(one_of("status", InvoiceStatus), name="ck_invoices_status"),
    Index("ix_invoices_job_id", "job_id", unique=True),
    # list_invoices() and the earnings time range; with a status filter; open invoices.
    Index("ix_invoices_created_at", "created_at", "blockchain_identifier"),
    Index("ix_invoices_status_created_at", "status", "created_at", "blockchain_identifier"),
    # earnings(): the most recently changed invoices.
    Index("ix_invoices_updated_at", "updated_at", "blockchain_identifier"),
)

invoice_amounts = Table(
    "invoice_amounts",
    metadata,
    Column(
        "blockchain_identifier",
        Text,
        ForeignKey(
            "invoices.blockchain_identifier", name="fk_invoice_amounts_blockchain_identifier"
        ),
        primary_key=True,
    ),
    # The order the payment service listed the amounts in.
    Column("position", Integer, primary_key=True),
    Column("unit", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    CheckConstraint("amount >= 0", name="ck_invoice_amounts_amount"),
)

monitor_watermarks = Table(
    "monitor_watermarks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_update", UtcTimestamp, nullable=False),
    Column("cursor_id", Text),
)

# Named leases: the payment monitor's leadership ("payment-monitor").
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", Text, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

# Every serving process, by its heartbeat.
replicas = Table(
    "replicas",
    metadata,
    Column("replica_id", String(200), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("heartbeat_at", BigInteger, nullable=False),
)
