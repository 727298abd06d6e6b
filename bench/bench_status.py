"""The status read path, side by side in one run.

    .venv/bin/python -m bench.bench_status [--seconds S] [--rounds R] [--concurrency C]

gRPC: GetJobStatus on agentjobs (SQLite store, interceptor, health/reflection/channelz
registered) against a bare grpc.aio server answering the same message from a dict (the
Python gRPC ceiling), and against agentjobs on its memory:// store (which separates what
the SQLite read costs from what our gRPC layer costs); driven by h2load speaking gRPC: a
pre-framed body (5-byte gRPC header + serialized request), `content-type:
application/grpc`, `te: trailers`, POST to /agentjobs.v1.JobService/GetJobStatus, C in
flight (connections x 16 streams). Before loading, one real grpc.aio call checks that
each server answers with the job (status OK); after, agentjobs' own metrics must count
every request as OK (h2load itself sees only the HTTP status, never grpc-status).

HTTP: agentjobs' MIP-003 `/status` (SQLite, memory://) against the masumi SDK's
`/status` (reference server), wrk with C connections, --latency percentiles.

Each server runs in its own process and the load tool in another; the variants run
back to back, R rounds, and each figure is the median (min-max) of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Awaitable, Callable

import aiohttp
import grpc

from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from bench import common
from bench.common import Load, say

METHOD = "/agentjobs.v1.JobService/GetJobStatus"
JOBS = 20  # jobs each server holds; the load asks for one of them


async def check_grpc(target: str, job_id: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        answer = await jobs_pb2_grpc.JobServiceStub(channel).GetJobStatus(
            jobs_pb2.GetJobStatusRequest(job_id=job_id), timeout=10
        )
    if answer.job_id != job_id:
        raise RuntimeError(f"{target} answered {answer.job_id!r} for {job_id!r}")


async def ok_count(session: aiohttp.ClientSession, http_url: str) -> int:
    """GetJobStatus calls agentjobs' metrics count with code OK."""
    async with session.get(f"{http_url}/metrics") as response:
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("agentjobs_grpc_requests_total{") and METHOD in line:
            if 'code="OK"' in line:
                total += float(line.rsplit(" ", 1)[1])
            elif not re.search(r"} 0\.0$", line):
                raise RuntimeError(f"GetJobStatus answered with an error: {line}")
    return int(total)


async def measure(rounds: int, seconds: float, concurrency: int) -> dict[str, list[Load]]:
    streams = 16
    connections = max(1, concurrency // streams)
    results: dict[str, list[Load]] = {}

    def record(name: str, load: Load) -> None:
        results.setdefault(name, []).append(load)
        say(
            f"  {name}: {load.rps:,.0f} req/s, p50 {load.p50_ms:.2f} ms, "
            f"p99 {load.p99_ms:.2f} ms, ok {load.ok:,}, failed {load.failed:,}"
        )

    async def grpc_load(target: str, job_id: str) -> Load:
        body = common.grpc_frame(jobs_pb2.GetJobStatusRequest(job_id=job_id).SerializeToString())
        return await asyncio.to_thread(
            common.h2load,
            f"http://{target}{METHOD}",
            body,
            seconds=seconds,
            connections=connections,
            streams=streams,
        )

    def http_load(url: str) -> Awaitable[Load]:
        return asyncio.to_thread(common.wrk, url, seconds=seconds, connections=concurrency)

    with common.temp_dir("bench-status-") as directory:
        async with (
            common.sandbox(lock_after=None) as (_service, payments),
            aiohttp.ClientSession() as session,
            common.ours(payments, directory) as server,
            common.ours(payments, directory, database="memory://") as in_memory,
            common.reference(payments) as masumi,
        ):
            our_job = (await common.start_jobs_grpc(server.found["grpc"], JOBS))[0].job_id
            memory_job = (await common.start_jobs_grpc(in_memory.found["grpc"], JOBS))[0].job_id
            their_job = (await common.start_jobs_http(session, masumi.found["http"], JOBS))[
                0
            ].job_id
            async with common.ceiling([our_job]) as bare:
                await check_grpc(server.found["grpc"], our_job)
                await check_grpc(bare.found["grpc"], our_job)
                await check_grpc(in_memory.found["grpc"], memory_job)
                variants: list[tuple[str, Callable[[], Awaitable[Load]]]] = [
                    ("grpc_ours", lambda: grpc_load(server.found["grpc"], our_job)),
                    ("grpc_ceiling", lambda: grpc_load(bare.found["grpc"], our_job)),
                    ("grpc_memory", lambda: grpc_load(in_memory.found["grpc"], memory_job)),
                    (
                        "http_ours",
                        lambda: http_load(f"{server.found['http']}/status?job_id={our_job}"),
                    ),
                    (
                        "http_memory",
                        lambda: http_load(f"{in_memory.found['http']}/status?job_id={memory_job}"),
                    ),
                    (
                        "http_masumi",
                        lambda: http_load(f"{masumi.found['http']}/status?job_id={their_job}"),
                    ),
                ]
                for n in range(rounds):
                    say(f"round {n + 1}/{rounds}")
                    for name, run in variants:
                        checked = {"grpc_ours": server, "grpc_memory": in_memory}.get(name)
                        before = (
                            0 if checked is None else await ok_count(session, checked.found["http"])
                        )
                        load = await run()
                        if checked is not None:
                            counted = await ok_count(session, checked.found["http"]) - before
                            # h2load's count excludes warm-up requests; the server's doesn't.
                            if counted < load.ok:
                                raise RuntimeError(f"{counted} OK answers for {load.ok} requests")
                        record(name, load)
    return results


def report(results: dict[str, list[Load]], seconds: float, concurrency: int) -> list[str]:
    def row(name: str, label: str, base: str | None) -> list[object]:
        loads = results[name]
        rps = [load.rps for load in loads]
        ratio = "1.00"
        if base is not None:
            # Per round, then the median: both sides ran back to back in that round.
            ratios = [a.rps / b.rps for a, b in zip(loads, results[base], strict=True)]
            ratio = f"{common.median(ratios):.2f}"
        return [
            label,
            common.spread(rps),
            common.spread([load.p50_ms for load in loads], 2),
            common.spread([load.p99_ms for load in loads], 2),
            ratio,
            sum(load.failed for load in loads),
        ]

    header = ["variant", "req/s", "p50 ms", "p99 ms", "req/s ratio", "failed"]
    grpc_rows = [
        row("grpc_ceiling", "bare grpc.aio from a dict (ceiling)", None),
        row("grpc_memory", "agentjobs GetJobStatus, memory:// store", "grpc_ceiling"),
        row("grpc_ours", "agentjobs GetJobStatus, SQLite", "grpc_ceiling"),
    ]
    http_rows = [
        row("http_masumi", "masumi SDK server /status (in-memory dict)", None),
        row("http_memory", "agentjobs /status, memory:// store", "http_masumi"),
        row("http_ours", "agentjobs /status, SQLite", "http_masumi"),
    ]
    rounds = len(results["grpc_ours"])
    return [
        f"gRPC, h2load -D {seconds:g} with {concurrency} streams in flight, "
        f"{rounds} rounds, median (min-max); ratio vs the ceiling:",
        "",
        *common.table(header, grpc_rows),
        "",
        f"HTTP, wrk -d {seconds:g}s -c {concurrency}, {rounds} rounds; ratio vs the masumi SDK:",
        "",
        *common.table(header, http_rows),
    ]


def run(rounds: int = 3, seconds: float = 10, concurrency: int = 32) -> list[str]:
    results = asyncio.run(measure(rounds, seconds, concurrency))
    return report(results, seconds, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_status", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    say(common.machine_line())
    say("\n".join(["", *run(args.rounds, args.seconds, args.concurrency)]))


if __name__ == "__main__":
    main()
