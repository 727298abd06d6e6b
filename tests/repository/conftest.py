"""One contract, three stores: memory://, a real SQLite file, the real PostgreSQL.

Every test of this directory that takes `backend` (or `repo`) runs once per store, in
the style of River's driver test suite: one narrow interface (JobRepository), one suite.

PostgreSQL: 127.0.0.1:5432, database `test`, user `postgres` (override with
AGENTJOBS_TEST_POSTGRES_URL). Every test gets its own freshly created schema, dropped
afterwards, so parallel runs never see each other's rows. When the server cannot be
reached the PostgreSQL cases are skipped, except in CI (CI=true) where they fail.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from agentjobs.server.repository.base import JobRepository
from agentjobs.server.repository.database_url import DatabaseTarget, parse_database_url
from tests.support import IN_CI

POSTGRES_URL = os.environ.get(
    "AGENTJOBS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_postgres_problem: list[str] = []  # filled once per session by the first probe
_sqlite_template: list[Path] = []  # a migrated SQLite file, made once per session


@dataclass
class Backend:
    """A fresh, empty store of one kind; every repository opened on it is closed after
    the test."""

    name: str
    url: str
    schema: str | None = None
    opened: list[JobRepository] = field(default_factory=list)

    @property
    def durable(self) -> bool:
        return self.name != "memory"

    @property
    def target(self) -> DatabaseTarget:
        return parse_database_url(self.url)

    async def open(self, *, watch: bool = False) -> JobRepository:
        """A new repository object on this store, as another process would open it
        (memory: a new, empty store). `watch`: start the cross-process change feed."""
        repository = JobRepository(self.url)
        await repository.open(watch_other_processes=watch)
        self.opened.append(repository)
        return repository

    async def replicas(self, count: int) -> list[JobRepository]:
        """`count` repositories on this one store: separate objects (pools, writer
        threads) on the durable stores; on memory:// (one process by definition) the
        same object `count` times."""
        if not self.durable:
            one = await self.open()
            return [one] * count
        return [await self.open() for _ in range(count)]

    async def close_all(self) -> None:
        while self.opened:
            await self.opened.pop().close()


async def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None. Probed once per session."""
    if not _postgres_problem:
        try:
            connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            _postgres_problem.append(f"{type(exc).__name__}: {exc}")
        else:
            await connection.close()
            _postgres_problem.append("")
    return _postgres_problem[0] or None


async def require_postgres() -> None:
    problem = await postgres_problem()
    if problem is None:
        return
    message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({problem})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(f"{message}; set CI=true to make this a failure")


BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
DURABLE_BACKENDS = BACKENDS[1:]


async def drop_schema(schema: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


async def sqlite_template() -> Path:
    """A SQLite file the real migrations brought to head, made once per session: each
    test's store is a copy of it (copying is 100 times faster than migrating)."""
    if not _sqlite_template:
        directory = Path(tempfile.mkdtemp(prefix="agentjobs-template-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        path = directory / "template.db"
        repository = JobRepository(f"sqlite:///{path}")
        await repository.open(watch_other_processes=False)
        await repository.close()  # checkpoints the WAL into the file
        _sqlite_template.append(path)
    return _sqlite_template[0]


@asynccontextmanager
async def fresh_backend(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    if name == "memory":
        backend = Backend(name, "memory://")
    elif name == "sqlite":
        path = tmp_path / "agentjobs.db"
        shutil.copyfile(await sqlite_template(), path)
        backend = Backend(name, f"sqlite+aiosqlite:///{path}")
    else:
        await require_postgres()
        schema = f"agentjobs_test_{uuid.uuid4().hex[:16]}"
        backend = Backend(name, f"{POSTGRES_URL}?schema={schema}", schema)
    try:
        yield backend
    finally:
        await backend.close_all()
        if backend.schema is not None:
            await drop_schema(backend.schema)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with fresh_backend(request.param, tmp_path) as fresh:
        yield fresh


@pytest.fixture(params=DURABLE_BACKENDS)
async def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with fresh_backend(request.param, tmp_path) as fresh:
        yield fresh


@pytest.fixture
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    async with fresh_backend("sqlite", tmp_path) as fresh:
        yield fresh


@pytest.fixture
async def repo(backend: Backend) -> JobRepository:
    return await backend.open()


# -- raw SQL through the store's own driver (the narrow interface: read / write) ------
async def sql_rows(repo: JobRepository, statement: str, **params: Any) -> list[Any]:
    """Rows of a raw SELECT, read in one read transaction of the store."""

    def body(connection: Connection) -> list[Any]:
        return list(connection.execute(text(statement), params).all())

    return await repo.db.read(body)


async def sql_value(repo: JobRepository, statement: str, **params: Any) -> Any:
    rows = await sql_rows(repo, statement, **params)
    assert len(rows) == 1, f"{statement!r} gave {len(rows)} rows"
    return rows[0][0]


async def sql_write(repo: JobRepository, statement: str, **params: Any) -> int:
    """Run a raw write statement in one write transaction; returns its rowcount."""

    def body(connection: Connection) -> int:
        return int(connection.execute(text(statement), params).rowcount or 0)

    return await repo.db.write(body)
