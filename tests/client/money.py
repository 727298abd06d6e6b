"""A live server's payments driven from a CLI test: the buyer, the chain and the monitor."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from agentjobs.client import JobClient
from agentjobs.server.domain import Job
from agentjobs.server.testing import ThreadedServer
from agentjobs.v1 import jobs_pb2
from tests.client.helpers import CliResult, assert_ok

Cli = Callable[..., CliResult]


class Chain:
    """The server's sandbox and monitor, driven from the test thread."""

    def __init__(self, server: ThreadedServer, cli: Cli, client: JobClient) -> None:
        self.server = server
        self.app = server.running.app
        self.sandbox = server.sandbox
        self.cli = cli
        self.client = client
        assert self.app.monitor is not None
        self.monitor = self.app.monitor

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.server.call(asyncio.wait_for(coroutine, 20))

    def start(self, text: str) -> tuple[str, str]:
        started = assert_ok(self.cli("start", "--input", f"text={text}", "--json")).json()
        return started["job_id"], started["blockchain_identifier"]

    def settle(self, bid: str, on_chain_state: str) -> None:
        """Waits for the chain, then has the monitor apply it before returning."""
        self.run(self.sandbox.wait_for(bid, on_chain_state=on_chain_state))
        self.run(self.monitor.poll_once())

    def submitted(self, text: str) -> tuple[str, str]:
        """A job completed whose result is on chain (ResultSubmitted), as the books know."""
        job_id, bid = self.start(text)
        self.run(self.sandbox.lock_funds(bid))
        assert self.client.wait(job_id, timeout=20).status == jobs_pb2.JOB_STATUS_COMPLETED
        self.settle(bid, "ResultSubmitted")
        return job_id, bid

    def disputed(self, text: str) -> tuple[str, str]:
        """The buyer asks for a refund after the result reached the chain: V1 Disputed."""
        job_id, bid = self.submitted(text)
        self.run(self.sandbox.request_refund(bid))
        self.settle(bid, "Disputed")
        return job_id, bid

    def job_until(self, job_id: str, done: Callable[[Job], bool]) -> Job:
        """The job once `done` holds for it, woken by every write to it."""
        repository = self.app.repository

        async def until() -> Job:
            with repository.changes.subscribe(job_id) as changed:
                while True:
                    changed.clear()
                    job = await repository.get(job_id)
                    if done(job):
                        return job
                    await changed.wait()

        result: Job = self.run(until())
        return result
