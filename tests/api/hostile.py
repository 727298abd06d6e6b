"""What the hostile-input suites share: an agent whose schema takes any JSON value (so
the door rules, not the schema, decide), the two transports to start a job with, and a
check that an accepted job reads back through every read RPC and path."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from google.protobuf import json_format, struct_pb2

from agentjobs.server.agent import Agent
from agentjobs.server.testing import RunningServer, running_server
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.support import error_details

IDENT = "aabbccddeeff0011"
OPTIONAL = [{"validation": "optional", "value": "true"}]
# "none" fields take any value, "option" fields any list: the door rules are all that
# stands between a caller and the store.
OPEN_SCHEMA: dict[str, Any] = {
    "input_data": [
        {"id": "text", "type": "text", "name": "Text", "validations": OPTIONAL},
        {"id": "data", "type": "none", "name": "Anything", "validations": OPTIONAL},
        {"id": "choice", "type": "option", "name": "Choices", "validations": OPTIONAL},
        {"id": "big", "type": "text", "name": "Large text", "validations": OPTIONAL},
    ]
}


async def echo(identifier_from_purchaser: str, input_data: dict[str, Any]) -> str:
    return "echo: " + str(input_data.get("text", ""))


OPEN_AGENT = Agent(handler=echo, input_schema=OPEN_SCHEMA, name="open")


@dataclass
class Live:
    server: RunningServer
    channel: grpc.aio.Channel
    http: aiohttp.ClientSession

    @property
    def stub(self) -> jobs_pb2_grpc.JobServiceStub:
        return jobs_pb2_grpc.JobServiceStub(self.channel)

    @property
    def operator(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.server.operator_token}"),)


@asynccontextmanager
async def live_server(
    tmp_path: Path, *, agent: Agent = OPEN_AGENT, **overrides: Any
) -> AsyncIterator[Live]:
    async with (
        running_server(
            tmp_path, agent=agent, **{"sandbox_lock_after_s": 3600, **overrides}
        ) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
        aiohttp.ClientSession(base_url=server.http_url) as http,
    ):
        yield Live(server, channel, http)


@dataclass
class Answer:
    """What a transport said: ok, or the error's code, reason and field violations."""

    ok: bool
    job_id: str = ""
    code: str = ""
    reason: str = ""
    fields: dict[str, str] | None = None
    http_status: int = 0


async def start_over_grpc(live: Live, input_data: dict[str, Any], request_id: str = "") -> Answer:
    struct = struct_pb2.Struct()
    struct.update(input_data)
    try:
        started = await live.stub.StartJob(
            jobs_pb2.StartJobRequest(
                identifier_from_purchaser=IDENT, input_data=struct, request_id=request_id
            ),
            timeout=30,
        )
    except grpc.aio.AioRpcError as error:
        reason, fields = error_details(error)
        return Answer(False, code=error.code().name, reason=reason, fields=fields)
    return Answer(True, job_id=started.job_id)


async def start_over_http(live: Live, raw_body: bytes) -> Answer:
    async with live.http.post(
        "/start_job", data=raw_body, headers={"content-type": "application/json"}
    ) as response:
        body = await response.json()
        if response.status == 200:
            return Answer(True, job_id=body["id"], http_status=200)
        error = body["error"]
        return Answer(
            False,
            code=error["code"],
            reason=error["reason"],
            fields={v["field"]: v["description"] for v in error["field_violations"]},
            http_status=response.status,
        )


def http_json(input_data: Any) -> bytes:
    """A /start_job body, serialised as JSON (allow_nan: some cases need Infinity)."""
    return json.dumps({"identifier_from_purchaser": IDENT, "input_data": input_data}).encode()


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON numbers compare (3 == 3.0, -0.0 == 0.0)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=0, abs_tol=0) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


async def read_back_everywhere(live: Live, job_id: str, expected: dict[str, Any]) -> None:
    """GetJobStatus, WatchJob, ListJobs and /status all answer for the job, and the input
    the streams and the listing carry is what was accepted."""
    stub = live.stub
    status = await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=job_id), timeout=10)
    assert status.job_id == job_id
    watch = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), timeout=10)
    first = await asyncio.wait_for(watch.read(), 10)
    watch.cancel()
    assert isinstance(first, jobs_pb2.WatchJobResponse)
    assert same_json(json_format.MessageToDict(first.job.input_data), expected)
    found = None
    token = ""
    while found is None:
        page = await stub.ListJobs(
            jobs_pb2.ListJobsRequest(page_token=token), metadata=live.operator, timeout=10
        )
        found = next((j for j in page.jobs if j.job_id == job_id), None)
        token = page.next_page_token
        if not token:
            break
    assert found is not None, "the job is missing from ListJobs"
    assert same_json(json_format.MessageToDict(found.input_data), expected)
    async with live.http.get("/status", params={"job_id": job_id}) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["job_id"] == job_id
    stored = await live.server.app.repository.get(job_id)
    assert same_json(stored.input_data, expected)
