"""Initial schema: jobs, their events, invoices, invoice amounts, monitor watermarks.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Values are frozen here on purpose (statuses, widths): a later change to the domain
enums needs a new revision, not an edit of this one.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JOB_STATUSES = "'awaiting_payment', 'awaiting_input', 'running', 'completed', 'failed'"
INVOICE_STATUSES = "'pending', 'paid', 'expired', 'withdrawn', 'refunded', 'invalid'"


def timestamp() -> sa.types.TypeEngine[datetime.datetime]:
    # SQLite: fixed-width ISO-8601 UTC text ("2000-01-01T00:00:00.000000Z"), which sorts
    # as time does; PostgreSQL: timestamptz.
    return sa.DateTime(timezone=True).with_variant(sa.String(27), "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(36), primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_id", sa.String(36), nullable=False),
        sa.Column("identifier_from_purchaser", sa.Text, nullable=False),
        sa.Column("input_data", sa.Text, nullable=False),
        sa.Column("input_hash", sa.Text, nullable=False),
        sa.Column("blockchain_identifier", sa.Text, nullable=False),
        sa.Column("seller_vkey", sa.Text, nullable=False),
        sa.Column("agent_identifier", sa.Text, nullable=False),
        sa.Column("pay_by_time", sa.BigInteger, nullable=False),
        sa.Column("submit_result_time", sa.BigInteger, nullable=False),
        sa.Column("unlock_time", sa.BigInteger, nullable=False),
        sa.Column("external_dispute_unlock_time", sa.BigInteger, nullable=False),
        sa.Column("input_schema", sa.Text),
        sa.Column("input_request_message", sa.Text),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("request_id", sa.Text),
        sa.Column("created_at", timestamp(), nullable=False),
        sa.Column("updated_at", timestamp(), nullable=False),
        sa.CheckConstraint(f"status IN ({JOB_STATUSES})", name="ck_jobs_status"),
    )
    op.create_index("ix_jobs_request_id", "jobs", ["request_id"], unique=True)
    op.create_index("ix_jobs_blockchain_identifier", "jobs", ["blockchain_identifier"], unique=True)
    op.create_index("ix_jobs_created_at", "jobs", ["created_at", "job_id"])
    op.create_index("ix_jobs_status_created_at", "jobs", ["status", "created_at", "job_id"])
    op.create_index("ix_jobs_status_pay_by_time", "jobs", ["status", "pay_by_time"])

    op.create_table(
        "job_events",
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("jobs.job_id", name="fk_job_events_job_id"),
            primary_key=True,
        ),
        sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("created_at", timestamp(), nullable=False),
        sa.CheckConstraint(f"status IN ({JOB_STATUSES})", name="ck_job_events_status"),
    )

    op.create_table(
        "invoices",
        sa.Column("blockchain_identifier", sa.Text, primary_key=True),
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("jobs.job_id", name="fk_invoices_job_id"),
            nullable=False,
        ),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("on_chain_state", sa.Text),
        sa.Column("created_at", timestamp(), nullable=False),
        sa.Column("paid_at", timestamp()),
        sa.Column("updated_at", timestamp(), nullable=False),
        sa.CheckConstraint(f"status IN ({INVOICE_STATUSES})", name="ck_invoices_status"),
    )
    op.create_index("ix_invoices_job_id", "invoices", ["job_id"], unique=True)
    op.create_index("ix_invoices_created_at", "invoices", ["created_at", "blockchain_identifier"])
    op.create_index(
        "ix_invoices_status_created_at",
        "invoices",
        ["status", "created_at", "blockchain_identifier"],
    )
    op.create_index("ix_invoices_updated_at", "invoices", ["updated_at", "blockchain_identifier"])

    op.create_table(
        "invoice_amounts",
        sa.Column(
            "blockchain_identifier",
            sa.Text,
            sa.ForeignKey(
                "invoices.blockchain_identifier", name="fk_invoice_amounts_blockchain_identifier"
            ),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("unit", sa.Text, nullable=False),
        # Smallest unit, exact: lovelace totals pass 2^31 quickly; never a float.
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount >= 0", name="ck_invoice_amounts_amount"),
    )

    op.create_table(
        "monitor_watermarks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("last_update", timestamp(), nullable=False),
        sa.Column("cursor_id", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("monitor_watermarks")
    op.drop_table("invoice_amounts")
    op.drop_table("invoices")
    op.drop_table("job_events")
    op.drop_table("jobs")
