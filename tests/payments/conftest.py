"""Fixtures: a sandbox on an ephemeral loopback port, raw HTTP to it, a gateway to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from agentjobs.server.payments.masumi import MasumiPaymentGateway
from agentjobs.server.payments.sandbox import (
    ManualClock,
    SandboxPaymentService,
    add_request_observer,
)
from tests.payments.helpers import AGENT_IDENTIFIER, API_KEY, RawApi


@dataclass
class Manual:
    """A sandbox whose time moves only when the test says so, on upstream's intervals
    (jobs every 15 s, decisions every 30 s), transactions confirming in 20 s."""

    sandbox: SandboxPaymentService
    clock: ManualClock
    api: RawApi

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def now_ms(self) -> int:
        return self.clock.now_ms()


@pytest.fixture
async def manual() -> AsyncIterator[Manual]:
    clock = ManualClock()
    service = SandboxPaymentService(api_key=API_KEY, lock_after=None, settle_after=20, clock=clock)
    await service.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            yield Manual(service, clock, RawApi(session, service.url))
    finally:
        await service.stop()


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxPaymentService]:
    # The buyer pays only when a test says so; chain steps are quick.
    service = SandboxPaymentService(
        api_key=API_KEY,
        lock_after=None,
        settle_after=0.01,
        job_interval=0.01,
        decision_interval=0.01,
    )
    await service.start("127.0.0.1", 0)
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def raw(sandbox: SandboxPaymentService) -> AsyncIterator[RawApi]:
    async with aiohttp.ClientSession() as session:
        yield RawApi(session, sandbox.url)


@pytest.fixture
async def gateway(sandbox: SandboxPaymentService) -> AsyncIterator[MasumiPaymentGateway]:
    gateway = MasumiPaymentGateway(
        payment_service_url=sandbox.url,
        api_key=API_KEY,
        agent_identifier=AGENT_IDENTIFIER,
        network="Preprod",
        timeout_s=2.0,
    )
    try:
        yield gateway
    finally:
        await gateway.close()


Sent = list[tuple[str, str, Any]]


@pytest.fixture
def sent() -> Iterator[Sent]:
    """Every request (method, path under /api/v1, JSON body or None) the sandboxes of this
    process receive during the test."""
    bodies: Sent = []
    remove = add_request_observer(lambda method, path, body: bodies.append((method, path, body)))
    try:
        yield bodies
    finally:
        remove()
