"""The payment monitor with many pending payments: agentjobs' one diff poll per round
against the masumi SDK's one resolve-blockchain-identifier poll per payment.

    .venv/bin/python -m bench.bench_monitor [--pending 1000,10000] [--sample 100]
        [--interval 10] [--window 30] [--create-limit 300]

For each count of pending payments, each server in turn (fresh, with the sandbox in
this process as its payment service, the buyer paying only when told):
1. N jobs are started over the server's own API (agentjobs: gRPC StartJob; the SDK:
   POST /start_job), 32 at a time; the SDK server's creation is cut at --create-limit
   seconds (its per-payment polling grows with every job, so it slows down as it goes);
   the table says how many were reached;
2. after one interval to settle, the sandbox counts every request for --window seconds:
   requests per monitor interval, and the CPU the payment service (the sandbox, in this
   process) and the server spent per interval;
3. the buyer locks funds for --sample of the jobs, spread evenly over two intervals;
   FundsLocked -> running is measured as lock -> the server's submit-result arriving at
   the sandbox (the demo agent answers at once, so this bounds lock -> RUNNING from
   above by the agent's run and the result write, a few ms).

agentjobs runs with AGENTJOBS_MONITOR_INTERVAL_S = --interval (default 10 s, the SDK's
own `start_status_monitoring(interval_seconds=10)`, which MasumiAgentServer does not let
one change; the SDK also sleeps 1 s after each check pass and 5 s when nothing is due,
so each payment is in fact checked every ~11 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from collections import Counter
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from agentjobs.server.payments.sandbox import SandboxPaymentService, add_request_observer
from bench import common
from bench.common import Child, Payments, Started, say

SUBMIT = "/payment/submit-result"


@dataclass
class Locks:
    """Lock times of the sample and submit-result arrivals, both by blockchainIdentifier."""

    locked: dict[str, float] = field(default_factory=dict)
    submitted: dict[str, float] = field(default_factory=dict)
    wanted: int = 0
    all_seen: asyncio.Event = field(default_factory=asyncio.Event)

    def saw_submit(self, blockchain_identifier: str) -> None:
        self.submitted.setdefault(blockchain_identifier, time.monotonic())
        self.check()

    def check(self) -> None:
        if self.wanted and sum(b in self.submitted for b in self.locked) >= self.wanted:
            self.all_seen.set()


@dataclass
class Outcome:
    server: str
    wanted: int
    pending: int = 0
    create_s: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    window_s: float = 0.0
    sandbox_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    server_rss_mib: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    missing: int = 0


async def create(
    server: Child, kind: str, count: int, limit_s: float, session: aiohttp.ClientSession
) -> list[Started]:
    """Start up to `count` jobs, in batches, until the time limit."""
    started: list[Started] = []
    deadline = time.monotonic() + limit_s
    while len(started) < count and time.monotonic() < deadline:
        batch = min(500, count - len(started))
        if kind == "agentjobs":
            started += await common.start_jobs_grpc(server.found["grpc"], batch)
        else:
            started += await common.start_jobs_http(session, server.found["http"], batch)
    return started


async def scenario(
    kind: str,
    pending: int,
    *,
    sample: int,
    interval_s: float,
    window_s: float,
    create_limit_s: float,
) -> Outcome:
    outcome = Outcome(kind, pending)
    locks = Locks()

    def observe(method: str, path: str, body: Any) -> None:
        if path == SUBMIT and isinstance(body, dict):
            locks.saw_submit(str(body.get("blockchainIdentifier")))

    remove = add_request_observer(observe)
    try:
        with common.temp_dir("bench-monitor-") as directory:
            async with (
                common.sandbox(lock_after=None, settle_after=0.2) as (service, payments),
                aiohttp.ClientSession() as session,
                _server(kind, payments, directory, interval_s) as server,
            ):
                began = time.monotonic()
                limit = create_limit_s if kind == "masumi" else 10 * create_limit_s
                jobs = await create(server, kind, pending, limit, session)
                outcome.pending, outcome.create_s = len(jobs), time.monotonic() - began
                say(f"  {kind}: {len(jobs):,} pending after {outcome.create_s:.0f} s")
                await asyncio.sleep(interval_s)
                await _window(outcome, service, server, window_s)
                await _locks(outcome, service, jobs, locks, sample, interval_s)
    finally:
        remove()
    return outcome


def _server(
    kind: str, payments: Payments, directory: Any, interval_s: float
) -> AbstractAsyncContextManager[Child]:
    if kind == "agentjobs":
        return common.ours(payments, directory, monitor_interval_s=interval_s)
    return common.reference(payments)


async def _window(
    outcome: Outcome, service: SandboxPaymentService, server: Child, window_s: float
) -> None:
    counts_before = Counter(service.request_counts)
    sandbox_cpu, server_cpu = common.driver_cpu_seconds(), server.cpu_seconds()
    began = time.monotonic()
    await asyncio.sleep(window_s)
    outcome.window_s = time.monotonic() - began
    outcome.sandbox_cpu_s = common.driver_cpu_seconds() - sandbox_cpu
    outcome.server_cpu_s = server.cpu_seconds() - server_cpu
    outcome.server_rss_mib = server.rss_mib()
    for (method, path), count in service.request_counts.items():
        done = count - counts_before[(method, path)]
        if done:
            outcome.requests[f"{method} {path.removeprefix('/api/v1')}"] += done


async def _locks(
    outcome: Outcome,
    service: SandboxPaymentService,
    jobs: list[Started],
    locks: Locks,
    sample: int,
    interval_s: float,
) -> None:
    chosen = random.sample(jobs, min(sample, len(jobs)))
    locks.wanted = len(chosen)
    gap = 2 * interval_s / max(1, len(chosen))
    for job in chosen:
        await service.lock_funds(job.blockchain_identifier)
        locks.locked[job.blockchain_identifier] = time.monotonic()
        await asyncio.sleep(gap)
    locks.check()
    # Stragglers get three more intervals and a minute (the SDK's passes at 10k).
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(locks.all_seen.wait(), 3 * interval_s + 60)
    outcome.latencies_s = sorted(
        locks.submitted[b] - t for b, t in locks.locked.items() if b in locks.submitted
    )
    outcome.missing = len(locks.locked) - len(outcome.latencies_s)


def report(outcomes: list[Outcome], interval_s: float) -> list[str]:
    rows = []
    for o in outcomes:
        per_interval = interval_s / o.window_s if o.window_s else 0.0
        total = sum(o.requests.values())
        paths = ", ".join(f"{path} {n * per_interval:,.0f}" for path, n in o.requests.items())
        latency = o.latencies_s
        rows.append(
            [
                "agentjobs (diff)" if o.server == "agentjobs" else "masumi SDK (resolve/payment)",
                f"{o.pending:,}" + ("" if o.pending == o.wanted else f" of {o.wanted:,}"),
                f"{o.create_s:.0f}",
                f"{total * per_interval:,.0f}",
                paths or "-",
                f"{o.sandbox_cpu_s * per_interval:.2f}",
                f"{o.server_cpu_s * per_interval:.2f}",
                f"{o.server_rss_mib:.0f}",
                f"{common.percentile(latency, 50):.1f}",
                f"{common.percentile(latency, 99):.1f}",
                f"{len(latency)}/{len(latency) + o.missing}",
            ]
        )
    header = [
        "server",
        "pending",
        "s to create",
        f"requests per {interval_s:g} s",
        "by path",
        f"payment-service CPU s per {interval_s:g} s",
        f"server CPU s per {interval_s:g} s",
        "server RSS MiB",
        "lock->run p50 s",
        "p99 s",
        "seen",
    ]
    return common.table(header, rows)


async def measure(
    pendings: list[int], sample: int, interval_s: float, window_s: float, create_limit_s: float
) -> list[Outcome]:
    outcomes = []
    for pending in pendings:
        for kind in ("agentjobs", "masumi"):
            say(f"{kind}, {pending:,} pending payments")
            outcome = await scenario(
                kind,
                pending,
                sample=sample,
                interval_s=interval_s,
                window_s=window_s,
                create_limit_s=create_limit_s,
            )
            say(f"  {report([outcome], interval_s)[-1]}")
            outcomes.append(outcome)
    return outcomes


def run(
    pendings: tuple[int, ...] = (1000, 10_000),
    sample: int = 100,
    interval_s: float = 10,
    window_s: float = 30,
    create_limit_s: float = 300,
) -> list[str]:
    outcomes = asyncio.run(measure(list(pendings), sample, interval_s, window_s, create_limit_s))
    return [
        f"Monitor interval {interval_s:g} s (agentjobs; the SDK's fixed default), window "
        f"{window_s:g} s, {sample} locks spread over {2 * interval_s:g} s, one run per row:",
        "",
        *report(outcomes, interval_s),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_monitor", description=__doc__)
    parser.add_argument("--pending", default="1000,10000", help="comma-separated counts")
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--window", type=float, default=30)
    parser.add_argument("--create-limit", type=float, default=300)
    args = parser.parse_args()
    say(common.machine_line())
    pendings = tuple(int(n) for n in args.pending.split(","))
    lines = run(pendings, args.sample, args.interval, args.window, args.create_limit)
    say("\n".join(["", *lines]))


if __name__ == "__main__":
    main()
