"""Durable steps: each job's next step, its lease and its payment intent live in the
jobs row; leases and replicas tables; invoices record the payment's last error and its
source type; more invoice statuses.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Existing jobs get the step their status implies, so a database written by the
one-process version resumes exactly where it was: unpaid jobs expire at payByTime
(+ the grace the server adds when it claims the step), running jobs run or submit,
jobs awaiting input wait until their deadline, completed jobs with money in escrow are
followed until it settles.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INVOICE_STATUSES = (
    "'pending', 'paid', 'expired', 'withdrawn', 'refunded', 'invalid', "
    "'submitted', 'confirmed', 'disputed', 'dispute_resolved'"
)
# What the server used as the agent's margin before submitResultTime in 0001's days,
# and the default margin now (5 min chain cutoff + 5 min pickup + 1 min).
DEADLINE_MARGIN_MS = 11 * 60 * 1000


def upgrade() -> None:
    with op.batch_alter_table("jobs", recreate="auto") as jobs:
        jobs.alter_column("blockchain_identifier", existing_type=sa.Text, nullable=True)
        jobs.add_column(sa.Column("pricing", sa.String(16), nullable=False, server_default="fixed"))
        jobs.add_column(sa.Column("payment_source_type", sa.String(32)))
        jobs.add_column(sa.Column("payment_source_index", sa.Integer))
        jobs.add_column(sa.Column("deadline", sa.BigInteger, nullable=False, server_default="0"))
        jobs.add_column(sa.Column("result_hash", sa.Text))
        jobs.add_column(sa.Column("attention", sa.Text))
        jobs.add_column(sa.Column("recoveries", sa.Integer, nullable=False, server_default="0"))
        jobs.add_column(sa.Column("step", sa.String(32)))
        jobs.add_column(sa.Column("run_at", sa.BigInteger))
        jobs.add_column(sa.Column("attempt", sa.Integer, nullable=False, server_default="0"))
        jobs.add_column(sa.Column("lease_owner", sa.Text))
        jobs.add_column(sa.Column("lease_expires_at", sa.BigInteger))
        jobs.add_column(sa.Column("affinity", sa.Text))
        jobs.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="0"))
        jobs.add_column(sa.Column("event_count", sa.Integer, nullable=False, server_default="0"))
        jobs.drop_index("ix_jobs_status_pay_by_time")
    with op.batch_alter_table("invoices", recreate="auto") as invoices:
        invoices.add_column(sa.Column("next_action", sa.Text, nullable=False, server_default=""))
        invoices.add_column(sa.Column("payment_source_type", sa.String(32)))
        invoices.drop_constraint("ck_invoices_status", type_="check")
        invoices.create_check_constraint("ck_invoices_status", f"status IN ({INVOICE_STATUSES})")
    op.create_index(
        "ix_jobs_due",
        "jobs",
        ["run_at"],
        sqlite_where=sa.text("step IS NOT NULL"),
        postgresql_where=sa.text("step IS NOT NULL"),
    )
    op.create_index(
        "ix_jobs_lease_owner",
        "jobs",
        ["lease_owner"],
        sqlite_where=sa.text("lease_owner IS NOT NULL"),
        postgresql_where=sa.text("lease_owner IS NOT NULL"),
    )
    op.create_index(
        "ix_jobs_intent_input_hash",
        "jobs",
        ["input_hash"],
        sqlite_where=sa.text("blockchain_identifier IS NULL"),
        postgresql_where=sa.text("blockchain_identifier IS NULL"),
    )
    op.create_index(
        "ix_jobs_attention",
        "jobs",
        ["updated_at"],
        sqlite_where=sa.text("attention IS NOT NULL"),
        postgresql_where=sa.text("attention IS NOT NULL"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "replicas",
        sa.Column("replica_id", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger, nullable=False),
    )
    _backfill()


def _backfill() -> None:
    op.execute(
        "UPDATE jobs SET event_count = COALESCE("
        "(SELECT MAX(sequence) FROM job_events WHERE job_events.job_id = jobs.job_id), 0)"
    )
    op.execute(f"UPDATE jobs SET deadline = submit_result_time - {DEADLINE_MARGIN_MS}")
    # Steps for jobs in flight; the result column tells a run from a submission.
    op.execute(
        "UPDATE jobs SET step = 'expire', run_at = pay_by_time WHERE status = 'awaiting_payment'"
    )
    op.execute(
        "UPDATE jobs SET step = 'run', run_at = 0 WHERE status = 'running' AND result IS NULL"
    )
    op.execute(
        "UPDATE jobs SET step = 'submit', run_at = 0 "
        "WHERE status = 'running' AND result IS NOT NULL"
    )
    op.execute(
        "UPDATE jobs SET step = 'input_deadline', run_at = deadline WHERE status = 'awaiting_input'"
    )
    op.execute(
        "UPDATE jobs SET step = 'follow', run_at = 0 WHERE status IN ('completed', 'failed') "
        "AND job_id IN (SELECT job_id FROM invoices WHERE status = 'paid')"
    )
    # A completed job's paid invoice was "submitted, awaiting the chain" in 0001's terms.
    op.execute(
        "UPDATE invoices SET status = 'submitted' WHERE status = 'paid' "
        "AND job_id IN (SELECT job_id FROM jobs WHERE status = 'completed') "
        "AND (on_chain_state IS NULL OR on_chain_state = 'FundsLocked')"
    )
    op.execute(
        "UPDATE invoices SET status = 'confirmed' WHERE status = 'paid' "
        "AND on_chain_state = 'ResultSubmitted'"
    )
    op.execute(
        "UPDATE invoices SET status = 'disputed' WHERE status = 'paid' "
        "AND on_chain_state = 'Disputed'"
    )
    # result_hash stays NULL for 0001 jobs: the submit step computes it from the result.


def downgrade() -> None:
    raise NotImplementedError("0002 is not reversible: restore a backup instead")
