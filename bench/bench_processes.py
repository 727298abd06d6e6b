"""`agentjobs-server serve --processes N`: GetJobStatus and end-to-end jobs/s with 1 and
2 processes sharing the ports (SO_REUSEPORT), against the single-process gRPC ceiling.

    .venv/bin/python -m bench.bench_processes [--processes 1,2] [--seconds S]
        [--rounds R] [--jobs N] [--callers C]

GetJobStatus: h2load (gRPC over h2c, pre-framed request, as bench_status) with 8
connections x 4 streams (32 in flight): the kernel spreads *connections* over the
processes that share the port, so a load on one or two connections could land on a
single process. The same load on the bare grpc.aio ceiling (one process,
bench/grpc_ceiling.py) is the reference; each server holds 20 jobs on SQLite
(synchronous=FULL), the load asks for one.

End to end: C callers (closed loop, as bench_e2e: StartJob, then WatchJob until
completed, then the next) over 8 gRPC channels, each with its own connection
(`grpc.use_local_subchannel_pool`), so both processes get callers; the sandbox locks at
once. Server CPU is the whole process tree (/proc). The variants run back to back, R
rounds, median (min-max); ratios are per round, then the median.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc

from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from bench import bench_e2e, bench_status, common
from bench.common import Child, Load, Payments, say

CONNECTIONS, STREAMS = 8, 4
CHANNELS = 8
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


@contextlib.asynccontextmanager
async def serving(
    payments: Payments, directory: Path, processes: int, interval_s: float
) -> AsyncIterator[Child]:
    """agentjobs-server serve with AGENTJOBS_PROCESSES=processes, up when every process
    has said it serves (each prints its gRPC line)."""
    env = {"AGENTJOBS_PROCESSES": str(processes)}
    async with common.ours(payments, directory, monitor_interval_s=interval_s, env=env) as server:
        deadline = time.monotonic() + 60
        while sum("gRPC  " in line for line in server.output) < processes:
            if time.monotonic() > deadline:
                raise RuntimeError("not every process came up:\n" + "".join(server.output[-40:]))
            await asyncio.sleep(0.1)
        yield server


async def status_load(target: str, job_id: str, seconds: float) -> Load:
    body = common.grpc_frame(jobs_pb2.GetJobStatusRequest(job_id=job_id).SerializeToString())
    return await asyncio.to_thread(
        common.h2load,
        f"http://{target}{bench_status.METHOD}",
        body,
        seconds=seconds,
        connections=CONNECTIONS,
        streams=STREAMS,
    )


async def check_every_connection(target: str, job_id: str) -> None:
    """A real call on several fresh connections: each process answers with the job."""
    for _ in range(CHANNELS):
        async with grpc.aio.insecure_channel(target, options=OWN_CONNECTION) as channel:
            answer = await jobs_pb2_grpc.JobServiceStub(channel).GetJobStatus(
                jobs_pb2.GetJobStatusRequest(job_id=job_id), timeout=10
            )
        if answer.job_id != job_id:
            raise RuntimeError(f"{target} answered {answer.job_id!r} for {job_id!r}")


async def e2e_round(server: Child, count: int, callers: int) -> bench_e2e.Round:
    async with contextlib.AsyncExitStack() as stack:
        stubs = [
            jobs_pb2_grpc.JobServiceStub(
                await stack.enter_async_context(
                    grpc.aio.insecure_channel(server.found["grpc"], options=OWN_CONNECTION)
                )
            )
            for _ in range(CHANNELS)
        ]
        turn = itertools.cycle(stubs)
        return await bench_e2e.one_round(
            server, count, callers, lambda: bench_e2e.grpc_job(next(turn))
        )


async def measure(
    counts: Sequence[int], seconds: float, rounds: int, jobs: int, callers: int, interval_s: float
) -> tuple[dict[str, list[Load]], dict[int, list[bench_e2e.Round]]]:
    loads: dict[str, list[Load]] = {}
    e2e: dict[int, list[bench_e2e.Round]] = {}
    async with common.sandbox(lock_after=0, settle_after=0.1) as (_service, payments):
        for n in range(rounds):
            say(f"round {n + 1}/{rounds}")
            job_id = ""
            for processes in counts:
                with common.temp_dir("bench-processes-") as directory:
                    async with serving(payments, directory, processes, interval_s) as server:
                        target = server.found["grpc"]
                        job_id = (await common.start_jobs_grpc(target, bench_status.JOBS))[0].job_id
                        await check_every_connection(target, job_id)
                        load = await status_load(target, job_id, seconds)
                        loads.setdefault(f"p{processes}", []).append(load)
                        say(
                            f"  GetJobStatus, {processes} process(es): {load.rps:,.0f} req/s, "
                            f"p99 {load.p99_ms:.2f} ms, failed {load.failed}"
                        )
                        result = await e2e_round(server, jobs, callers)
                        e2e.setdefault(processes, []).append(result)
                        say(
                            f"  e2e, {processes} process(es): {result.jobs_per_s:.1f} jobs/s, "
                            f"p99 {result.p99_s:.2f} s, {result.cpu_ms_per_job:.1f} ms CPU/job, "
                            f"{result.failed} failed"
                        )
            async with common.ceiling([job_id]) as bare:
                await check_every_connection(bare.found["grpc"], job_id)
                load = await status_load(bare.found["grpc"], job_id, seconds)
                loads.setdefault("ceiling", []).append(load)
                say(f"  GetJobStatus, bare grpc.aio ceiling: {load.rps:,.0f} req/s")
    return loads, e2e


def report(
    loads: dict[str, list[Load]],
    e2e: dict[int, list[bench_e2e.Round]],
    seconds: float,
    jobs: int,
    callers: int,
    interval_s: float,
) -> list[str]:
    ceiling = loads["ceiling"]
    rows: list[list[object]] = [
        [
            "bare grpc.aio ceiling, 1 process",
            common.spread([x.rps for x in ceiling]),
            common.spread([x.p99_ms for x in ceiling], 2),
            "1.00",
            "-",
            sum(x.failed for x in ceiling),
        ]
    ]
    single = loads[f"p{min(e2e)}"]
    for processes in sorted(e2e):
        got = loads[f"p{processes}"]
        ratios = [a.rps / b.rps for a, b in zip(got, ceiling, strict=True)]
        scaling = [a.rps / b.rps for a, b in zip(got, single, strict=True)]
        rows.append(
            [
                f"agentjobs GetJobStatus, SQLite, --processes {processes}",
                common.spread([x.rps for x in got]),
                common.spread([x.p99_ms for x in got], 2),
                f"{common.median(ratios):.2f}",
                f"{common.median(scaling):.2f}",
                sum(x.failed for x in got),
            ]
        )
    e2e_rows = []
    one = e2e[min(e2e)]
    for processes in sorted(e2e):
        done = e2e[processes]
        scaled = [a.jobs_per_s / b.jobs_per_s for a, b in zip(done, one, strict=True)]
        e2e_rows.append(
            [
                f"agentjobs, SQLite, --processes {processes}, gRPC StartJob + WatchJob",
                common.spread([r.jobs_per_s for r in done], 1),
                f"{common.median(scaled):.2f}",
                common.spread([r.p50_s for r in done], 2),
                common.spread([r.p99_s for r in done], 2),
                common.spread([r.cpu_ms_per_job for r in done], 1),
                sum(r.failed for r in done),
            ]
        )
    rounds = len(ceiling)
    return [
        f"GetJobStatus, h2load -D {seconds:g} -c {CONNECTIONS} -m {STREAMS}, {rounds} rounds, "
        "median (min-max); ratios per round, then the median:",
        "",
        *common.table(
            ["variant", "req/s", "p99 ms", "ratio vs ceiling", "ratio vs 1 process", "failed"],
            rows,
        ),
        "",
        f"End to end, {jobs} jobs per round, {callers} callers over {CHANNELS} connections, "
        f"lock_after 0, settle_after 0.1 s, monitor interval {interval_s:g} s; ratio vs "
        "--processes 1:",
        "",
        *common.table(
            ["variant", "jobs/s", "ratio", "p50 s", "p99 s", "server CPU ms/job", "failed"],
            e2e_rows,
        ),
    ]


def run(
    counts: Sequence[int] = (1, 2),
    seconds: float = 10,
    rounds: int = 3,
    jobs: int = 300,
    callers: int = 32,
    interval_s: float = 1,
) -> list[str]:
    loads, e2e = asyncio.run(measure(counts, seconds, rounds, jobs, callers, interval_s))
    return report(loads, e2e, seconds, jobs, callers, interval_s)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_processes", description=__doc__)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--interval", type=float, default=1)
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",") if n]
    say(common.machine_line())
    say(
        "\n".join(
            [
                "",
                *run(counts, args.seconds, args.rounds, args.jobs, args.callers, args.interval),
            ]
        )
    )


if __name__ == "__main__":
    main()
