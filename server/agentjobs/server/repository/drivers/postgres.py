"""PostgreSQL: asyncpg through SQLAlchemy; every transaction on a pooled connection.

The queries are synchronous SQLAlchemy Core functions; `run_sync` runs them on the
asyncpg connection (SQLAlchemy's greenlet bridge), so they are written once for all
stores. PostgreSQL groups concurrent commits itself.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agentjobs.server import telemetry
from agentjobs.server.repository.database_url import DatabaseTarget
from agentjobs.server.repository.drivers.base import Body
from agentjobs.server.repository.drivers.storage_errors import storage_error
from agentjobs.server.repository.migrator import upgrade_connection

T = TypeVar("T")

# A statement that waits longer than this for a lock (or a dead peer) gives up: the
# caller gets UNAVAILABLE and retries rather than hanging.
STATEMENT_TIMEOUT_MS = 15_000


def postgres_engine(target: DatabaseTarget, *, pool_size: int = 10) -> AsyncEngine:
    settings = {"statement_timeout": str(STATEMENT_TIMEOUT_MS)}
    if target.schema is not None:
        # Quoted: the name is used exactly as given (database_url admits identifiers only).
        settings["search_path"] = f'"{target.schema}"'
    return create_async_engine(
        target.sql_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": settings, "timeout": 10},
    )


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, target: DatabaseTarget) -> None:
        self.target = target
        self._engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the database is not open")
        return self._engine

    async def open(self) -> None:
        engine = postgres_engine(self.target)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(upgrade_connection, self.target)
        except BaseException as exc:
            await engine.dispose()
            mapped = storage_error(exc, "connect")
            if mapped is not None:
                raise mapped from exc
            raise
        self._engine = engine

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def write(self, body: Body[T]) -> T:
        try:
            with telemetry.span("db.transaction", backend="postgresql"):
                async with self.engine.begin() as connection:
                    return await connection.run_sync(body)
        except (DBAPIError, OSError) as exc:
            mapped = storage_error(exc, "write")
            if mapped is not None:
                raise mapped from exc
            raise

    async def read(self, body: Body[T], *, heavy: bool = False) -> T:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(
                    text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                )
                result: T = await connection.run_sync(body)
                await connection.rollback()
                return result
        except (DBAPIError, OSError) as exc:
            mapped = storage_error(exc, "read")
            if mapped is not None:
                raise mapped from exc
            raise
