"""Generated hostile input on both transports (hypothesis): nesting around the limit,
integers around 2^53 and far beyond, non-finite numbers, NUL and lone surrogates in
values and keys, long keys, unknown fields. Whatever either transport answers, it is
never INTERNAL / UNKNOWN / 5xx; what it refuses, an independent oracle says is
unstorable; what it accepts, every read RPC and path (GetJobStatus, WatchJob, ListJobs,
/status) reads back, with the input the caller sent. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agentjobs.server.testing import ThreadedServer, server_in_thread
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.api.hostile import IDENT, OPEN_AGENT, same_json
from tests.repository.conftest import POSTGRES_URL, require_postgres

pytestmark = pytest.mark.slow

FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Live:
    server: ThreadedServer
    stub: jobs_pb2_grpc.JobServiceStub

    @property
    def operator(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.server.operator_token}"),)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    tmp: Path = tmp_path_factory.mktemp("hostile")
    schema = None
    if request.param == "postgres":
        asyncio.run(require_postgres())
        schema = f"agentjobs_fuzz_{uuid.uuid4().hex[:12]}"
        url = f"{POSTGRES_URL}?schema={schema}"
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}"
    try:
        with (
            server_in_thread(
                tmp, agent=OPEN_AGENT, database_url=url, sandbox_lock_after_s=3600
            ) as server,
            grpc.insecure_channel(server.grpc_target) as channel,
        ):
            yield Live(server, jobs_pb2_grpc.JobServiceStub(channel))
    finally:
        if schema is not None:
            asyncio.run(_drop(schema))


async def _drop(schema: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


# -- what to send ------------------------------------------------------------------
HOSTILE_TEXT = st.text(max_size=12) | st.sampled_from(
    ["", "\x00", "a\x00", "\ud800", "x\udfff", "é", "🦀", "\u2028", "k" * 256, "k" * 257]
)
NUMBERS = (
    st.integers(-(2**53) - 3, 2**53 + 3)
    | st.sampled_from([2**53, -(2**53), 2**53 + 1, 10**400, -(10**400), 2**64])
    | st.floats(allow_nan=True, allow_infinity=True)
)
SCALARS = st.none() | st.booleans() | NUMBERS | HOSTILE_TEXT


def _nest(leaf: Any, depth: int) -> Any:
    for _ in range(depth):
        leaf = {"k": leaf}
    return leaf


VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=12,
) | st.builds(_nest, SCALARS, st.integers(28, 36))
INPUTS = st.fixed_dictionaries(
    {"data": VALUES},
    optional={
        "text": HOSTILE_TEXT,
        "choice": st.lists(HOSTILE_TEXT, max_size=3),
        "unknown": st.just(1),
    },
)


# -- an oracle that is not the server's code -----------------------------------------
def storable(value: Any, depth: int = 1) -> bool:
    """Whether `input_data` (at depth 1) may be accepted: the rules of docs/SECURITY.md,
    written again here from the spec, not imported."""
    if isinstance(value, dict):
        return depth <= 32 and all(
            _text_ok(k) and len(k) <= 256 and storable(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list):
        return depth <= 32 and all(storable(v, depth + 1) for v in value)
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return abs(value) <= 2**53
    if isinstance(value, float):
        return math.isfinite(value)
    return _text_ok(value)


def _text_ok(text: str) -> bool:
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def acceptable(input_data: dict[str, Any]) -> bool:
    """Storable, and what the agent's schema (tests.api.hostile.OPEN_SCHEMA) takes."""
    if not storable(input_data):
        return False
    if "unknown" in input_data:
        return False
    text = input_data.get("text")
    return text is None or isinstance(text, str)


def grpc_carries(value: Any) -> bool:
    """A protobuf client can send it at all: valid UTF-8 strings, numbers as doubles."""
    try:
        struct = struct_pb2.Struct()
        struct.update(value)
        jobs_pb2.StartJobRequest(input_data=struct)
    except (ValueError, TypeError, OverflowError, DecodeError):
        return False
    return _all_text(value, lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))


def _all_text(value: Any, ok: Any) -> bool:
    if isinstance(value, dict):
        return all(ok(k) and _all_text(v, ok) for k, v in value.items())
    if isinstance(value, list):
        return all(_all_text(v, ok) for v in value)
    return ok(value) if isinstance(value, str) else True


def as_double(value: Any) -> Any:
    """What a Struct makes of a value: every number a double."""
    if isinstance(value, dict):
        return {k: as_double(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_double(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def to_json(value: Any) -> str:
    """JSON as a hostile client writes it: huge integers as digits, infinities as 1e400,
    lone surrogates as \\ud800 escapes (json.dumps would write Infinity, NaN)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "1e400" if value > 0 else "-1e400" if value < 0 else "NaN"
    return json.dumps(value, ensure_ascii=True)


# -- reading back ------------------------------------------------------------------
def read_back(live: Live, job_id: str, expected: dict[str, Any]) -> None:
    stub = live.stub
    assert stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=job_id), timeout=10).job_id
    stream = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), timeout=10)
    first = next(stream)
    stream.cancel()
    assert same_json(json_format.MessageToDict(first.job.input_data), expected)
    page = stub.ListJobs(jobs_pb2.ListJobsRequest(page_size=5), metadata=live.operator, timeout=10)
    listed = next(j for j in page.jobs if j.job_id == job_id)
    assert same_json(json_format.MessageToDict(listed.input_data), expected)
    status, _ = http_request(live, "GET", "/status?" + urllib.parse.urlencode({"job_id": job_id}))
    assert status == 200


def http_request(live: Live, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    url = urllib.parse.urlsplit(live.server.http_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers={"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


# -- the suites --------------------------------------------------------------------
@settings(FUZZ, max_examples=250)
@given(input_data=INPUTS)
def test_hostile_input_over_grpc(live: Live, input_data: dict[str, Any]) -> None:
    if not grpc_carries(input_data):
        event("not sendable over gRPC")
        return  # no protobuf client can send it: the HTTP suite covers it
    struct = struct_pb2.Struct()
    struct.update(input_data)
    try:
        started = live.stub.StartJob(
            jobs_pb2.StartJobRequest(identifier_from_purchaser=IDENT, input_data=struct),
            timeout=30,
        )
    except grpc.RpcError as error:
        assert error.code() not in FORBIDDEN, (error.code(), error.details())
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
        event("refused")
        assert not acceptable(as_double(input_data)), (
            "refused an acceptable input",
            error.details(),
        )
        return
    assert acceptable(as_double(input_data)), "accepted an input the rules refuse"
    event("accepted")
    read_back(live, started.job_id, input_data)


@settings(FUZZ, max_examples=250)
@given(input_data=INPUTS)
def test_hostile_input_over_http(live: Live, input_data: dict[str, Any]) -> None:
    body = f'{{"identifier_from_purchaser":"{IDENT}","input_data":{to_json(input_data)}}}'
    status, answer = http_request(live, "POST", "/start_job", body.encode())
    assert status < 500, (status, answer)
    if status != 200:
        assert status == 400, (status, answer)
        assert set(answer["error"]) >= {"code", "reason", "message", "field_violations"}
        assert not acceptable(input_data), ("refused an acceptable input", answer)
        event("refused")
        return
    assert acceptable(input_data), "accepted an input the rules refuse"
    event("accepted")
    read_back(live, answer["id"], input_data)
