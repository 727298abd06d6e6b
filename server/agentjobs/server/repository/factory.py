"""Choose the repository backend from AGENTJOBS_DATABASE_URL.

URLs (see database_url for details):
- None: the SQLite file `agentjobs.db` in the current working directory;
- `sqlite:///path` or `sqlite+aiosqlite:///path`: a SQLite file (aiosqlite);
- `postgresql://...`, `postgres://...`, `postgresql+asyncpg://...` (asyncpg). Add
  `?schema=name` to keep the tables in that PostgreSQL schema (created if missing,
  applied as each connection's search_path) instead of the server's default;
- `memory://`: in-process only, nothing survives the process.
Anything else raises ValueError naming these schemes.

`open()` of a SQL repository migrates to head itself (a new SQLite file is created and
migrated on first start; PostgreSQL upgrades are serialised by an advisory lock), so
`migrate()` (`agentjobs-server migrate`) is for operators who upgrade ahead of a
deploy or run the server with a role that may not change the schema.
"""

from __future__ import annotations

from agentjobs.server.repository.base import JobRepository
from agentjobs.server.repository.database_url import Backend, parse_database_url
from agentjobs.server.repository.engines import create_engine_for
from agentjobs.server.repository.memory import InMemoryJobRepository
from agentjobs.server.repository.migrator import upgrade_to_head
from agentjobs.server.repository.sql import SqlJobRepository
from agentjobs.server.repository.timestamps import Clock, utcnow


def open_repository(database_url: str | None, *, clock: Clock = utcnow) -> JobRepository:
    """The repository for `database_url`, not yet opened: call `await repo.open()`."""
    target = parse_database_url(database_url)
    if target.backend is Backend.MEMORY:
        return InMemoryJobRepository(clock=clock)
    return SqlJobRepository(target, clock=clock)


async def migrate(database_url: str | None) -> None:
    """Create or upgrade the schema to the newest revision. Idempotent."""
    target = parse_database_url(database_url)
    if target.backend is Backend.MEMORY:
        return
    engine = create_engine_for(target)
    try:
        await upgrade_to_head(engine, target)
    finally:
        await engine.dispose()
