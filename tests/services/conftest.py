"""A sandbox payment service the test controls (the buyer pays only when told) and a
whole server in-process that talks to it over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from agentjobs.server.agent import Agent
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.testing import RunningServer, running_server
from tests.services.agents import ScriptedAgent

API_KEY = "services-test-payment-key"
AGENT_IDENTIFIER = "servicestest" + "0" * 60


@pytest.fixture
async def payment_service() -> AsyncIterator[SandboxPaymentService]:
    # The chain's jobs run every 10 ms here (upstream: every 15 s); their order and
    # windows are upstream's.
    service = SandboxPaymentService(
        api_key=API_KEY,
        lock_after=None,
        settle_after=0.02,
        job_interval=0.01,
        decision_interval=0.01,
    )
    await service.start("127.0.0.1", 0)
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
def scripted() -> ScriptedAgent:
    return ScriptedAgent()


def serve(
    tmp_path: Path, payment_service: SandboxPaymentService, agent: Agent, **overrides: Any
) -> AbstractAsyncContextManager[RunningServer]:
    """A server on `tmp_path`'s SQLite file using `payment_service`; Settings overrides."""
    return running_server(
        tmp_path,
        agent=agent,
        payment_service_url=payment_service.url,
        payment_api_key=API_KEY,
        agent_identifier=AGENT_IDENTIFIER,
        **overrides,
    )


@pytest.fixture
async def server(
    tmp_path: Path, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> AsyncIterator[RunningServer]:
    async with serve(tmp_path, payment_service, scripted.agent) as running:
        yield running
