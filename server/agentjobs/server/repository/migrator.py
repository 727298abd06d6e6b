"""Runs the Alembic migrations (shipped inside the package) programmatically.

All of an upgrade runs in one transaction that first takes a lock, so that two
processes starting together against the same database cannot both apply a revision:
the second waits, then finds the schema at head and does nothing.
- PostgreSQL: a transaction-level advisory lock keyed on the schema (DDL is
  transactional there, so a failed upgrade leaves nothing half-made);
- SQLite: BEGIN IMMEDIATE (the engine's write mode) takes the database's write lock.

New revisions go in migrations/versions/ (see script.py.mako); the repository tests
check that the migrated schema matches tables.py.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from agentjobs.server.repository.database_url import Backend, DatabaseTarget

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Not Alembic's default name: another application's Alembic may share the schema.
VERSION_TABLE = "agentjobs_alembic_version"
CONNECTION_ATTRIBUTE = "connection"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration revisions found in {MIGRATIONS_DIR}")
    return head


def advisory_lock_key(schema: str | None) -> int:
    """A stable signed 64-bit key per schema (pg_advisory_xact_lock takes a bigint)."""
    digest = hashlib.blake2b(f"agentjobs-migrate:{schema or ''}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _upgrade(connection: Connection) -> None:
    before, head = _current_revision(connection), head_revision()
    if before == head:
        return
    log.info("migrating the database schema from %s to %s", before or "nothing", head)
    config = alembic_config()
    config.attributes[CONNECTION_ATTRIBUTE] = connection
    command.upgrade(config, "head")


def _current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade_connection(connection: Connection, target: DatabaseTarget) -> None:
    """Create or upgrade the schema to the newest revision, on a connection inside the
    transaction that will commit it (SQLite: begun IMMEDIATE, which holds the write lock
    for the whole upgrade). Idempotent."""
    if target.backend is Backend.POSTGRESQL:
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_lock_key(target.schema)}
        )
        if target.schema is not None:
            # Safe to interpolate: database_url admits plain identifiers only.
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"'))
    _upgrade(connection)


def current_revision(connection: Connection) -> str | None:
    return _current_revision(connection)
