"""Alembic environment. Migrations run only through agentjobs' migrator, which hands
over an open connection (already inside the transaction that holds the migration lock);
there is no alembic.ini and no offline (--sql) mode."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from agentjobs.server.repository.migrator import CONNECTION_ATTRIBUTE, VERSION_TABLE
from agentjobs.server.repository.tables import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "sqlite":
        # The SQLite driver migrates with foreign keys off (tables are rebuilt by
        # copying): the copies must still satisfy every key before the commit.
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"the migration broke foreign keys: {broken[:10]}")


def main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline (--sql) migrations are not supported: run them online")
    connection = context.config.attributes.get(CONNECTION_ATTRIBUTE)
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "run migrations with `agentjobs-server migrate` (or repository.factory.migrate)"
        )
    run_migrations(connection)


main()
