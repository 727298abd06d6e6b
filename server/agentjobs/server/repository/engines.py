"""Async SQLAlchemy engines configured for each backend.

SQLite (aiosqlite): WAL (readers never block the writer), foreign keys on, a busy
timeout for other processes' write locks, synchronous=FULL (a committed payment or
job survives a power cut, not only a crash). Python's sqlite3 transaction handling is
replaced by our own BEGIN: it would otherwise not begin a transaction before a SELECT
or DDL, which breaks read-validate-write and transactional migrations. Writes begin
IMMEDIATE: taking the write lock up front avoids the deadlock-prone upgrade of a read
transaction to a write one (SQLITE_BUSY that no busy timeout resolves). Reads of
several statements begin DEFERRED (one snapshot); single-statement reads need no BEGIN.

Point reads on SQLite (a job by id: the status read path) go through a second, synchronous
engine on the same file and run on the event loop's thread: the aiosqlite adapter makes
five trips to its connection thread per SELECT (cursor, execute, fetchall, close,
rollback), which cost far more than SQLite's own work (tens of microseconds for a row by
primary key), and a worker thread running SQLAlchemy's Python code fights the event loop
for the GIL (the HTTP p99 went to ~100 ms that way). Same statements, same row types, same
file (WAL: the read sees every committed write and never waits for the writer). The
connections are read-only and wait for no lock (busy_timeout 0): should SQLite ever
answer "busy" (another process recovering the WAL), the caller falls back to the async
engine, which waits off the loop. See docs/PERFORMANCE.md.

PostgreSQL (asyncpg): a connection pool with pre-ping; with a schema, every
connection's search_path is that schema only.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agentjobs.server.repository.database_url import Backend, DatabaseTarget

log = logging.getLogger(__name__)

# How long a write waits for another process's write lock before it gives up with
# "database is locked" (answered UNAVAILABLE, which clients retry): well inside a
# client's default 10 s deadline (room for a retry), far beyond any write of ours.
SQLITE_BUSY_TIMEOUT_MS = 3_000
# Execution options of ours, read when SQLite begins a transaction: a write takes the
# write lock up front; a snapshot gives several SELECTs one consistent view.
_WRITE_OPTION = "agentjobs_write"
_SNAPSHOT_OPTION = "agentjobs_snapshot"


def create_engine_for(target: DatabaseTarget) -> AsyncEngine:
    if target.backend is Backend.SQLITE:
        return _sqlite_engine(target)
    if target.backend is Backend.POSTGRESQL:
        return _postgres_engine(target)
    raise ValueError(f"no SQL engine for the {target.backend} backend")


def write_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool; its transactions begin IMMEDIATE on SQLite."""
    return engine.execution_options(**{_WRITE_OPTION: True})


def snapshot_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, for reads of several statements that must agree.
    The plain engine serves single-statement reads (on SQLite without a BEGIN)."""
    return engine.execution_options(**{_SNAPSHOT_OPTION: True})


def _sqlite_engine(target: DatabaseTarget) -> AsyncEngine:
    engine = create_async_engine(target.sql_url)
    event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
    event.listen(engine.sync_engine, "begin", _begin_sqlite_transaction)
    return engine


def sqlite_point_reader(target: DatabaseTarget) -> Engine:
    """A synchronous, read-only engine on the SQLite file for single-row reads made on the
    event loop's thread; its connections never wait for a lock (see the module doc)."""
    engine = create_engine(target.sql_url.set(drivername="sqlite"))
    event.listen(engine, "connect", _configure_point_reader_connection)
    return engine


def _configure_point_reader_connection(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.isolation_level = None  # no implicit BEGIN: each SELECT stands alone
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout = 0")
        cursor.execute("PRAGMA query_only = ON")
    finally:
        cursor.close()


def _configure_sqlite_connection(dbapi_connection: Any, _record: object) -> None:
    # None hands transaction control to us (see _begin_sqlite_transaction).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # journal_mode is not set here: it belongs to the file (see prepare_sqlite_file).
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = FULL")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    options = connection.get_execution_options()
    if options.get(_WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif options.get(_SNAPSHOT_OPTION):
        connection.exec_driver_sql("BEGIN DEFERRED")
    # Otherwise a single-statement read: SQLite runs it in its own implicit read
    # transaction, and skipping BEGIN saves a third of a get's trips to aiosqlite's thread.


async def prepare_sqlite_file(target: DatabaseTarget) -> None:
    """Create the SQLite file (and its directory) if needed and put it in WAL mode, which
    then sticks to the file.

    Done once per open, before the pool connects: switching needs an exclusive lock, and
    SQLite answers "database is locked" at once, without waiting out the busy timeout,
    when several fresh processes try together. So this retries until the timeout."""
    if target.backend is not Backend.SQLITE or target.sql_url.database is None:
        return
    path = target.sql_url.database
    directory = Path(path).parent
    if not directory.is_dir():
        log.info("creating %s for the SQLite database", directory)
        directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            mode = await asyncio.to_thread(_switch_to_wal, path)
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)
    if mode.lower() != "wal":
        log.warning(
            "SQLite kept journal_mode=%s for %s (no WAL on this filesystem?): "
            "readers and the writer will block each other",
            mode,
            path,
        )


def _switch_to_wal(path: str) -> str:
    connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() != "wal":
            (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
        return str(mode)
    finally:
        connection.close()


def _postgres_engine(target: DatabaseTarget) -> AsyncEngine:
    connect_args: dict[str, Any] = {}
    if target.schema is not None:
        # Quoted: the name is used exactly as given (database_url admits identifiers only).
        connect_args["server_settings"] = {"search_path": f'"{target.schema}"'}
    return create_async_engine(
        target.sql_url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args=connect_args,
    )
