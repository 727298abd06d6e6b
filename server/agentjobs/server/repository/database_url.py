"""Which store a database URL names, normalised to the async drivers we ship.

Accepted:
- None: the SQLite file `agentjobs.db` in the current working directory;
- `sqlite:///path` or `sqlite+aiosqlite:///path` (relative to the working directory;
  `sqlite:////abs/path` for an absolute path);
- `postgresql://...`, `postgres://...` or `postgresql+asyncpg://...`, optionally with
  `?schema=name`: the PostgreSQL schema holding our tables (created by the migrations if
  missing; default: the server's search_path, usually `public`). It is removed from the
  URL and applied as the connections' search_path;
- `memory://`: the in-process store (nothing is kept after the process ends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_SQLITE_FILE = "agentjobs.db"
MEMORY_URL = "memory://"
SCHEMA_OPTION = "schema"

ACCEPTED_SCHEMES = (
    "sqlite:///path, sqlite+aiosqlite:///path, postgresql://..., postgres://..., "
    "postgresql+asyncpg://... (optionally ?schema=name) or memory://"
)

_SQLITE_DRIVERS = frozenset({"sqlite", "sqlite+aiosqlite"})
_POSTGRES_DRIVERS = frozenset({"postgresql", "postgres", "postgresql+asyncpg"})
# Unquoted PostgreSQL identifiers only: the name is interpolated into DDL and search_path.
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class Backend(StrEnum):
    MEMORY = "memory"
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True)
class DatabaseTarget:
    backend: Backend
    # The SQLAlchemy URL for the async driver; None for the memory backend.
    url: URL | None = None
    # PostgreSQL only: the schema holding our tables, None for the server default.
    schema: str | None = None

    @property
    def sql_url(self) -> URL:
        if self.url is None:
            raise ValueError("the memory backend has no SQL URL")
        return self.url

    def describe(self) -> str:
        """For logs and errors: never shows the password."""
        if self.url is None:
            return MEMORY_URL
        described = self.url.render_as_string(hide_password=True)
        return f"{described} (schema {self.schema})" if self.schema else described


def _unsupported(scheme: str) -> ValueError:
    return ValueError(f"unsupported database URL scheme {scheme!r}: use {ACCEPTED_SCHEMES}")


def parse_database_url(database_url: str | None) -> DatabaseTarget:
    """Normalise a configured URL; ValueError naming the accepted schemes otherwise."""
    if database_url is None:
        path = Path.cwd() / DEFAULT_SQLITE_FILE
        return DatabaseTarget(Backend.SQLITE, URL.create("sqlite+aiosqlite", database=str(path)))
    if database_url.strip() == MEMORY_URL:
        return DatabaseTarget(Backend.MEMORY)
    if "://" not in database_url:
        raise ValueError(f"not a database URL (no scheme://): use {ACCEPTED_SCHEMES}")
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise _unsupported(database_url.split("://", 1)[0]) from exc
    if url.drivername in _SQLITE_DRIVERS:
        return _sqlite_target(url)
    if url.drivername in _POSTGRES_DRIVERS:
        return _postgres_target(url)
    raise _unsupported(url.drivername)


def _sqlite_target(url: URL) -> DatabaseTarget:
    if not url.database or url.database == ":memory:" or url.database.startswith("file::memory"):
        raise ValueError(
            "an in-memory SQLite database would be lost between connections: "
            f"give a file path (sqlite:///agentjobs.db) or use {MEMORY_URL}"
        )
    if SCHEMA_OPTION in url.query:
        raise ValueError(f"?{SCHEMA_OPTION}= applies to PostgreSQL URLs only")
    return DatabaseTarget(Backend.SQLITE, url.set(drivername="sqlite+aiosqlite"))


def _postgres_target(url: URL) -> DatabaseTarget:
    schema = url.query.get(SCHEMA_OPTION)
    if isinstance(schema, tuple):
        raise ValueError(f"?{SCHEMA_OPTION}= may be given once")
    if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"?{SCHEMA_OPTION}= must be a plain identifier (letters, digits, _), got {schema!r}"
        )
    url = url.difference_update_query([SCHEMA_OPTION]).set(drivername="postgresql+asyncpg")
    return DatabaseTarget(Backend.POSTGRESQL, url, schema)
