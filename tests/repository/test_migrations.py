"""The schema: what the migrations make, what the database itself enforces, and the
upgrade of a database the one-process version (revision 0001) wrote."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from agentjobs.server.domain import Amount, EventType, InvoiceStatus, StorageUnavailableError
from agentjobs.server.domain.steps import Step
from agentjobs.server.repository.base import JobRepository
from agentjobs.server.repository.database_url import Backend as Store
from agentjobs.server.repository.database_url import DatabaseTarget, parse_database_url
from agentjobs.server.repository.drivers.postgres import postgres_engine
from agentjobs.server.repository.drivers.sqlite import prepare_file, sqlite_engine
from agentjobs.server.repository.factory import migrate, open_repository
from agentjobs.server.repository.migrator import (
    CONNECTION_ATTRIBUTE,
    VERSION_TABLE,
    alembic_config,
    current_revision,
    head_revision,
)
from agentjobs.server.repository.tables import metadata
from tests.repository.builders import T0_MS, at, event_only, insert, with_payment
from tests.repository.conftest import Backend, sql_rows, sql_value, sql_write
from tests.support import free_port


def _schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": lambda name, _kind, _parents: name != VERSION_TABLE,
        },
    )
    return list(compare_metadata(context, metadata))


def _fresh_url(backend: Backend, tmp_path: Path) -> str:
    """A store nothing has created yet (the fixture's SQLite file is already migrated;
    its PostgreSQL schema does not exist until a repository opens it)."""
    if backend.name == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh' / 'agentjobs.db'}"
    return backend.url


async def test_migrations_create_exactly_the_tables_the_queries_use(backend: Backend) -> None:
    repo = await backend.open()
    assert await repo.db.read(_schema_differences) == []
    assert await repo.db.read(current_revision) == head_revision()


async def test_migrate_is_idempotent(durable_backend: Backend, tmp_path: Path) -> None:
    url = _fresh_url(durable_backend, tmp_path)
    await migrate(url)
    await migrate(url)
    repo = JobRepository(url)
    await repo.open(watch_other_processes=False)  # open() migrates once more
    try:
        await insert(repo)
        assert await repo.db.read(current_revision) == head_revision()
        assert await sql_value(repo, f"SELECT COUNT(*) FROM {VERSION_TABLE}") == 1
        assert await repo.db.read(_schema_differences) == []
    finally:
        await repo.close()


async def test_concurrent_migrations_apply_once(durable_backend: Backend, tmp_path: Path) -> None:
    url = _fresh_url(durable_backend, tmp_path)
    await asyncio.gather(*(migrate(url) for _ in range(4)))
    repo = JobRepository(url)
    await repo.open(watch_other_processes=False)
    try:
        assert await repo.count() == 0
        assert [tuple(r) for r in await sql_rows(repo, f"SELECT * FROM {VERSION_TABLE}")] == [
            (head_revision(),)
        ]
    finally:
        await repo.close()


async def _assert_the_database_enforces_its_checks(repo: JobRepository, job_id: str) -> None:
    """Statuses, amounts and foreign keys are checked by the database itself."""
    before = await repo.get_with_invoice(job_id)
    for statement in (
        "UPDATE jobs SET status = 'unknown' WHERE job_id = :id",
        "UPDATE job_events SET status = 'unknown' WHERE job_id = :id",
        "UPDATE invoices SET status = 'unknown' WHERE job_id = :id",
        "UPDATE invoice_amounts SET amount = -1 WHERE blockchain_identifier = "
        "(SELECT blockchain_identifier FROM invoices WHERE job_id = :id)",
        "INSERT INTO job_events (job_id, sequence, type, status, detail, data, created_at) "
        "SELECT 'no-such-job', 1000, type, status, detail, data, created_at FROM job_events "
        "WHERE job_id = :id",
        "DELETE FROM jobs WHERE job_id = :id",
    ):
        with pytest.raises(IntegrityError):
            await sql_write(repo, statement, id=job_id)
    assert await repo.get_with_invoice(job_id) == before
    # Every invoice status of the domain is allowed.
    for status in InvoiceStatus:
        assert await sql_write(
            repo,
            "UPDATE invoices SET status = :s WHERE job_id = :id",
            s=status.value,
            id=job_id,
        )


async def test_the_database_enforces_its_checks(backend: Backend) -> None:
    repo = await backend.open()
    job = await with_payment(repo)
    await _assert_the_database_enforces_its_checks(repo, job.job_id)
    read, invoice = await repo.get_with_invoice(job.job_id)
    assert read == job
    assert invoice is not None and invoice.amounts[0].amount > 0


async def test_a_reopened_store_keeps_everything(durable_backend: Backend) -> None:
    repo = await durable_backend.open()
    job = await with_payment(repo)
    job = await repo.apply(job, event_only("kept"), at(1))
    await repo.acquire_lease("payment-monitor", "r1", now_ms=T0_MS, until_ms=T0_MS + 1_000)
    await repo.heartbeat("r1", "all", started_at=T0_MS, now_ms=T0_MS)
    events = await repo.events(job.job_id)
    _, invoice = await repo.get_with_invoice(job.job_id)
    await repo.close()
    reopened = await durable_backend.open()
    assert await reopened.get_with_invoice(job.job_id) == (job, invoice)
    assert await reopened.events(job.job_id) == events
    assert await reopened.lease_holder("payment-monitor", T0_MS) == "r1"
    assert [r.replica_id for r in await reopened.list_replicas(T0_MS)] == ["r1"]
    # The sequence continues where it stopped.
    moved = await reopened.apply(job, event_only(), at(2))
    assert [e.sequence for e in await reopened.events(job.job_id)][-1] == moved.event_count


async def test_open_twice_and_close_twice_are_harmless(backend: Backend) -> None:
    repo = await backend.open()
    await insert(repo)
    await repo.close()
    await repo.close()
    if backend.durable:
        await repo.open(watch_other_processes=False)
        assert await repo.count() == 1
        await repo.close()


async def test_a_closed_repository_says_so(backend: Backend) -> None:
    repo = await backend.open()
    await repo.close()
    with pytest.raises(RuntimeError, match="not open"):
        await repo.count()
    with pytest.raises(RuntimeError, match="not open"):
        await insert(repo)


async def test_an_unreachable_postgresql_is_unavailable_storage() -> None:
    """Nothing listens on the port: open() answers StorageUnavailableError (the API's
    UNAVAILABLE), without the password in the message."""
    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/test?schema=s"
    repo = JobRepository(url)
    async with asyncio.timeout(30):
        with pytest.raises(StorageUnavailableError) as refused:
            await repo.open(watch_other_processes=False)
    assert "hunter2" not in str(refused.value)


async def test_no_url_means_agentjobs_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    repo = open_repository(None)
    assert repo.backend is Store.SQLITE
    await repo.open(watch_other_processes=False)
    try:
        job = await insert(repo)
    finally:
        await repo.close()
    assert (tmp_path / "agentjobs.db").is_file()
    await migrate(None)  # already at head: nothing to do
    again = open_repository(f"sqlite:///{tmp_path / 'agentjobs.db'}")
    await again.open(watch_other_processes=False)
    try:
        assert await again.get(job.job_id) == job
    finally:
        await again.close()


async def test_a_missing_sqlite_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "state" / "jobs" / "agentjobs.db"
    repo = open_repository(f"sqlite:///{path}")
    await repo.open(watch_other_processes=False)
    try:
        await insert(repo)
    finally:
        await repo.close()
    assert path.is_file()
    assert await asyncio.to_thread(_journal_mode, path) == "wal"


def _journal_mode(path: Path) -> str:
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    finally:
        connection.close()


# -- 0001 -> 0002: a database written by the one-process version -----------------------
T = "'2030-01-01T00:00:00.000000Z'"  # a timestamp literal both databases read
MARGIN_MS = 11 * 60 * 1000
PAY_BY = T0_MS + 3_600_000
SUBMIT_BY = PAY_BY + 5 * 3_600_000


@dataclass(frozen=True)
class Old:
    """A 0001 row: the job's status and result, its invoice, how many events it has."""

    job_id: str
    status: str
    result: str | None
    invoice: str
    on_chain: str | None
    events: int
    # What 0002 must make of it.
    step: Step | None
    run_at: int | None
    invoice_after: InvoiceStatus


OLD_ROWS = [
    Old(
        "unpaid",
        "awaiting_payment",
        None,
        "pending",
        None,
        2,
        Step.EXPIRE,
        PAY_BY,
        InvoiceStatus.PENDING,
    ),
    Old("runs", "running", None, "paid", "FundsLocked", 3, Step.RUN, 0, InvoiceStatus.PAID),
    Old(
        "submits",
        "running",
        "the result",
        "paid",
        "FundsLocked",
        4,
        Step.SUBMIT,
        0,
        InvoiceStatus.PAID,
    ),
    Old(
        "asks",
        "awaiting_input",
        None,
        "paid",
        "FundsLocked",
        4,
        Step.INPUT_DEADLINE,
        SUBMIT_BY - MARGIN_MS,
        InvoiceStatus.PAID,
    ),
    Old(
        "done-locked",
        "completed",
        "r",
        "paid",
        "FundsLocked",
        5,
        Step.FOLLOW,
        0,
        InvoiceStatus.SUBMITTED,
    ),
    Old("done-unseen", "completed", "r", "paid", None, 5, Step.FOLLOW, 0, InvoiceStatus.SUBMITTED),
    Old(
        "done-on-chain",
        "completed",
        "r",
        "paid",
        "ResultSubmitted",
        6,
        Step.FOLLOW,
        0,
        InvoiceStatus.CONFIRMED,
    ),
    Old(
        "done-disputed",
        "completed",
        "r",
        "paid",
        "Disputed",
        6,
        Step.FOLLOW,
        0,
        InvoiceStatus.DISPUTED,
    ),
    Old(
        "done-withdrawn",
        "completed",
        "r",
        "withdrawn",
        "Withdrawn",
        7,
        None,
        None,
        InvoiceStatus.WITHDRAWN,
    ),
    Old("expired", "failed", None, "expired", None, 3, None, None, InvoiceStatus.EXPIRED),
    Old(
        "failed-paid", "failed", None, "paid", "FundsLocked", 4, Step.FOLLOW, 0, InvoiceStatus.PAID
    ),
    Old(
        "refunded",
        "failed",
        None,
        "refunded",
        "RefundWithdrawn",
        5,
        None,
        None,
        InvoiceStatus.REFUNDED,
    ),
]


def _write_0001(connection: Connection) -> None:
    """Create the 0001 schema with Alembic and fill it as the old version did."""
    config = alembic_config()
    config.attributes[CONNECTION_ATTRIBUTE] = connection
    command.upgrade(config, "0001")
    for n, old in enumerate(OLD_ROWS):
        bid = f"bid-{old.job_id}"
        connection.execute(
            text(
                "INSERT INTO jobs (job_id, status, status_id, identifier_from_purchaser, "
                "input_data, input_hash, blockchain_identifier, seller_vkey, agent_identifier, "
                "pay_by_time, submit_result_time, unlock_time, external_dispute_unlock_time, "
                "input_schema, input_request_message, result, error, request_id, created_at, "
                f"updated_at) VALUES (:id, :status, :sid, 'aabbccddeeff0011', :input, :hash, "
                f":bid, 'vkey', 'agent', :pay_by, :submit_by, :unlock, :dispute, NULL, NULL, "
                f":result, NULL, :request_id, {T}, {T})"
            ),
            {
                "id": old.job_id,
                "status": old.status,
                "sid": f"status-{n}",
                "input": f'{{"text":"old \\u0000 job","n":{n}}}',
                "hash": f"{n:064x}",
                "bid": bid,
                "pay_by": PAY_BY,
                "submit_by": SUBMIT_BY,
                "unlock": SUBMIT_BY + 1,
                "dispute": SUBMIT_BY + 2,
                "result": old.result,
                "request_id": f"req-{old.job_id}",
            },
        )
        for sequence in range(1, old.events + 1):
            connection.execute(
                text(
                    "INSERT INTO job_events (job_id, sequence, type, status, detail, data, "
                    f"created_at) VALUES (:id, :seq, 'PAYMENT_STATE_CHANGED', :status, :d, "
                    f"'{{}}', {T})"
                ),
                {"id": old.job_id, "seq": sequence, "status": old.status, "d": str(sequence)},
            )
        connection.execute(
            text(
                "INSERT INTO invoices (blockchain_identifier, job_id, status, on_chain_state, "
                f"created_at, paid_at, updated_at) VALUES (:bid, :id, :status, :chain, {T}, "
                f"NULL, {T})"
            ),
            {"bid": bid, "id": old.job_id, "status": old.invoice, "chain": old.on_chain},
        )
        connection.execute(
            text("INSERT INTO invoice_amounts VALUES (:bid, 0, '', :amount), (:bid, 1, 'u', 7)"),
            {"bid": bid, "amount": 3_000_000_007 + n},
        )


@contextmanager
def _sqlite_0001(target: DatabaseTarget) -> Iterator[None]:
    path = str(target.sql_url.database)
    prepare_file(path)
    engine = sqlite_engine(target, write=True, busy_timeout_ms=5_000)
    try:
        with engine.connect() as connection, connection.begin():
            _write_0001(connection)
        yield
    finally:
        engine.dispose()


async def _postgres_0001(target: DatabaseTarget) -> None:
    assert target.schema is not None
    engine = postgres_engine(target, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{target.schema}"'))
            await connection.run_sync(_write_0001)
    finally:
        await engine.dispose()


async def test_upgrading_a_0001_database_gives_every_job_its_step(
    durable_backend: Backend, tmp_path: Path
) -> None:
    url = _fresh_url(durable_backend, tmp_path)
    target = parse_database_url(url)
    if target.backend is Store.SQLITE:
        with _sqlite_0001(target):
            pass
    else:
        await _postgres_0001(target)

    repo = JobRepository(url)
    await repo.open(watch_other_processes=False)  # upgrades to head
    try:
        assert await repo.db.read(current_revision) == head_revision()
        assert await repo.db.read(_schema_differences) == []
        if target.backend is Store.SQLITE:
            assert await sql_rows(repo, "PRAGMA foreign_key_check") == []
        for n, old in enumerate(OLD_ROWS):
            job, invoice = await repo.get_with_invoice(old.job_id)
            assert (job.status.value, job.result) == (old.status, old.result)
            assert (job.step, job.run_at, job.attempt) == (old.step, old.run_at, 0), old
            assert (job.lease_owner, job.lease_expires_at, job.version) == (None, None, 0)
            assert job.event_count == old.events
            assert job.deadline == SUBMIT_BY - MARGIN_MS
            assert (job.pricing, job.recoveries, job.attention) == ("fixed", 0, None)
            assert (job.request_id, job.blockchain_identifier) == (
                f"req-{old.job_id}",
                f"bid-{old.job_id}",
            )
            assert job.input_data == {"text": "old \x00 job", "n": n}
            assert job.created_at == at(0)
            assert invoice is not None
            assert invoice.status is old.invoice_after, old
            assert (invoice.on_chain_state, invoice.next_action) == (old.on_chain, "")
            assert invoice.amounts == (Amount(amount=3_000_000_007 + n), Amount(amount=7, unit="u"))
            events = await repo.events(old.job_id)
            assert [e.sequence for e in events] == list(range(1, old.events + 1))
            assert all(e.type is EventType.PAYMENT_STATE_CHANGED for e in events)
        # The schedule works on the upgraded rows: what 0002 made due is claimed ...
        claimed = await repo.claim(
            "w1", now_ms=T0_MS, lease_ms=1_000, limit=100, affinity_grace_ms=0
        )
        expected = {old.job_id for old in OLD_ROWS if old.run_at == 0}
        assert {job.job_id for job in claimed} == expected
        assert await repo.next_due() == T0_MS + 1_000
        # ... events continue after the old ones (the claim of the run wrote its
        # STARTED as the 4th), and new jobs go in beside them.
        runs = await repo.get("runs")
        moved = await repo.apply(runs, event_only("after the upgrade"), at(1))
        assert [e.sequence for e in await repo.events("runs")][-1] == moved.event_count == 5
        await with_payment(repo)
        assert await repo.count() == len(OLD_ROWS) + 1
        report = await repo.earnings()
        assert report.total(InvoiceStatus.SUBMITTED).count == 2
        # The copied tables kept their checks and keys.
        await _assert_the_database_enforces_its_checks(repo, "done-locked")
    finally:
        await repo.close()
