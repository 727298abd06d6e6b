"""One contract, three backends: memory, a real SQLite file, the real PostgreSQL.

PostgreSQL: 127.0.0.1:5432, database `test`, user `postgres` (override with
AGENTJOBS_TEST_POSTGRES_URL). Every test gets its own freshly created schema, dropped
afterwards, so parallel runs never see each other's rows. When the server cannot be
reached the PostgreSQL cases are skipped, except in CI (CI=true) where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from agentjobs.server.repository.base import JobRepository
from agentjobs.server.repository.factory import open_repository
from agentjobs.server.repository.timestamps import Clock, utcnow
from tests.support import IN_CI

POSTGRES_URL = os.environ.get(
    "AGENTJOBS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_postgres_problem: list[str] = []  # filled once per session by the first probe


@dataclass
class Backend:
    """A fresh, empty store of one kind; every repository opened on it is closed after
    the test."""

    name: str
    url: str
    opened: list[JobRepository] = field(default_factory=list)

    @property
    def durable(self) -> bool:
        return self.name != "memory"

    async def open(self, clock: Clock = utcnow) -> JobRepository:
        """A new repository object on this store (memory: a new, empty store)."""
        repository = open_repository(self.url, clock=clock)
        await repository.open()
        self.opened.append(repository)
        return repository

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


async def _drop_schema(schema: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@asynccontextmanager
async def fresh_backend(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    schema: str | None = None
    if name == "memory":
        backend = Backend(name, "memory://")
    elif name == "sqlite":
        backend = Backend(name, f"sqlite+aiosqlite:///{tmp_path / 'agentjobs.db'}")
    else:
        await require_postgres()
        schema = f"agentjobs_test_{uuid.uuid4().hex[:16]}"
        backend = Backend(name, f"{POSTGRES_URL}?schema={schema}")
    try:
        yield backend
    finally:
        await backend.close_all()
        if schema is not None:
            await _drop_schema(schema)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with fresh_backend(request.param, tmp_path) as fresh:
        yield fresh


@pytest.fixture(params=DURABLE_BACKENDS)
async def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with fresh_backend(request.param, tmp_path) as fresh:
        yield fresh


@pytest.fixture
async def repo(backend: Backend) -> JobRepository:
    return await backend.open()
