"""Open loop: jobs arrive at a fixed rate whatever the server's answers, stepped up
until the p99 of start -> completed passes a bound; the highest rate that held it.

    .venv/bin/python -m bench.bench_open_loop [--variants sqlite,pg1,pg3,sdk]
        [--rates 5,7,10,...] [--step-s S] [--rounds R] [--p99-bound S] [--interval S]

Unlike bench_e2e (closed loop: C callers, each waiting for its job before starting the
next, so the rate adapts to the server), here job n is started at t0 + n / rate, in a
task of its own, however many are still running: a server that falls behind builds a
queue, and the latency shows it. Latency runs from the job's scheduled arrival (not the
moment the call was made, so a late driver cannot hide a slow server) to the moment its
caller sees it completed.

Variants, each (per round) a fresh server on a fresh sandbox payment service (in this
process; it locks funds as soon as a payment is requested and settles each chain step
after 0.1 s):
- sqlite: agentjobs on a SQLite file (WAL, synchronous=FULL);
- pg1 / pg3: agentjobs on PostgreSQL (127.0.0.1:5432, database `test`; each run in a
  schema of its own, dropped afterwards) with 1 and 3 replicas (separate
  `agentjobs-server serve` processes on one schema; arrivals go round robin);
- sdk: the masumi SDK's server (bench/reference_server.py, in memory).
agentjobs callers use gRPC StartJob + WatchJob (the driver is one peer standing for many
callers, so the per-peer watch and per-connection stream limits are raised); the SDK's
use POST /start_job then GET /status every 0.1 s (its only way), which adds up to 0.1 s.
agentjobs polls the payment service every --interval s (default 1: a job's latency is at
least about one interval).

A step lasts --step-s seconds of arrivals; it holds when every job of the step completed
and p99 <= --p99-bound. Stepping stops at the first step that does not hold. Round 1
starts at the lowest rate; later rounds start two steps below round 1's highest holding
rate (the steps below it held in round 1) and, if that first step fails, step down until
one holds. Each step also records the server's CPU (all its
processes) and the driver's, as % of one core, to show what bound the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import grpc

from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from bench import common
from bench.common import Child, Payments, say

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
RATES = (5, 7, 10, 14, 20, 28, 40, 56, 80, 113, 160, 226, 320, 452)
SDK_POLL_S = 0.1
DRAIN_S = 30.0  # after a step's last arrival, how long its jobs may still take
VARIANTS = ("sqlite", "pg1", "pg3", "sdk")
LABELS = {
    "sqlite": "agentjobs, SQLite (synchronous=FULL), 1 process",
    "pg1": "agentjobs, PostgreSQL, 1 replica",
    "pg3": "agentjobs, PostgreSQL, 3 replicas",
    "sdk": "masumi SDK server (in memory)",
}
# One driver stands for many callers: lift the per-peer and per-connection limits.
OPEN_LIMITS = {
    "AGENTJOBS_MAX_WATCHES_PER_PEER": "100000",
    "AGENTJOBS_GRPC_MAX_STREAMS_PER_CONNECTION": "10000",
    "AGENTJOBS_MAX_CONCURRENT_RPCS": "100000",
}


@dataclass(frozen=True)
class Step:
    rate: float
    started: int
    completed: int
    p50_s: float
    p99_s: float
    server_cpu_pct: float
    driver_cpu_pct: float

    def holds(self, bound_s: float) -> bool:
        return self.completed == self.started and self.p99_s <= bound_s


Job = Callable[[], Awaitable[bool]]


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


async def http_job(session: aiohttp.ClientSession, base_url: str) -> bool:
    (job,) = await common.start_jobs_http(session, base_url, 1)
    while True:
        status = await common.http_status(session, base_url, job.job_id)
        if status in {"completed", "failed"}:
            return status == "completed"
        await asyncio.sleep(SDK_POLL_S)


async def one_step(
    servers: Sequence[Child], jobs: Sequence[Job], rate: float, step_s: float
) -> Step:
    """Arrivals at `rate` for `step_s`, round robin over `jobs`; waits for them all."""
    count = max(1, round(rate * step_s))
    latencies: list[float] = []
    outcomes: list[bool] = []

    async def arrival(n: int, due: float) -> None:
        try:
            ok = await asyncio.wait_for(jobs[n % len(jobs)](), step_s + DRAIN_S)
        except Exception:  # a refused, failed or timed-out job does not complete
            ok = False
        if ok:
            latencies.append(time.monotonic() - due)
        outcomes.append(ok)

    cpu = sum(server.cpu_seconds() for server in servers)
    driver = common.driver_cpu_seconds()
    began = time.monotonic()
    tasks = []
    for n in range(count):
        due = began + n / rate
        if (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(arrival(n, due)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - began
    return Step(
        rate=rate,
        started=count,
        completed=outcomes.count(True),
        p50_s=common.percentile(latencies, 50),
        p99_s=common.percentile(latencies, 99) if len(latencies) == count else float("inf"),
        server_cpu_pct=100 * (sum(s.cpu_seconds() for s in servers) - cpu) / elapsed,
        driver_cpu_pct=100 * (common.driver_cpu_seconds() - driver) / elapsed,
    )


async def drop_schema(schema: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def replicas(
    payments: Payments, directory: Path, count: int, interval_s: float
) -> AsyncIterator[list[Child]]:
    """`count` agentjobs-server processes on one fresh PostgreSQL schema (dropped after);
    the first is up (and has migrated) before the others start."""
    schema = f"bench_open_loop_{secrets.token_hex(6)}"
    url = f"{POSTGRES_URL}?schema={schema}"
    try:
        async with contextlib.AsyncExitStack() as stack:
            started = []
            for _ in range(count):
                server = await stack.enter_async_context(
                    common.ours(
                        payments,
                        directory,
                        monitor_interval_s=interval_s,
                        database=url,
                        env=OPEN_LIMITS,
                    )
                )
                started.append(server)
            yield started
    finally:
        await drop_schema(schema)


@contextlib.asynccontextmanager
async def variant(
    name: str,
    payments: Payments,
    directory: Path,
    session: aiohttp.ClientSession,
    interval_s: float,
) -> AsyncIterator[tuple[list[Child], list[Job]]]:
    if name == "sdk":
        async with common.reference(payments) as masumi:
            base_url = masumi.found["http"]
            yield [masumi], [lambda: http_job(session, base_url)]
        return
    async with contextlib.AsyncExitStack() as stack:
        if name == "sqlite":
            servers = [
                await stack.enter_async_context(
                    common.ours(payments, directory, monitor_interval_s=interval_s, env=OPEN_LIMITS)
                )
            ]
        else:
            servers = await stack.enter_async_context(
                replicas(payments, directory, int(name.removeprefix("pg")), interval_s)
            )
        jobs: list[Job] = []
        for server in servers:
            channel = await stack.enter_async_context(
                grpc.aio.insecure_channel(server.found["grpc"])
            )
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            jobs.append(lambda stub=stub: grpc_job(stub))  # type: ignore[misc]
        yield servers, jobs


async def climb(
    servers: Sequence[Child],
    jobs: Sequence[Job],
    rates: Sequence[float],
    start: int,
    step_s: float,
    bound_s: float,
) -> list[Step]:
    """Up from rates[start] until a step fails; if the very first one fails, down from
    there until one holds (or the lowest rate failed too)."""
    steps: list[Step] = []

    async def attempt(rate: float) -> bool:
        step = await one_step(servers, jobs, rate, step_s)
        steps.append(step)
        say(
            f"    {rate:g}/s: {step.completed}/{step.started} completed, p50 {step.p50_s:.2f} s, "
            f"p99 {step.p99_s:.2f} s, server CPU {step.server_cpu_pct:.0f}%, "
            f"driver CPU {step.driver_cpu_pct:.0f}%"
        )
        return step.holds(bound_s)

    for rate in rates[start:]:
        if not await attempt(rate):
            break
    if len(steps) == 1 and not steps[0].holds(bound_s):
        for rate in reversed(rates[:start]):
            if await attempt(rate):
                break
    return steps


def sustained(steps: Sequence[Step], bound_s: float) -> Step | None:
    """The step with the highest rate that held."""
    held = [step for step in steps if step.holds(bound_s)]
    return max(held, key=lambda step: step.rate) if held else None


def first_failed(steps: Sequence[Step], bound_s: float) -> Step | None:
    """The step with the lowest rate that did not hold."""
    failed = [step for step in steps if not step.holds(bound_s)]
    return min(failed, key=lambda step: step.rate) if failed else None


async def measure(
    names: Sequence[str],
    rates: Sequence[float],
    step_s: float,
    rounds: int,
    bound_s: float,
    interval_s: float,
) -> dict[str, list[list[Step]]]:
    results: dict[str, list[list[Step]]] = {}
    for n in range(rounds):
        say(f"round {n + 1}/{rounds}")
        for name in names:
            start = 0
            if results.get(name):
                best = sustained(results[name][0], bound_s)
                if best is not None:
                    start = max(0, list(rates).index(best.rate) - 2)
            say(f"  {name} from {rates[start]:g}/s")
            # A fresh payment service, server and database per variant and round: the
            # sandbox keeps moving earlier rounds' payments along the chain.
            async with (
                common.sandbox(lock_after=0, settle_after=0.1) as (_service, payments),
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
            ):
                with common.temp_dir("bench-open-loop-db-") as db_dir:
                    async with variant(name, payments, db_dir, session, interval_s) as (
                        servers,
                        jobs,
                    ):
                        steps = await climb(servers, jobs, rates, start, step_s, bound_s)
            results.setdefault(name, []).append(steps)
    return results


def report(
    results: dict[str, list[list[Step]]], step_s: float, bound_s: float, interval_s: float
) -> list[str]:
    rows = []
    base = results.get("sdk")
    for name, rounds in results.items():
        best = [sustained(steps, bound_s) for steps in rounds]
        rates = [b.rate if b is not None else 0.0 for b in best]
        held = [b for b in best if b is not None]
        failures = [f for steps in rounds if (f := first_failed(steps, bound_s)) is not None]
        ratio = "-"
        if base is not None:
            base_rates = [
                (b.rate if (b := sustained(steps, bound_s)) is not None else 0.0) for steps in base
            ]
            ratios = [a / b for a, b in zip(rates, base_rates, strict=True) if b]
            ratio = f"{common.median(ratios):.2f}" if ratios else "-"
        rows.append(
            [
                LABELS[name],
                common.spread(rates, 0),
                ratio,
                common.spread([b.p50_s for b in held], 2),
                common.spread([b.p99_s for b in held], 2),
                common.spread([b.server_cpu_pct for b in held], 0),
                common.spread([b.driver_cpu_pct for b in held], 0),
                "; ".join(
                    f"{s.rate:g}/s: p99 {s.p99_s:.2f} s, {s.completed}/{s.started} done, "
                    f"server {s.server_cpu_pct:.0f}%"
                    for s in failures
                )
                or "none failed",
            ]
        )
    header = [
        "server",
        "highest sustained jobs/s",
        "ratio vs SDK",
        "p50 s at it",
        "p99 s at it",
        "server CPU % of a core",
        "driver CPU %",
        "first step that failed (per round)",
    ]
    round_count = max(len(steps) for steps in results.values())
    return [
        f"Open loop: arrivals at a fixed rate for {step_s:g} s per step, stepped up until "
        f"p99 start -> completed > {bound_s:g} s or a job did not complete; lock_after 0, "
        f"settle_after 0.1 s, agentjobs monitor interval {interval_s:g} s; {round_count} rounds, "
        "median (min-max):",
        "",
        *common.table(header, rows),
    ]


def run(
    names: Sequence[str] = VARIANTS,
    rates: Sequence[float] = RATES,
    step_s: float = 10,
    rounds: int = 3,
    bound_s: float = 2.0,
    interval_s: float = 1.0,
) -> list[str]:
    results = asyncio.run(measure(names, rates, step_s, rounds, bound_s, interval_s))
    return report(results, step_s, bound_s, interval_s)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_open_loop", description=__doc__)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES))
    parser.add_argument("--step-s", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--p99-bound", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    names = [name for name in args.variants.split(",") if name]
    if unknown := set(names) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}")
    rates = [float(rate) for rate in args.rates.split(",") if rate]
    say(common.machine_line())
    say(
        "\n".join(
            [
                "",
                *run(names, rates, args.step_s, args.rounds, args.p99_bound, args.interval),
            ]
        )
    )


if __name__ == "__main__":
    main()
