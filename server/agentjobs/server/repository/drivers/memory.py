"""memory://: SQLite in memory, on the event loop's thread. The same schema and the
same queries as the durable stores, so tests on it test them; nothing is written to
disk and nothing survives the process."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from agentjobs.server import telemetry
from agentjobs.server.repository.database_url import DatabaseTarget
from agentjobs.server.repository.drivers.base import Body
from agentjobs.server.repository.migrator import upgrade_connection

T = TypeVar("T")


class MemoryDatabase:
    dialect = "sqlite"

    def __init__(self, target: DatabaseTarget) -> None:
        self.target = target
        self._engine: Engine | None = None
        self._connection: Connection | None = None

    async def open(self) -> None:
        engine = create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: object) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA foreign_keys = ON")

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN")

        self._engine = engine
        self._connection = engine.connect()
        with self._connection.begin():
            upgrade_connection(self._connection, self.target)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._engine is not None:
            self._engine.dispose()
        self._connection = self._engine = None

    def _conn(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("the database is not open")
        return self._connection

    async def write(self, body: Body[T]) -> T:
        connection = self._conn()
        with telemetry.span("db.transaction", backend="memory"), connection.begin():
            return body(connection)

    async def read(self, body: Body[T], *, heavy: bool = False) -> T:
        connection = self._conn()
        with connection.begin():
            return body(connection)
