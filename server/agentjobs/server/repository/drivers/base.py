"""The Database protocol and its factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from sqlalchemy.engine import Connection

from agentjobs.server.repository.database_url import Backend, DatabaseTarget

T = TypeVar("T")
# A function of one open transaction; what it returns is the call's answer.
Body = Callable[[Connection], T]


class Database(Protocol):
    target: DatabaseTarget

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql": the SQL the queries may use."""
        ...

    async def open(self) -> None:
        """Connect and migrate the schema to head."""

    async def close(self) -> None: ...

    async def write(self, body: Body[T]) -> T:
        """Run `body` in one write transaction; returns once the commit is durable.
        An exception from `body` rolls back only its own work."""
        ...

    async def read(self, body: Body[T], *, heavy: bool = False) -> T:
        """Run `body` in one read transaction (one consistent snapshot). `heavy`: the
        read may take long (lists, reports), keep it off the event loop's thread."""
        ...


def open_database(target: DatabaseTarget) -> Database:
    """The driver for `target`, not yet opened."""
    if target.backend is Backend.SQLITE:
        from agentjobs.server.repository.drivers.sqlite import SqliteDatabase

        return SqliteDatabase(target)
    if target.backend is Backend.POSTGRESQL:
        from agentjobs.server.repository.drivers.postgres import PostgresDatabase

        return PostgresDatabase(target)
    from agentjobs.server.repository.drivers.memory import MemoryDatabase

    return MemoryDatabase(target)
