"""Helpers of the services suite: start jobs, follow them, read their history."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

from agentjobs.server.domain import EventType, Invoice, Job, JobEvent
from agentjobs.server.testing import RunningServer


def purchaser() -> str:
    """A fresh identifierFromPurchaser (hex, 16 characters)."""
    return secrets.token_hex(8)


async def start(server: RunningServer, **input_data: Any) -> Job:
    return await server.app.jobs.start_job(purchaser(), input_data)


async def watch_until(
    server: RunningServer,
    job_id: str,
    done: Callable[[Job], bool] = lambda job: job.is_terminal,
    within_s: float = 10,
) -> Job:
    """The job once `done` holds for it (or once it is terminal), from WatchJob's stream."""
    async with asyncio.timeout(within_s), aclosing(server.app.jobs.watch(job_id)) as updates:
        async for job, _event in updates:
            if done(job):
                return job
    return job


async def history(server: RunningServer, job_id: str) -> list[JobEvent]:
    return await server.app.repository.events(job_id)


async def event_types(server: RunningServer, job_id: str) -> list[EventType]:
    return [event.type for event in await history(server, job_id)]


async def invoice(server: RunningServer, job: Job) -> Invoice:
    _job, found = await server.app.repository.get_with_invoice(job.job_id)
    assert found is not None, f"job {job.job_id} has no invoice"
    return found


async def poll_round(server: RunningServer, within_s: float = 10) -> bool:
    """One whole payment-monitor round that began after this call; True if it succeeded."""
    monitor = server.app.monitor
    assert monitor is not None, "this server runs no payment monitor"
    async with asyncio.timeout(within_s):
        return await monitor.poll_round()
