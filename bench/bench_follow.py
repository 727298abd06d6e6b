"""Following 1,000 jobs to completion: what the server's CPU pays for WatchJob streams
against callers polling GetJobStatus once a second.

    .venv/bin/python -m bench.bench_follow [--jobs N] [--rounds R] [--lock-over S]

Each mode gets a fresh agentjobs (SQLite, monitor interval 1 s) and the in-process
sandbox as its payment service (the buyer pays only when told). N jobs are started;
then the followers attach (watch: one WatchJob stream per job on one channel; poll: one
task per job calling GetJobStatus every second, phases spread over the first second;
none: nobody follows, the baseline); then the buyer locks the N payments evenly over
--lock-over seconds, and the clock stops when every follower has seen its job completed
(none: when the sandbox has every result). Server CPU is utime + stime from /proc over
that span. Modes run back to back in each round; R rounds, median (min-max).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import grpc

from agentjobs.server.payments.sandbox import SandboxPaymentService, add_request_observer
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from bench import common
from bench.common import Started, say

MODES = ("none", "watch", "poll")
COMPLETED = jobs_pb2.JOB_STATUS_COMPLETED


@dataclass(frozen=True)
class Span:
    seconds: float
    cpu_s: float


async def watch(stub: jobs_pb2_grpc.JobServiceStub, job_id: str, attached: asyncio.Event) -> None:
    async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
        attached.set()
        if update.job.status == COMPLETED:
            return


async def poll(stub: jobs_pb2_grpc.JobServiceStub, job_id: str, attached: asyncio.Event) -> None:
    await asyncio.sleep(random.random())
    while True:
        began = time.monotonic()
        answer = await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=job_id), timeout=30)
        attached.set()
        if answer.status == COMPLETED:
            return
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - began)))


async def lock_all(service: SandboxPaymentService, jobs: list[Started], over_s: float) -> None:
    gap = over_s / max(1, len(jobs))
    for job in jobs:
        await service.lock_funds(job.blockchain_identifier)
        await asyncio.sleep(gap)


async def one_mode(mode: str, count: int, lock_over_s: float) -> Span:
    results: set[str] = set()
    everything_submitted = asyncio.Event()

    def observe(method: str, path: str, body: Any) -> None:
        if path == "/payment/submit-result" and isinstance(body, dict):
            results.add(str(body.get("blockchainIdentifier")))
            if len(results) >= count:
                everything_submitted.set()

    remove = add_request_observer(observe)
    try:
        with common.temp_dir("bench-follow-") as directory:
            async with (
                common.sandbox(lock_after=None, settle_after=0.2) as (service, payments),
                common.ours(payments, directory, monitor_interval_s=1) as server,
                grpc.aio.insecure_channel(server.found["grpc"]) as channel,
            ):
                jobs = await common.start_jobs_grpc(server.found["grpc"], count)
                stub = jobs_pb2_grpc.JobServiceStub(channel)
                follower = {"watch": watch, "poll": poll}.get(mode)
                followers: list[asyncio.Task[None]] = []
                if follower is not None:
                    attached = [asyncio.Event() for _ in jobs]
                    followers = [
                        asyncio.create_task(follower(stub, job.job_id, flag))
                        for job, flag in zip(jobs, attached, strict=True)
                    ]
                    await asyncio.gather(*(flag.wait() for flag in attached))
                cpu, began = server.cpu_seconds(), time.monotonic()
                await lock_all(service, jobs, lock_over_s)
                if followers:
                    await asyncio.gather(*followers)
                else:
                    await everything_submitted.wait()
                return Span(time.monotonic() - began, server.cpu_seconds() - cpu)
    finally:
        remove()


async def measure(count: int, rounds: int, lock_over_s: float) -> dict[str, list[Span]]:
    spans: dict[str, list[Span]] = {}
    for n in range(rounds):
        say(f"round {n + 1}/{rounds}")
        for mode in MODES:
            span = await one_mode(mode, count, lock_over_s)
            spans.setdefault(mode, []).append(span)
            say(f"  {mode}: {span.seconds:.1f} s, server CPU {span.cpu_s:.2f} s")
    return spans


def report(spans: dict[str, list[Span]], count: int, lock_over_s: float) -> list[str]:
    base = spans["none"]
    rows = []
    for mode, label in (
        ("none", "nobody follows (baseline)"),
        ("watch", f"{count:,} WatchJob streams"),
        ("poll", f"{count:,} callers polling GetJobStatus at 1 Hz"),
    ):
        got = spans[mode]
        extra = [a.cpu_s - b.cpu_s for a, b in zip(got, base, strict=True)]
        rows.append(
            [
                label,
                common.spread([s.seconds for s in got], 1),
                common.spread([s.cpu_s for s in got], 2),
                "-" if mode == "none" else common.spread(extra, 2),
                common.spread([1000 * s.cpu_s / count for s in got], 1),
            ]
        )
    header = ["followers", "span s", "server CPU s", "CPU s beyond baseline", "CPU ms per job"]
    return [
        f"{count:,} jobs locked over {lock_over_s:g} s, followed to completed; "
        f"{len(base)} rounds, median (min-max):",
        "",
        *common.table(header, rows),
    ]


def run(count: int = 1000, rounds: int = 3, lock_over_s: float = 20) -> list[str]:
    return report(asyncio.run(measure(count, rounds, lock_over_s)), count, lock_over_s)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_follow", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lock-over", type=float, default=20)
    args = parser.parse_args()
    say(common.machine_line())
    say("\n".join(["", *run(args.jobs, args.rounds, args.lock_over)]))


if __name__ == "__main__":
    main()
