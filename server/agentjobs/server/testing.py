"""A whole server on ephemeral loopback ports with the sandbox payment service, for
tests and benchmarks of this project and of agents built on it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agentjobs.server.agent import Agent
from agentjobs.server.app import App
from agentjobs.server.config import Settings
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.payments.sandbox.clock import Clock as SandboxClock

TEST_OPERATOR_TOKEN = "test-operator-token"

T = TypeVar("T")


@dataclass
class RunningServer:
    app: App
    grpc_target: str
    http_url: str
    operator_token: str

    @property
    def sandbox(self) -> SandboxPaymentService:
        assert self.app.sandbox is not None
        return self.app.sandbox


def settings_for_tests(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "grpc_address": "127.0.0.1:0",
        "http_address": "127.0.0.1:0",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'agentjobs.db'}",
        "operator_token": TEST_OPERATOR_TOKEN,
        "sandbox_lock_after_s": 0.05,
        "monitor_interval_s": 0.05,
        "submit_margin_s": 0,
        "chain_pickup_s": 0,
        "worker_poll_s": 0.1,
        "retry_base_s": 0.05,
        "retry_max_s": 1,
        "shutdown_grace_s": 2,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_server(
    tmp_path: Path,
    *,
    agent: Agent | None = None,
    sandbox_clock: SandboxClock | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningServer]:
    """Settings overrides are Settings field names; `agent` replaces AGENTJOBS_AGENT;
    `sandbox_clock` is the built-in sandbox's time."""
    app = App(settings_for_tests(tmp_path, **overrides), agent=agent, sandbox_clock=sandbox_clock)
    await app.start()
    try:
        yield RunningServer(
            app=app,
            grpc_target=app.grpc_target,
            http_url=app.http_url,
            operator_token=TEST_OPERATOR_TOKEN,
        )
    finally:
        await app.stop()


@contextmanager
def server_in_thread(
    tmp_path: Path,
    *,
    agent: Agent | None = None,
    sandbox_clock: SandboxClock | None = None,
    **overrides: Any,
) -> Iterator[ThreadedServer]:
    """running_server() on its own event loop in a background thread, for synchronous
    callers (the sync client, the CLI, hypothesis). `call(coro)` runs a coroutine on the
    server's loop, e.g. `server.call(server.sandbox.lock_funds(bid))`."""
    started: concurrent.futures.Future[RunningServer] = concurrent.futures.Future()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with running_server(
                tmp_path, agent=agent, sandbox_clock=sandbox_clock, **overrides
            ) as running:
                started.set_result(running)
                await stop.wait()
        except BaseException as error:
            if not started.done():
                started.set_exception(error)
            raise

    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve(),), name="agentjobs-test-server"
    )
    thread.start()
    try:
        running = started.result(timeout=60)
        yield ThreadedServer(running, loop)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=60)
        loop.close()


@dataclass
class ThreadedServer:
    running: RunningServer
    loop: asyncio.AbstractEventLoop

    @property
    def grpc_target(self) -> str:
        return self.running.grpc_target

    @property
    def http_url(self) -> str:
        return self.running.http_url

    @property
    def operator_token(self) -> str:
        return self.running.operator_token

    @property
    def sandbox(self) -> SandboxPaymentService:
        return self.running.sandbox

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)
