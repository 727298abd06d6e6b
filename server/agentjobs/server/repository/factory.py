"""Choose the store from AGENTJOBS_DATABASE_URL.

URLs (see database_url for details):
- None: the SQLite file `agentjobs.db` in the current working directory;
- `sqlite:///path` or `sqlite+aiosqlite:///path`: a SQLite file;
- `postgresql://...`, `postgres://...`, `postgresql+asyncpg://...` (asyncpg). Add
  `?schema=name` to keep the tables in that PostgreSQL schema (created if missing,
  applied as each connection's search_path) instead of the server's default;
- `memory://`: SQLite in memory, nothing survives the process.
Anything else raises ValueError naming these schemes.

`open()` migrates to head itself (a new SQLite file is created and migrated on first
start; concurrent upgrades are serialised), so `migrate()` (`agentjobs-server migrate`)
is for operators who upgrade ahead of a deploy.
"""

from __future__ import annotations

from agentjobs.server.repository.database_url import parse_database_url
from agentjobs.server.repository.store import JobRepository


def open_repository(database_url: str | None) -> JobRepository:
    """The repository for `database_url`, not yet opened: call `await repo.open()`."""
    return JobRepository(parse_database_url(database_url))


async def migrate(database_url: str | None) -> None:
    """Create or upgrade the schema to the newest revision. Idempotent."""
    repository = open_repository(database_url)
    await repository.open(watch_other_processes=False)
    await repository.close()
