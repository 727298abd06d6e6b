"""Processes for the cluster suites: the standalone sandbox payment service and any
number of `agentjobs-server serve` replicas on one database."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from agentjobs.server.testing import TEST_OPERATOR_TOKEN
from agentjobs.v1 import jobs_pb2_grpc, operator_pb2, operator_pb2_grpc
from tests.reliability.server_process import SERVER, ServerProcess, start_server_process

SANDBOX_KEY = "cluster-sandbox-key"
AGENT_IDENTIFIER = "cluster" + "0" * 60


@dataclass
class SandboxProcess:
    process: asyncio.subprocess.Process
    url: str = ""
    output: list[str] = field(default_factory=list)

    @property
    def root(self) -> str:
        return self.url.removesuffix("/api/v1")

    async def requests(self) -> dict[str, Any]:
        """GET /sandbox/requests: what the payment service received."""
        async with (
            aiohttp.ClientSession(headers={"token": SANDBOX_KEY}) as session,
            session.get(f"{self.root}/sandbox/requests") as response,
        ):
            assert response.status == 200, await response.text()
            answer: dict[str, Any] = (await response.json())["data"]
        return answer

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 30)


async def start_sandbox(port: int, *, lock_after: float, job_interval: float) -> SandboxProcess:
    process = await asyncio.create_subprocess_exec(
        str(SERVER),
        "sandbox",
        "--port",
        str(port),
        "--api-key",
        SANDBOX_KEY,
        "--lock-after",
        str(lock_after),
        "--settle-after",
        "0.05",
        "--job-interval",
        str(job_interval),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    sandbox = SandboxProcess(process)
    assert process.stdout is not None
    async with asyncio.timeout(30):
        while line := (await process.stdout.readline()).decode(errors="replace"):
            sandbox.output.append(line)
            if (match := re.search(r"PAYMENT_SERVICE_URL=(\S+)", line)) is not None:
                sandbox.url = match.group(1)
                break
    assert sandbox.url, "the sandbox did not come up:\n" + "".join(sandbox.output)

    async def drain() -> None:
        assert process.stdout is not None
        while await process.stdout.readline():
            pass

    sandbox.drain = asyncio.create_task(drain())  # type: ignore[attr-defined]
    return sandbox


def replica_env(
    sandbox: SandboxProcess, database_url: str, replica: str, **extra: str
) -> dict[str, str]:
    return {
        "PAYMENT_SERVICE_URL": sandbox.url,
        "PAYMENT_API_KEY": SANDBOX_KEY,
        "AGENT_IDENTIFIER": AGENT_IDENTIFIER,
        "AGENTJOBS_AGENT": "tests.reliability.agents:few_seconds",
        "AGENTJOBS_DATABASE_URL": database_url,
        "AGENTJOBS_OPERATOR_TOKEN": TEST_OPERATOR_TOKEN,
        "AGENTJOBS_REPLICA_ID": replica,
        "AGENTJOBS_MONITOR_INTERVAL_S": "0.5",
        "AGENTJOBS_SUBMIT_MARGIN_S": "0",
        "AGENTJOBS_CHAIN_PICKUP_S": "0",
        "AGENTJOBS_LEASE_S": "3",
        "AGENTJOBS_WORKER_POLL_S": "0.2",
        "AGENTJOBS_RETRY_BASE_S": "0.1",
        "AGENTJOBS_RETRY_MAX_S": "1",
        "AGENTJOBS_SHUTDOWN_GRACE_S": "1",
        "AGENTJOBS_LOG_LEVEL": "WARNING",
        **extra,
    }


async def start_replicas(cwd: Path, envs: list[Mapping[str, str]]) -> list[ServerProcess]:
    return list(await asyncio.gather(*(start_server_process(cwd, env) for env in envs)))


def operator_metadata() -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {TEST_OPERATOR_TOKEN}"),)


async def list_replicas(target: str) -> list[operator_pb2.Replica]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = operator_pb2_grpc.OperatorServiceStub(channel)
        answer = await stub.ListReplicas(
            operator_pb2.ListReplicasRequest(), metadata=operator_metadata(), timeout=10
        )
    return list(answer.replicas)


def job_stub(channel: grpc.aio.Channel) -> jobs_pb2_grpc.JobServiceStub:
    return jobs_pb2_grpc.JobServiceStub(channel)


def purchaser() -> str:
    return secrets.token_hex(8)
