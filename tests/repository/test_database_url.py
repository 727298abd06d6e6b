"""Which backend a configured URL selects, and the clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentjobs.server.repository.database_url import Backend, parse_database_url
from agentjobs.server.repository.drivers.memory import MemoryDatabase
from agentjobs.server.repository.drivers.postgres import PostgresDatabase
from agentjobs.server.repository.drivers.sqlite import SqliteDatabase
from agentjobs.server.repository.factory import open_repository


def test_none_is_agentjobs_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target = parse_database_url(None)
    assert target.backend is Backend.SQLITE
    assert target.sql_url.drivername == "sqlite+aiosqlite"
    assert target.sql_url.database == str(tmp_path / "agentjobs.db")


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite:////abs/path.db", "/abs/path.db"),
        ("sqlite+aiosqlite:///x/y.db", "x/y.db"),
    ],
)
def test_sqlite_urls_use_aiosqlite(url: str, database: str) -> None:
    target = parse_database_url(url)
    assert target.backend is Backend.SQLITE
    assert target.sql_url.drivername == "sqlite+aiosqlite"
    assert target.sql_url.database == database


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:pw@db.example:5432/jobs",
        "postgres://u:pw@db.example:5432/jobs",
        "postgresql+asyncpg://u:pw@db.example:5432/jobs",
    ],
)
def test_postgres_urls_use_asyncpg(url: str) -> None:
    target = parse_database_url(url)
    assert target.backend is Backend.POSTGRESQL
    assert target.sql_url.drivername == "postgresql+asyncpg"
    assert (target.sql_url.host, target.sql_url.database) == ("db.example", "jobs")
    assert target.schema is None


def test_the_schema_option_is_taken_out_of_the_url() -> None:
    target = parse_database_url("postgresql://u:pw@h/jobs?schema=tenant_1&ssl=require")
    assert target.schema == "tenant_1"
    assert dict(target.sql_url.query) == {"ssl": "require"}
    assert "pw" not in target.describe()
    assert "tenant_1" in target.describe()


@pytest.mark.parametrize("schema", ["a;b", "1abc", "x y", 'q"'])
def test_a_schema_must_be_a_plain_identifier(schema: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        parse_database_url(f"postgresql://h/jobs?schema={schema}")


def test_each_url_gets_its_driver() -> None:
    assert parse_database_url("memory://").backend is Backend.MEMORY
    assert isinstance(open_repository("memory://").db, MemoryDatabase)
    assert isinstance(open_repository("sqlite:///x.db").db, SqliteDatabase)
    assert isinstance(open_repository("postgresql://h/jobs?schema=s").db, PostgresDatabase)
    assert open_repository("postgresql://h/jobs?schema=s").target.schema == "s"


@pytest.mark.parametrize(
    "url",
    ["mysql://u@h/db", "postgresql+psycopg://h/db", "http://example.com", "agentjobs.db", ""],
)
def test_other_urls_are_refused_naming_the_accepted_schemes(url: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite:///path.*postgresql://.*memory://"):
        open_repository(url)


def test_a_password_is_not_echoed_in_the_refusal() -> None:
    with pytest.raises(ValueError) as refused:
        parse_database_url("mysql://user:hunter2@h/db")
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="memory://"):
        parse_database_url(url)


def test_schema_is_refused_for_sqlite() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        parse_database_url("sqlite:///x.db?schema=a")
