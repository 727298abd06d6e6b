"""Replicas of one service on one database: separate `agentjobs-server serve` processes,
the standalone sandbox payment service, an agent that takes a few seconds, jobs
started round-robin over gRPC, and one replica SIGKILLed while it runs jobs.

Checked: every job completes with its result; exactly one accepted submit-result per
payment; no paid job is left awaiting payment; the killed replica's runs are taken over
within lease + 5 s; one replica leads the payment monitor and the diff is polled as by
one; a WatchJob on one replica sees a transition made on another within 1 s.

PostgreSQL with 3 replicas (LISTEN/NOTIFY), and SQLite with 2 processes on one file
(PRAGMA data_version).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import struct_pb2

from agentjobs.v1 import jobs_pb2
from tests.reliability.cluster import (
    SandboxProcess,
    job_stub,
    list_replicas,
    purchaser,
    replica_env,
    start_replicas,
    start_sandbox,
)
from tests.reliability.server_process import ServerProcess
from tests.repository.conftest import POSTGRES_URL, require_postgres
from tests.support import free_port

pytestmark = pytest.mark.slow

# More than the replicas run at once (8 each): some start after others finished.
JOBS = 32
LEASE_S = 3.0
MONITOR_INTERVAL_S = 0.5
STARTED = jobs_pb2.JOB_EVENT_TYPE_STARTED
COMPLETED = jobs_pb2.JOB_EVENT_TYPE_COMPLETED
RESULT_STORED = jobs_pb2.JOB_EVENT_TYPE_RESULT_STORED


@dataclass
class Followed:
    """One job as a WatchJob stream on the first replica saw it."""

    job_id: str
    text: str
    bid: str = ""
    # (local monotonic time seen, event) per event.
    events: list[tuple[float, jobs_pb2.JobEvent]] = field(default_factory=list)
    final: jobs_pb2.Job | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def started_on(self) -> list[tuple[float, str]]:
        """(when, detail) of every STARTED event, by the writer's clock."""
        return [(written(e), e.detail) for _, e in self.events if e.type == STARTED]

    def written(self, kind: int) -> list[float]:
        return [written(e) for _, e in self.events if e.type == kind]


def written(event: jobs_pb2.JobEvent) -> float:
    """When the event was written (epoch seconds, the writer's clock: same host)."""
    return event.event_time.seconds + event.event_time.nanos / 1e9


@asynccontextmanager
async def database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'cluster.db'}"
        return
    await require_postgres()
    schema = f"agentjobs_cluster_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


async def follow(
    channel: grpc.aio.Channel, job: Followed, saw: Callable[[str, jobs_pb2.JobEvent], None]
) -> None:
    async for update in job_stub(channel).WatchJob(jobs_pb2.WatchJobRequest(job_id=job.job_id)):
        if update.HasField("event"):
            job.events.append((time.monotonic(), update.event))
            saw(job.job_id, update.event)
        job.final = update.job
    job.done.set()


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


@pytest.mark.parametrize(("kind", "replicas"), [("postgres", 3), ("sqlite", 2)])
async def test_replicas_share_the_work_and_survive_a_killed_one(
    tmp_path: Path, kind: str, replicas: int
) -> None:
    sandbox: SandboxProcess = await start_sandbox(free_port(), lock_after=0.3, job_interval=0.2)
    processes: list[ServerProcess] = []
    try:
        async with database(kind, tmp_path) as url:
            names = [f"replica-{n}" for n in range(replicas)]
            processes = await start_replicas(
                tmp_path,
                [
                    replica_env(
                        sandbox,
                        url,
                        name,
                        AGENTJOBS_LEASE_S=str(LEASE_S),
                        AGENTJOBS_MONITOR_INTERVAL_S=str(MONITOR_INTERVAL_S),
                    )
                    for name in names
                ],
            )
            await run_the_cluster(sandbox, processes, names)
    finally:
        for process in processes:
            if process.process.returncode is None:
                await process.kill()
        await sandbox.stop()


async def run_the_cluster(
    sandbox: SandboxProcess, processes: list[ServerProcess], names: list[str]
) -> None:
    victim, watcher = names[-1], names[0]
    channels = [grpc.aio.insecure_channel(p.grpc_target) for p in processes]
    try:
        # Every job followed from the first replica from its start, whichever replica
        # runs it.
        # Killed once it has finished a job (so another replica's watcher has followed
        # its transitions) and is running another.
        victim_runs = asyncio.Event()
        victim_finished: set[str] = set()
        ran_on: dict[str, str] = {}

        def saw(job_id: str, event: jobs_pb2.JobEvent) -> None:
            if event.type == STARTED:
                ran_on[job_id] = event.detail
                if victim_finished and event.detail.endswith(f"on {victim}"):
                    victim_runs.set()
            elif event.type == COMPLETED and ran_on.get(job_id, "").endswith(f"on {victim}"):
                victim_finished.add(job_id)

        jobs: list[Followed] = []
        follows: list[asyncio.Task[None]] = []

        async def start(n: int) -> None:
            text = f"job {n}"
            started = await job_stub(channels[n % len(channels)]).StartJob(
                jobs_pb2.StartJobRequest(
                    identifier_from_purchaser=purchaser(),
                    input_data=struct({"text": text}),
                    request_id=f"cluster-{n}",
                ),
                timeout=20,
            )
            job = Followed(started.job_id, text, started.blockchain_identifier)
            jobs.append(job)
            follows.append(asyncio.create_task(follow(channels[0], job, saw)))

        for n in range(JOBS):
            await start(n)
        # Kill the victim as soon as it is running an agent. Which replica claims a job is
        # a race: should the others have taken every job left once the victim finished
        # its first, give it more until it takes one.
        async with asyncio.timeout(60):
            while not victim_runs.is_set():
                try:
                    await asyncio.wait_for(victim_runs.wait(), 2)
                except TimeoutError:
                    if victim_finished:
                        await start(len(jobs))
        await processes[-1].kill()
        killed_at = time.time()

        async with asyncio.timeout(90):
            await asyncio.gather(*follows)

        # Every job completed with its result.
        for job in jobs:
            assert job.final is not None
            assert job.final.status == jobs_pb2.JOB_STATUS_COMPLETED, job.final
            assert job.final.result == job.text.upper() + "!"

        # The victim's unfinished runs were taken over within lease + 5 s.
        taken_over = 0
        takeover_s: list[float] = []
        for job in jobs:
            runs = job.started_on()
            on_victim = [seen for seen, detail in runs if detail.endswith(f"on {victim}")]
            completed = job.written(COMPLETED)
            if on_victim and completed and completed[0] > killed_at:
                stored = [at for at in job.written(RESULT_STORED) if at <= killed_at]
                if stored:
                    # Killed while submitting: another replica takes the submission on.
                    assert completed[0] - killed_at <= LEASE_S + 5, completed[0] - killed_at
                    takeover_s.append(completed[0] - killed_at)
                else:
                    again = [seen for seen, detail in runs if seen > killed_at]
                    assert again, f"{job.job_id} was not run again after the kill"
                    assert again[0] - killed_at <= LEASE_S + 5, again[0] - killed_at
                    takeover_s.append(again[0] - killed_at)
                taken_over += 1
        assert taken_over >= 1, "the kill landed while the victim ran a job"

        # Nothing written twice: each of these events once per job.
        once = (jobs_pb2.JOB_EVENT_TYPE_FUNDS_LOCKED, RESULT_STORED, COMPLETED)
        for job in jobs:
            types = [e.type for _, e in job.events]
            for kind in once:
                assert types.count(kind) <= 1, (job.job_id, types)

        # Exactly one accepted submit-result per payment.
        report = await sandbox.requests()
        for job in jobs:
            calls = report["payments"].get(job.bid, {})
            assert len(calls.get("acceptedSubmitResults", [])) == 1, (job.job_id, calls)

        # A transition made on another replica reached the watcher within 1 s. The
        # event time is the writer's clock; all replicas run on this host.
        delays = []
        for job in jobs:
            runs = job.started_on()
            if runs and not runs[-1][1].endswith(f"on {watcher}"):
                for seen_at, event in job.events:
                    if event.type == COMPLETED:
                        wall_seen = time.time() - (time.monotonic() - seen_at)
                        delays.append(wall_seen - written(event))
        assert delays, "some jobs ran on other replicas than the watcher's"
        assert max(delays) < 1.0, sorted(delays)[-5:]

        # One leader; the diff is polled as by one replica.
        alive = await list_replicas(processes[0].grpc_target)
        leaders = [r.replica_id for r in alive if r.leads_payment_monitor]
        assert len(leaders) == 1 and leaders[0] != victim, leaders
        assert {r.replica_id for r in alive} >= set(names[:-1])
        before = await diff_requests(sandbox)
        window_s = 10 * MONITOR_INTERVAL_S
        began = time.monotonic()
        await asyncio.sleep(window_s)  # a measurement window, not a wait for an event
        rounds = (time.monotonic() - began) / MONITOR_INTERVAL_S
        polled = await diff_requests(sandbox) - before
        assert polled <= 1.5 * rounds + 3, (polled, rounds)
        # The figures docs/RELIABILITY.md quotes (pytest -s shows them).
        print(
            f"\ncluster {names}: {len(jobs)} jobs, {taken_over} taken over in "
            f"{min(takeover_s):.1f}-{max(takeover_s):.1f} s (lease {LEASE_S:g} s), "
            f"watch delay median {sorted(delays)[len(delays) // 2]:.3f} s max "
            f"{max(delays):.3f} s over {len(delays)}, diff polled {polled} times "
            f"in {rounds:.1f} intervals"
        )
    finally:
        for channel in channels:
            await channel.close()


async def diff_requests(sandbox: SandboxProcess) -> int:
    report = await sandbox.requests()
    return sum(
        entry["count"]
        for entry in report["requests"]
        if entry["method"] == "GET" and entry["path"] == "/api/v1/payment/diff"
    )
