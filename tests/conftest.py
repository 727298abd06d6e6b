"""Shared fixtures: a whole server on ephemeral loopback ports and a channel to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from agentjobs.server.testing import RunningServer, running_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    # The simulated buyer pays only when a test says so: every transition is observable.
    async with running_server(tmp_path, sandbox_lock_after_s=3600) as running:
        yield running


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.grpc_target) as ch:
        yield ch


@pytest.fixture(autouse=True)
def _sandbox_answers_match_the_contract() -> Iterator[None]:
    """Every answer any sandbox payment service gives during a test must match the
    payment service's OpenAPI contract (tests/payments/contract.py)."""
    from tests.payments.contract import recording

    with recording() as recorder:
        yield
    if recorder.breaches:
        pytest.fail(
            "the sandbox answered outside the OpenAPI contract:\n  "
            + "\n  ".join(recorder.breaches[:20])
        )
