"""Repository throughput per backend, and the memory a store of 100k jobs costs.

    .venv/bin/python -m bench.bench_repository [--backend all|memory|sqlite|postgres]
                                               [--jobs N] [--repeat R] [--rss-jobs N]

For each backend, on a fresh store: N sequential creates (as StartJob writes a job:
the intent with its CREATED event, then its payment attached: invoice + PAYMENT_REQUESTED,
two write transactions), N gets by id, N transitions AWAITING_PAYMENT -> RUNNING with
their invoice change (a read of job + invoice, then one write), and N creates from 16
concurrent tasks. Each figure is the median of R rounds (the range in brackets). Then,
in a fresh child process per backend, the resident set size after storing --rss-jobs
jobs (SQLite and memory only).

PostgreSQL: AGENTJOBS_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/
test); the run uses its own schema and drops it. Skipped, with a message, if unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from agentjobs.server.domain import Amount, EventType, Job, JobStatus, PaymentTerms
from agentjobs.server.domain.lifecycle import (
    NewEvent,
    Policy,
    ms,
    on_payment,
    on_payment_requested,
)
from agentjobs.server.domain.payment import NextAction, OnChainState, PaymentState
from agentjobs.server.domain.steps import Step
from agentjobs.server.repository.factory import open_repository
from agentjobs.server.repository.store import JobRepository

POSTGRES_URL = os.environ.get(
    "AGENTJOBS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("memory", "sqlite", "postgres")
CONCURRENT_TASKS = 16
POLICY = Policy()
HOUR_MS = 3_600_000


def new_job(n: int) -> Job:
    """A realistic intent as StartJob stores it (awaiting payment, step REQUEST_PAYMENT):
    a small input document, a 64-hex hash, long identifiers."""
    now = datetime.now(UTC)
    return Job(
        job_id=str(uuid.uuid4()),
        status_id=str(uuid.uuid4()),
        identifier_from_purchaser="aabbccddeeff0011",
        input_data={"text": f"summarise document {n}", "max_words": 200},
        input_hash=f"{n:064x}",
        agent_identifier="b" * 120,
        created_at=now,
        updated_at=now,
        status=JobStatus.AWAITING_PAYMENT,
        step=Step.REQUEST_PAYMENT,
        run_at=ms(now) + 60_000,
    )


def terms_for(now_ms: int) -> PaymentTerms:
    """What the payment service answers to POST /payment (pay by: 12 h from now)."""
    pay_by = now_ms + 12 * HOUR_MS
    return PaymentTerms(
        blockchain_identifier=f"{uuid.uuid4().hex}" * 4,
        seller_vkey="a" * 56,
        agent_identifier="b" * 120,
        pay_by_time=pay_by,
        submit_result_time=pay_by + 12 * HOUR_MS,
        unlock_time=pay_by + 13 * HOUR_MS,
        external_dispute_unlock_time=pay_by + 14 * HOUR_MS,
        amounts=(Amount(amount=10_000_000),),
    )


async def create(repo: JobRepository, n: int) -> Job:
    """What StartJob writes: the intent with its CREATED event, then the payment the
    service created attached to it (PENDING invoice, PAYMENT_REQUESTED): two writes."""
    job = new_job(n)
    stored = await repo.insert(
        job, [NewEvent(EventType.CREATED, "", {"input_hash": job.input_hash})]
    )
    now = datetime.now(UTC)
    decision = on_payment_requested(stored, terms_for(ms(now)), now, POLICY)
    return await repo.apply(stored, decision, now)


async def pay(repo: JobRepository, job_id: str) -> Job:
    """The buyer locked funds: AWAITING_PAYMENT -> RUNNING, FUNDS_LOCKED, invoice PAID."""
    job, invoice = await repo.get_with_invoice(job_id)
    now = datetime.now(UTC)
    state = PaymentState(
        blockchain_identifier=job.blockchain_identifier,
        on_chain_state=OnChainState.FUNDS_LOCKED,
        requested_action=NextAction.WAITING_FOR_EXTERNAL_ACTION,
    )
    return await repo.apply(job, on_payment(job, invoice, state, now, POLICY), now)


@dataclass(frozen=True)
class Rates:
    creates: float
    gets: float
    transitions: float
    concurrent_creates: float


async def postgres_problem() -> str | None:
    try:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


@asynccontextmanager
async def fresh_store(backend: str) -> AsyncIterator[JobRepository]:
    with tempfile.TemporaryDirectory(prefix="bench-repo-") as directory:
        schema = f"agentjobs_bench_{uuid.uuid4().hex[:12]}"
        if backend == "memory":
            url = "memory://"
        elif backend == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        else:
            url = f"{POSTGRES_URL}?schema={schema}"
        repository = open_repository(url)
        await repository.open()
        try:
            yield repository
        finally:
            await repository.close()
            if backend == "postgres":
                connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
                try:
                    await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                finally:
                    await connection.close()


async def per_second(count: int, run: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await run()
    return count / (time.perf_counter() - started)


async def one_round(backend: str, jobs: int) -> Rates:
    async with fresh_store(backend) as repo:
        ids: list[str] = []

        async def creates() -> None:
            for n in range(jobs):
                ids.append((await create(repo, n)).job_id)

        async def gets() -> None:
            for job_id in ids:
                await repo.get(job_id)

        async def transitions() -> None:
            for job_id in ids:
                await pay(repo, job_id)

        async def concurrent_creates() -> None:
            async def worker(first: int) -> None:
                for n in range(first, jobs, CONCURRENT_TASKS):
                    await create(repo, jobs + n)

            await asyncio.gather(*(worker(i) for i in range(CONCURRENT_TASKS)))

        return Rates(
            creates=await per_second(jobs, creates),
            gets=await per_second(jobs, gets),
            transitions=await per_second(jobs, transitions),
            concurrent_creates=await per_second(jobs, concurrent_creates),
        )


def rss_kib() -> dict[str, int]:
    """Current and peak resident set size of this process, in KiB (Linux /proc)."""
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


async def fill(backend: str, jobs: int) -> dict[str, float]:
    before = rss_kib()
    async with fresh_store(backend) as repo:
        started = time.perf_counter()
        for n in range(jobs):
            await create(repo, n)
        elapsed = time.perf_counter() - started
        after = rss_kib()
    return {
        "before_mib": before["VmRSS"] / 1024,
        "after_mib": after["VmRSS"] / 1024,
        "peak_mib": after["VmHWM"] / 1024,
        "seconds": elapsed,
    }


def measure_rss(backend: str, jobs: int) -> dict[str, float]:
    """In a child process, so one backend's heap does not inflate the other's figure."""
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_repository",
            "--rss-child",
            backend,
            "--jobs",
            str(jobs),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def _rate(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


async def throughput(backends: list[str], jobs: int, repeat: int) -> list[str]:
    rows = [
        f"| backend | creates/s | gets/s | transitions/s | creates/s, {CONCURRENT_TASKS} tasks |",
        "|---|---|---|---|---|",
    ]
    for backend in backends:
        if backend == "postgres":
            problem = await postgres_problem()
            if problem is not None:
                print(f"PostgreSQL skipped: {POSTGRES_URL} unreachable ({problem})", flush=True)
                continue
        rounds = [await one_round(backend, jobs) for _ in range(repeat)]
        rows.append(
            f"| {backend} | {_rate([r.creates for r in rounds])} "
            f"| {_rate([r.gets for r in rounds])} "
            f"| {_rate([r.transitions for r in rounds])} "
            f"| {_rate([r.concurrent_creates for r in rounds])} |"
        )
        print(rows[-1], flush=True)
    return rows


def memory_rows(backends: list[str], jobs: int) -> list[str]:
    rows = [
        f"| backend | RSS before | RSS after {jobs:,} jobs | peak RSS | time to store |",
        "|---|---|---|---|---|",
    ]
    for backend in backends:
        if backend == "postgres":
            continue
        used = measure_rss(backend, jobs)
        rows.append(
            f"| {backend} | {used['before_mib']:.0f} MiB | {used['after_mib']:.0f} MiB "
            f"| {used['peak_mib']:.0f} MiB | {used['seconds']:.0f} s |"
        )
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_repository", description=__doc__)
    parser.add_argument("--backend", choices=("all", *BACKENDS), default="all")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per throughput round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure")
    parser.add_argument(
        "--rss-jobs", type=int, default=100_000, help="jobs stored before RSS (0: skip)"
    )
    parser.add_argument("--rss-child", choices=("memory", "sqlite"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        print(json.dumps(asyncio.run(fill(args.rss_child, args.jobs))))
        return
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs", flush=True)
    table = asyncio.run(throughput(backends, args.jobs, args.repeat))
    print("\n".join(["", *table]))
    if args.rss_jobs:
        print("\n".join(["", *memory_rows(backends, args.rss_jobs)]))


if __name__ == "__main__":
    main()
