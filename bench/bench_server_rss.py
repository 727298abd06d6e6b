"""The server process's memory with many stored jobs: `agentjobs-server serve` on a
SQLite file holding N jobs, against the same server on an empty file.

    .venv/bin/python -m bench.bench_server_rss [--jobs 100000] [--rounds 3]

The file is filled through the repository (16 concurrent creates; each job with its
invoice and two events, as StartJob stores them). All N jobs are awaiting payment, the
case that costs the most at start-up: the payment monitor reads every open invoice to
follow it. RSS (VmRSS) and peak (VmHWM) of the server are read from /proc once it is
serving, after its first monitor rounds, and after 1,000 GetJobStatus calls for random
jobs. The sandbox in this process is the payment service (it knows none of the stored
payments, so the monitor's diff finds nothing to apply).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from pathlib import Path

import grpc

from agentjobs.server.repository.factory import open_repository
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from bench import common
from bench.bench_repository import create
from bench.common import Child, say

READS = 1000


async def fill(path: Path, count: int) -> list[str]:
    repository = open_repository(f"sqlite+aiosqlite:///{path}")
    await repository.open()
    try:

        async def one(n: int) -> str:
            return (await create(repository, n)).job_id

        return await common.in_parallel(count, 16, one)
    finally:
        await repository.close()


def peak_mib(server: Child) -> float:
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def readings(directory: Path, job_ids: list[str]) -> list[float]:
    async with common.sandbox(lock_after=None) as (_service, payments):
        began = time.monotonic()
        async with common.ours(payments, directory, monitor_interval_s=1) as server:
            ready_s = time.monotonic() - began
            serving = server.rss_mib()
            await asyncio.sleep(3)  # the first monitor rounds
            after_rounds = server.rss_mib()
            if job_ids:
                async with grpc.aio.insecure_channel(server.found["grpc"]) as channel:
                    stub = jobs_pb2_grpc.JobServiceStub(channel)
                    for job_id in random.choices(job_ids, k=READS):
                        await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=job_id))
            return [ready_s, serving, after_rounds, server.rss_mib(), peak_mib(server)]


async def rounds_of(directory: Path, job_ids: list[str], rounds: int) -> list[str]:
    """`rounds` fresh server processes on the same file, one after the other; each column
    as median (min-max)."""
    taken = []
    for n in range(rounds):
        taken.append(await readings(directory, job_ids))
        say(f"    round {n + 1}: " + ", ".join(f"{x:.1f}" for x in taken[-1]))
    columns = list(zip(*taken, strict=True))
    return [common.spread(columns[0], 1), *(common.spread(column) for column in columns[1:])]


async def measure(count: int, rounds: int) -> list[str]:
    rows = []
    with common.temp_dir("bench-rss-empty-") as empty:
        rows.append(["empty file", "-", *await rounds_of(empty, [], rounds)])
        say(f"  {rows[-1]}")
    with common.temp_dir("bench-rss-full-") as full:
        began = time.monotonic()
        job_ids = await fill(full / "bench.db", count)
        fill_s = time.monotonic() - began
        size = sum(f.stat().st_size for f in full.iterdir()) / 2**20
        say(f"  filled {count:,} jobs in {fill_s:.0f} s ({size:.0f} MiB on disk)")
        rows.append(
            [
                f"{count:,} jobs awaiting payment",
                f"{size:.0f}",
                *await rounds_of(full, job_ids, rounds),
            ]
        )
        say(f"  {rows[-1]}")
    header = [
        "SQLite file",
        "MiB on disk",
        "s to serving",
        "RSS serving MiB",
        "after monitor rounds",
        f"after {READS:,} status reads",
        "peak MiB",
    ]
    return [
        f"{rounds} server processes per file, one after the other; median (min-max):",
        "",
        *common.table(header, rows),
    ]


def run(count: int = 100_000, rounds: int = 3) -> list[str]:
    return asyncio.run(measure(count, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_server_rss", description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    say(common.machine_line())
    say("\n".join(["", *run(args.jobs, args.rounds)]))


if __name__ == "__main__":
    main()
