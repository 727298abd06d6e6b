"""SQLite: group commit on one writer thread, reads on the event loop's thread.

Writes. One thread owns the write connection. Callers hand it a function and await a
future; the thread takes every function queued so far, runs them in one transaction
(each inside its own SAVEPOINT, so one caller's failure rolls back only its own work),
commits once (one fsync with synchronous=FULL) and only then resolves the futures: a
write acknowledged to a caller is on disk, and N concurrent callers share one fsync.
Nothing hops to a thread per statement; the event loop only waits on one future.

Reads. A single-row read costs SQLite tens of microseconds, far less than a hop to
another thread, so reads run on the event loop's thread on a connection of their own
(WAL: readers see every committed write and never wait for the writer). Such a
connection waits for no lock (busy_timeout 0): should SQLite ever answer "busy" (another
process recovering the WAL), the read is retried on a worker thread that may wait.
Reads that may take long (lists, reports) run on worker threads from the start.

Several processes may share the file: each has its own writer; SQLite's write lock
(BEGIN IMMEDIATE, waiting up to the busy timeout) orders them.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from agentjobs.server import telemetry
from agentjobs.server.domain import StorageUnavailableError
from agentjobs.server.repository.database_url import DatabaseTarget
from agentjobs.server.repository.drivers.base import Body
from agentjobs.server.repository.drivers.storage_errors import storage_error
from agentjobs.server.repository.migrator import upgrade_connection

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a write waits for another process's write lock before it answers UNAVAILABLE:
# well inside a caller's deadline, so the client retries instead of timing out.
WRITE_BUSY_TIMEOUT_MS = 3_000
# How long a starting server waits for another process's lock on the file before it
# says so and exits: long enough for sibling processes starting together.
START_LOCK_WAIT_S = 10
# Transactions committed together at most (bounds one batch's latency).
MAX_BATCH = 256
_STOP = object()


@dataclass
class _Write:
    body: Body[Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return  # the caller gave up (cancelled); its work is committed or rolled back
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _configure(dbapi_connection: Any, busy_timeout_ms: int, *, read_only: bool) -> None:
    # None hands transaction control to us: BEGIN is issued on SQLAlchemy's "begin".
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = FULL")
        if read_only:
            cursor.execute("PRAGMA query_only = ON")
    finally:
        cursor.close()


def sqlite_engine(target: DatabaseTarget, *, write: bool, busy_timeout_ms: int) -> Engine:
    """A synchronous engine on the file. Writers begin IMMEDIATE (take the write lock
    up front: upgrading a read transaction to a write one can deadlock), readers
    DEFERRED (one snapshot for all the statements of a read)."""
    engine = create_engine(
        target.sql_url.set(drivername="sqlite"),
        connect_args={"check_same_thread": False},
    )
    begin = "BEGIN IMMEDIATE" if write else "BEGIN DEFERRED"

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: object) -> None:
        _configure(dbapi_connection, busy_timeout_ms, read_only=not write)

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)

    return engine


def prepare_file(path: str) -> None:
    """Create the file's directory if needed and put the file in WAL mode (it sticks to
    the file). Switching needs an exclusive lock, which SQLite refuses at once (without
    the busy timeout) when several fresh processes try together: so retry."""
    directory = Path(path).parent
    if not directory.is_dir():
        log.info("creating %s for the SQLite database", directory)
        directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + START_LOCK_WAIT_S
    pause = 0.005
    while True:
        try:
            connection = sqlite3.connect(path, timeout=START_LOCK_WAIT_S)
            try:
                (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
                if str(mode).lower() != "wal":
                    (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
            finally:
                connection.close()
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)  # a start-up retry on a helper thread, not a wait in a test
        pause = min(pause * 2, 0.2)
    if str(mode).lower() != "wal":
        log.warning(
            "SQLite kept journal_mode=%s for %s (no WAL on this filesystem?): readers "
            "and the writer will block each other",
            mode,
            path,
        )


class SqliteDatabase:
    dialect = "sqlite"

    def __init__(self, target: DatabaseTarget, *, max_batch: int = MAX_BATCH) -> None:
        self.target = target
        self._max_batch = max_batch
        self._writes: queue.SimpleQueue[_Write | object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._write_engine: Engine | None = None
        self._read_engine: Engine | None = None
        self._loop_reader: Connection | None = None
        # Batches committed and writes in them, for the benchmarks' group-commit figure.
        self.batches = 0
        self.batched_writes = 0

    @property
    def path(self) -> str:
        return str(self.target.sql_url.database)

    async def open(self) -> None:
        await asyncio.to_thread(prepare_file, self.path)
        self._write_engine = sqlite_engine(
            self.target, write=True, busy_timeout_ms=WRITE_BUSY_TIMEOUT_MS
        )
        self._read_engine = sqlite_engine(self.target, write=False, busy_timeout_ms=0)
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        self._writer = threading.Thread(
            target=self._write_loop,
            args=(loop, started),
            name="agentjobs-sqlite-writer",
            daemon=True,
        )
        self._writer.start()
        await started

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._writes.put(_STOP)
            await asyncio.to_thread(writer.join)
        if self._loop_reader is not None:
            self._loop_reader.close()
            self._loop_reader = None
        for engine in (self._write_engine, self._read_engine):
            if engine is not None:
                engine.dispose()
        self._write_engine = self._read_engine = None

    # -- writes --------------------------------------------------------------
    async def write(self, body: Body[T]) -> T:
        if self._writer is None:
            raise RuntimeError("the database is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with telemetry.span("db.transaction", backend="sqlite"):
            self._writes.put(_Write(body, future, loop))
            return await future

    def _write_loop(self, loop: asyncio.AbstractEventLoop, started: asyncio.Future[None]) -> None:
        assert self._write_engine is not None
        try:
            connection = self._write_engine.connect()
            _upgrade_without_foreign_keys(connection, self.target)
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, started, False, exc)
            return
        loop.call_soon_threadsafe(_settle, started, True, None)
        try:
            while True:
                first = self._writes.get()
                if first is _STOP:
                    return
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        item = self._writes.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        self._writes.put(_STOP)  # finish this batch, then stop
                        break
                    batch.append(item)
                self._commit(connection, [w for w in batch if isinstance(w, _Write)])
        finally:
            connection.close()

    def _commit(self, connection: Connection, batch: list[_Write]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with connection.begin():
                for write in batch:
                    savepoint = connection.begin_nested()
                    try:
                        value = write.body(connection)
                    except BaseException as exc:
                        savepoint.rollback()
                        outcomes.append((False, _mapped(exc, "write")))
                    else:
                        savepoint.commit()
                        outcomes.append((True, value))
        except BaseException as exc:
            # The commit itself (or BEGIN) failed: nothing of the batch is written.
            failure = _mapped(exc, "write")
            outcomes = [(False, failure)] * len(batch)
        self.batches += 1
        self.batched_writes += len(batch)
        for write, (ok, value) in zip(batch, outcomes, strict=True):
            try:
                write.loop.call_soon_threadsafe(_settle, write.future, ok, value)
            except RuntimeError:
                log.warning("a write finished after its event loop closed")

    # -- reads ---------------------------------------------------------------
    async def read(self, body: Body[T], *, heavy: bool = False) -> T:
        if self._read_engine is None:
            raise RuntimeError("the database is not open")
        if not heavy:
            try:
                return self._read_here(body)
            except StorageUnavailableError as busy:
                # Never wait on the event loop: a worker thread waits instead.
                log.debug("SQLite read on the loop was busy, retrying on a thread: %s", busy)
        return await asyncio.to_thread(self._read_on_thread, body)

    def _read_here(self, body: Body[T]) -> T:
        assert self._read_engine is not None
        if self._loop_reader is None:
            self._loop_reader = self._read_engine.connect()
        return _run_read(self._loop_reader, body)

    def _read_on_thread(self, body: Body[T]) -> T:
        assert self._read_engine is not None
        with self._read_engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            raw.execute(f"PRAGMA busy_timeout = {WRITE_BUSY_TIMEOUT_MS}")
            return _run_read(connection, body)


def _upgrade_without_foreign_keys(connection: Connection, target: DatabaseTarget) -> None:
    """Migrate with foreign keys off. SQLite changes most of a table by copying it
    (create, copy, drop the old one, rename), and with foreign keys on, dropping a
    table that other rows reference fails ("FOREIGN KEY constraint failed"): an
    upgrade of a database that holds jobs would never pass. This is SQLite's own
    procedure for such changes: foreign keys off (possible only outside a transaction),
    the changes, then the migrations check the keys (env.py) before the commit."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        with connection.begin():
            upgrade_connection(connection, target)
    finally:
        raw.execute("PRAGMA foreign_keys = ON")


def _run_read(connection: Connection, body: Body[T]) -> T:
    try:
        with connection.begin():
            return body(connection)
    except OperationalError as exc:
        mapped = storage_error(exc, "read")
        if mapped is not None:
            raise mapped from exc
        raise


def _mapped(exc: BaseException, what: str) -> BaseException:
    mapped = storage_error(exc, what)
    if mapped is None:
        return exc
    mapped.__cause__ = exc
    return mapped
