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
