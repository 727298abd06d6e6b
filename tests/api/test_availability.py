"""Honest availability: /availability and GetAvailability say unavailable, and why,
while the payment service rejects our API key or cannot be reached; available again
once it answers. MIP-003's shape: HTTP 200 with `status: "unavailable"` (a 503 is kept
for a draining replica). Never a secret in the answer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from agentjobs.server.domain import PaymentConfigurationError, PaymentServiceUnavailableError
from agentjobs.server.services.availability import REJECTED, UNREACHABLE, PaymentServiceHealth
from agentjobs.server.testing import RunningServer, running_server
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.support import free_port


async def availability_until(
    http: aiohttp.ClientSession, wanted: str, within_s: float = 10
) -> tuple[int, dict[str, Any]]:
    async with asyncio.timeout(within_s):
        while True:
            async with http.get("/availability") as response:
                body = await response.json()
                if body["status"] == wanted:
                    return response.status, body
            await asyncio.sleep(0.05)


async def test_a_rejected_api_key_makes_the_agent_unavailable(server: RunningServer) -> None:
    secret = server.sandbox.api_key
    async with (
        aiohttp.ClientSession(base_url=server.http_url) as http,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        assert (await availability_until(http, "available"))[0] == 200
        key = server.sandbox.revoke_api_key(secret)  # every call of ours now: 401
        status, body = await availability_until(http, "unavailable")
        assert status == 200 and body["type"] == "masumi-agent"
        assert body["message"] == REJECTED
        assert secret not in str(body)
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        answer = await stub.GetAvailability(jobs_pb2.GetAvailabilityRequest())
        assert answer.availability == jobs_pb2.AVAILABILITY_UNAVAILABLE
        assert answer.message == REJECTED
        key.revoked = False
        assert (await availability_until(http, "available"))[1]["message"].startswith("SANDBOX")


async def test_an_unreachable_payment_service_makes_the_agent_unavailable(tmp_path: Path) -> None:
    async with (
        running_server(
            tmp_path,
            payment_service_url=f"http://127.0.0.1:{free_port()}/api/v1",
            payment_api_key="unreachable-secret-key",
            agent_identifier="unreach" + "0" * 60,
            payment_timeout_s=0.5,
        ) as server,
        aiohttp.ClientSession(base_url=server.http_url) as http,
    ):
        status, body = await availability_until(http, "unavailable")
        assert status == 200 and body["message"] == UNREACHABLE
        assert "unreachable-secret-key" not in str(body) and "127.0.0.1" not in str(body)


async def test_a_draining_replica_still_answers_503(server: RunningServer) -> None:
    server.app.jobs.accepting = False
    try:
        async with aiohttp.ClientSession(base_url=server.http_url) as http:
            status, body = await availability_until(http, "unavailable")
        assert status == 503 and body["message"] == "shutting down; not accepting jobs"
    finally:
        server.app.jobs.accepting = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_probe_runs_only_when_nothing_was_observed_lately() -> None:
    clock = Clock()
    probes = 0

    async def probe() -> None:
        nonlocal probes
        probes += 1

    health = PaymentServiceHealth(probe, stale_after_s=15, clock=clock)
    assert (await health.current()).usable and probes == 1
    clock.now += 5
    await health.current()
    assert probes == 1, "fresh: answered from what was observed"
    health.observe(PaymentServiceUnavailableError("down"))
    assert not (await health.current()).usable and probes == 1
    clock.now += 16
    assert (await health.current()).usable and probes == 2, "stale: probed again"
    health.observe(PaymentConfigurationError("401"))
    assert (await health.current()).problem == REJECTED
    await health.close()


async def test_concurrent_callers_share_one_slow_probe_and_do_not_wait_for_it() -> None:
    release = asyncio.Event()
    probes = 0

    async def probe() -> None:
        nonlocal probes
        probes += 1
        await release.wait()
        raise PaymentServiceUnavailableError("timed out")

    health = PaymentServiceHealth(probe, probe_wait_s=0.05)
    answers = await asyncio.gather(*(health.current() for _ in range(20)))
    assert probes == 1
    assert all(answer.usable for answer in answers), "nothing known yet: the last state"
    release.set()
    assert health._probing is not None
    await asyncio.wait_for(health._probing, 5)
    assert health.state.problem == UNREACHABLE
    await health.close()


@pytest.mark.parametrize(
    ("error", "usable"),
    [
        (None, True),
        (PaymentConfigurationError("403"), False),
        (PaymentServiceUnavailableError("5xx"), False),
    ],
)
def test_what_one_outcome_says(error: Exception | None, usable: bool) -> None:
    health = PaymentServiceHealth()
    health.observe(error)
    assert health.state.usable is usable
