"""End-to-end jobs per second: start, the buyer locks at once, the demo agent runs, the
result is submitted, the job is completed; agentjobs against the masumi SDK's server.

    .venv/bin/python -m bench.bench_e2e [--jobs N] [--callers C] [--rounds R]
        [--interval S]

The sandbox payment service (in this process) locks funds as soon as a payment is
requested (lock_after 0) and settles each chain step after 0.1 s. C callers (in this
process) each start a job and follow it to completed, then start the next, until N
jobs are done:
- MIP-003 HTTP, both servers: POST /start_job, then GET /status every 0.25 s;
- agentjobs over gRPC: StartJob, then a WatchJob stream until completed; also on its
  memory:// store, which shows what the SQLite writes (synchronous=FULL) cost.
Figures: jobs/s (N over the time to do all), per-job latency (start called -> seen
completed) p50/p99, and the server's CPU seconds per job (/proc). Each server runs in
its own process; the variants run back to back, R rounds, median (min-max).

agentjobs polls the payment service every --interval s (default 1). The SDK checks a
payment as soon as its job is created and then every ~11 s, so with a buyer that pays
at once its first check usually finds the funds locked.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import grpc

from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from bench import common
from bench.common import Child, say

POLL_S = 0.25
DONE = {"completed", "failed"}


@dataclass(frozen=True)
class Round:
    jobs_per_s: float
    p50_s: float
    p99_s: float
    cpu_ms_per_job: float
    failed: int


async def http_job(session: aiohttp.ClientSession, base_url: str) -> bool:
    (job,) = await common.start_jobs_http(session, base_url, 1)
    while True:
        status = await common.http_status(session, base_url, job.job_id)
        if status in DONE:
            return status == "completed"
        await asyncio.sleep(POLL_S)


async def grpc_job(stub: jobs_pb2_grpc.JobServiceStub) -> bool:
    request = jobs_pb2.StartJobRequest(identifier_from_purchaser=common.purchaser_id())
    request.input_data.update(common.DEMO_INPUT)
    started = await stub.StartJob(request, timeout=60)
    watch = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=started.job_id))
    try:
        async for update in watch:
            if update.job.status == jobs_pb2.JOB_STATUS_COMPLETED:
                return True
            if update.job.status == jobs_pb2.JOB_STATUS_FAILED:
                return False
        return False
    finally:
        # Leaving the loop before the stream's end leaves the call open on the client
        # until it is collected, and an open call holds one of the connection's
        # max_concurrent_streams (100): ~100 such calls stall every new call.
        watch.cancel()


async def one_round(
    server: Child, count: int, callers: int, job: Callable[[], Awaitable[bool]]
) -> Round:
    latencies: list[float] = []

    async def timed(_n: int) -> bool:
        began = time.monotonic()
        ok = await job()
        latencies.append(time.monotonic() - began)
        return ok

    cpu = server.cpu_seconds()
    began = time.monotonic()
    outcomes = await common.in_parallel(count, callers, timed)
    elapsed = time.monotonic() - began
    return Round(
        jobs_per_s=count / elapsed,
        p50_s=common.percentile(latencies, 50),
        p99_s=common.percentile(latencies, 99),
        cpu_ms_per_job=1000 * (server.cpu_seconds() - cpu) / count,
        failed=outcomes.count(False),
    )


async def measure(
    count: int, callers: int, rounds: int, interval_s: float
) -> dict[str, list[Round]]:
    results: dict[str, list[Round]] = {}
    with common.temp_dir("bench-e2e-") as directory:
        async with (
            common.sandbox(lock_after=0, settle_after=0.1) as (_service, payments),
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
            common.ours(payments, directory, monitor_interval_s=interval_s) as server,
            common.ours(
                payments, directory, monitor_interval_s=interval_s, database="memory://"
            ) as in_memory,
            common.reference(payments) as masumi,
            grpc.aio.insecure_channel(server.found["grpc"]) as channel,
            grpc.aio.insecure_channel(in_memory.found["grpc"]) as memory_channel,
        ):
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            memory_stub = jobs_pb2_grpc.JobServiceStub(memory_channel)
            variants: list[tuple[str, Child, Callable[[], Awaitable[bool]]]] = [
                ("masumi_http", masumi, lambda: http_job(session, masumi.found["http"])),
                ("ours_http", server, lambda: http_job(session, server.found["http"])),
                ("ours_grpc", server, lambda: grpc_job(stub)),
                ("memory_grpc", in_memory, lambda: grpc_job(memory_stub)),
            ]
            for n in range(rounds):
                say(f"round {n + 1}/{rounds}")
                for name, child, job in variants:
                    result = await one_round(child, count, callers, job)
                    results.setdefault(name, []).append(result)
                    say(
                        f"  {name}: {result.jobs_per_s:.1f} jobs/s, p50 {result.p50_s:.2f} s, "
                        f"p99 {result.p99_s:.2f} s, {result.cpu_ms_per_job:.1f} ms CPU/job, "
                        f"{result.failed} failed"
                    )
    return results


def report(
    results: dict[str, list[Round]], count: int, callers: int, interval_s: float
) -> list[str]:
    base = results["masumi_http"]
    rows = []
    for name, label in (
        ("masumi_http", "masumi SDK server, HTTP + /status polling"),
        ("ours_http", "agentjobs, HTTP + /status polling"),
        ("ours_grpc", "agentjobs, gRPC StartJob + WatchJob"),
        ("memory_grpc", "agentjobs on memory://, gRPC StartJob + WatchJob"),
    ):
        got = results[name]
        ratios = [a.jobs_per_s / b.jobs_per_s for a, b in zip(got, base, strict=True)]
        rows.append(
            [
                label,
                common.spread([r.jobs_per_s for r in got], 1),
                f"{common.median(ratios):.2f}",
                common.spread([r.p50_s for r in got], 2),
                common.spread([r.p99_s for r in got], 2),
                common.spread([r.cpu_ms_per_job for r in got], 1),
                sum(r.failed for r in got),
            ]
        )
    header = ["variant", "jobs/s", "ratio", "p50 s", "p99 s", "server CPU ms/job", "failed"]
    return [
        f"{count} jobs per round, {callers} callers, lock_after 0, settle_after 0.1 s, "
        f"agentjobs monitor interval {interval_s:g} s, {len(base)} rounds, median (min-max); "
        "ratio of jobs/s vs the SDK:",
        "",
        *common.table(header, rows),
    ]


def run(count: int = 300, callers: int = 32, rounds: int = 3, interval_s: float = 1) -> list[str]:
    results = asyncio.run(measure(count, callers, rounds, interval_s))
    return report(results, count, callers, interval_s)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_e2e", description=__doc__)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1)
    args = parser.parse_args()
    say(common.machine_line())
    say("\n".join(["", *run(args.jobs, args.callers, args.rounds, args.interval)]))


if __name__ == "__main__":
    main()
