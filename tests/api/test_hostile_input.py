"""Issue 12's hostile inputs, over real gRPC and real HTTP: each is refused at the door
with INVALID_ARGUMENT / 400 naming the field, before any payment is requested, or it is
accepted and then readable by every read RPC and path, on every backend."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from agentjobs.server.agent import Agent
from agentjobs.v1 import jobs_pb2
from tests.api.hostile import (
    IDENT,
    Live,
    http_json,
    live_server,
    read_back_everywhere,
    start_over_grpc,
    start_over_http,
)
from tests.repository.conftest import fresh_backend
from tests.support import error_details


def nested(levels: int, leaf: Any = "x") -> Any:
    """`levels` objects inside each other around `leaf`."""
    value: Any = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


def payments_requested(live: Live) -> int:
    return live.server.sandbox.request_counts[("POST", "/api/v1/payment")]


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    async with live_server(tmp_path) as running:
        yield running


# -- nesting ---------------------------------------------------------------------
async def test_nesting_beyond_32_levels_is_refused_on_both_transports(live: Live) -> None:
    too_deep = {"data": nested(32)}  # input_data + 32 levels below it
    grpc_answer = await start_over_grpc(live, too_deep)
    http_answer = await start_over_http(live, http_json(too_deep))
    for answer in (grpc_answer, http_answer):
        assert not answer.ok and answer.code == "INVALID_ARGUMENT", answer
        assert answer.fields is not None
        [(field, description)] = answer.fields.items()
        assert field.startswith("input_data.data.k.k") and "deeper than 32" in description
    assert http_answer.http_status == 400
    assert grpc_answer.fields == http_answer.fields, "the same rule says the same thing"
    assert payments_requested(live) == 0


async def test_32_levels_are_accepted_and_readable_everywhere(live: Live) -> None:
    deepest = {"data": nested(31)}
    for answer in (
        await start_over_grpc(live, deepest),
        await start_over_http(live, http_json(deepest)),
    ):
        assert answer.ok, answer
        await read_back_everywhere(live, answer.job_id, deepest)


async def test_nesting_900_deep_is_refused_before_any_payment(live: Live) -> None:
    # As deep as Python's JSON parser still reads: the door, not the parser, refuses it.
    body = b'{"identifier_from_purchaser": "%s", "input_data": {"data": %s1%s}}' % (
        IDENT.encode(),
        b"[" * 900,
        b"]" * 900,
    )
    answer = await start_over_http(live, body)
    assert answer.http_status == 400 and answer.reason == "INVALID_ARGUMENT", answer
    assert payments_requested(live) == 0
    assert await live.server.app.repository.count() == 0


# -- numbers ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [b"1" * 400, b"-" + b"9" * 400, b"9007199254740993", b"-9007199254740993"],
    ids=["400-digits", "minus-400-digits", "2^53+1", "-(2^53+1)"],
)
async def test_integers_a_double_cannot_hold_are_refused(live: Live, raw: bytes) -> None:
    body = b'{"identifier_from_purchaser": "%s", "input_data": {"data": [%s]}}' % (
        IDENT.encode(),
        raw,
    )
    answer = await start_over_http(live, body)
    assert answer.http_status == 400, answer
    assert answer.fields is not None and "2^53" in answer.fields["input_data.data[0]"]
    assert payments_requested(live) == 0


@pytest.mark.parametrize("raw", [b"1e400", b"-1e400", b"Infinity", b"NaN"])
async def test_non_finite_numbers_are_refused_over_http(live: Live, raw: bytes) -> None:
    body = b'{"identifier_from_purchaser": "%s", "input_data": {"data": %s}}' % (
        IDENT.encode(),
        raw,
    )
    answer = await start_over_http(live, body)
    assert answer.http_status == 400, answer
    assert answer.reason in ("INVALID_ARGUMENT", "MALFORMED_REQUEST")
    assert payments_requested(live) == 0


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
async def test_non_finite_numbers_are_refused_over_grpc(live: Live, value: float) -> None:
    answer = await start_over_grpc(live, {"data": value})
    assert answer.code == "INVALID_ARGUMENT", answer


async def test_numbers_at_the_edges_are_accepted_and_read_back(live: Live) -> None:
    edges = {"data": [2**53, -(2**53), 1e300, -1e300, 5e-324, 0.1, -0.0, 0, 1.5]}
    for answer in (
        await start_over_grpc(live, edges),
        await start_over_http(live, http_json(edges)),
    ):
        assert answer.ok, answer
        await read_back_everywhere(live, answer.job_id, edges)


# -- text: NUL, lone surrogates, keys --------------------------------------------
def raw_start(input_json: str, extra: str = "") -> bytes:
    """A body with `input_json` written as is (JSON escapes like \\ud800 kept)."""
    return (
        f'{{"identifier_from_purchaser": "{IDENT}", "input_data": {input_json}{extra}}}'
    ).encode()


@pytest.mark.parametrize(
    ("input_json", "field"),
    [
        ('{"text": "\\ud800"}', "input_data.text"),
        ('{"data": {"\\udfff": 1}}', "input_data.data.`\\udfff`"),
        ('{"text": "a\\u0000b"}', "input_data.text"),
        ('{"data": {"a\\u0000": 1}}', "input_data.data.`a\\x00`"),
    ],
    ids=["surrogate-value", "surrogate-key", "nul-value", "nul-key"],
)
async def test_unstorable_text_is_refused_over_http(
    live: Live, input_json: str, field: str
) -> None:
    answer = await start_over_http(live, raw_start(input_json))
    assert answer.http_status == 400, answer
    assert answer.fields is not None and field in answer.fields, answer.fields
    assert payments_requested(live) == 0


async def test_nul_is_refused_over_grpc(live: Live) -> None:
    for data in ({"text": "a\x00b"}, {"data": {"k\x00": 1}}, {"choice": ["ok", "\x00"]}):
        answer = await start_over_grpc(live, data)
        assert answer.code == "INVALID_ARGUMENT", (data, answer)
        assert answer.fields and all(f.startswith("input_data.") for f in answer.fields)
    assert payments_requested(live) == 0


async def test_request_ids_with_nul_or_surrogates_are_refused(live: Live) -> None:
    answer = await start_over_grpc(live, {"text": "x"}, request_id="r\x00")
    assert answer.code == "INVALID_ARGUMENT" and answer.fields and "request_id" in answer.fields
    answer = await start_over_http(live, raw_start('{"text": "x"}', ', "request_id": "\\ud800"'))
    assert answer.http_status == 400 and answer.fields and "request_id" in answer.fields
    answer = await start_over_http(live, raw_start('{"text": "x"}', ', "request_id": "a\\u0007"'))
    assert answer.http_status == 400 and answer.fields
    assert answer.fields["request_id"] == "must not contain control characters"
    assert payments_requested(live) == 0


async def test_job_ids_with_nul_or_surrogates_are_refused(live: Live) -> None:
    stub = live.stub
    for job_id in ("\x00", "a\x00b", "x" * 129):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id=job_id))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "job_id" in error_details(refused.value)[1]
        with pytest.raises(grpc.aio.AioRpcError) as watched:
            async for _ in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
                pass
        assert watched.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as answered:
            await stub.ProvideInput(jobs_pb2.ProvideInputRequest(job_id=job_id, status_id="s"))
        assert answered.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    async with live.http.get("/status?job_id=a%00b") as response:
        assert response.status == 400
        assert (await response.json())["error"]["field_violations"][0]["field"] == "job_id"
    for body in (
        b'{"job_id": "\\ud800", "status_id": "s"}',
        b'{"job_id": "j", "status_id": "\\ud800"}',
        b'{"job_id": "j\\u0000", "status_id": "s"}',
    ):
        async with live.http.post(
            "/provide_input", data=body, headers={"content-type": "application/json"}
        ) as response:
            assert response.status == 400, await response.text()


async def test_keys_longer_than_256_characters_are_refused(live: Live) -> None:
    answer = await start_over_grpc(live, {"data": {"k" * 257: 1}})
    assert answer.code == "INVALID_ARGUMENT" and answer.fields
    [(field, description)] = answer.fields.items()
    assert field.startswith("input_data.data.`kkk") and "256" in description
    ok = await start_over_grpc(live, {"data": {"k" * 256: 1}})
    assert ok.ok


async def test_unicode_that_is_valid_is_accepted_and_read_back(live: Live) -> None:
    data = {"text": "héllo 🦀 \u2028 \t", "data": {"ключ": ["é", "", "\U0010ffff"]}}
    for answer in (
        await start_over_grpc(live, data),
        await start_over_http(live, http_json(data)),
    ):
        assert answer.ok, answer
        await read_back_everywhere(live, answer.job_id, data)


# -- unknown fields ---------------------------------------------------------------
async def test_unknown_fields_are_refused_and_listing_stays_small(live: Live) -> None:
    for _ in range(5):
        answer = await start_over_grpc(live, {"text": "x", "padding": "p" * 1_000_000})
        assert answer.code == "INVALID_ARGUMENT", answer
        assert answer.fields == {"input_data.padding": "is not a field of the agent's input schema"}
    http_answer = await start_over_http(live, http_json({"text": "x", "extra": 1}))
    assert http_answer.http_status == 400
    assert http_answer.fields == {"input_data.extra": "is not a field of the agent's input schema"}
    assert payments_requested(live) == 0
    listed = await live.stub.ListJobs(jobs_pb2.ListJobsRequest(), metadata=live.operator)
    assert list(listed.jobs) == []


async def test_a_page_of_large_inputs_is_cut_to_fit_one_message(tmp_path: Path) -> None:
    """Known fields can be large too (1 MiB of input each by default): the default page
    of 50 would be far beyond the 4 MiB a message may be."""
    async with live_server(tmp_path) as live:
        created = []
        for index in range(6):
            answer = await start_over_grpc(live, {"big": str(index) * 900_000})
            assert answer.ok, answer
            created.append(answer.job_id)
        seen: list[str] = []
        token = ""
        while True:
            page = await live.stub.ListJobs(
                jobs_pb2.ListJobsRequest(page_token=token), metadata=live.operator
            )
            assert 0 < len(page.jobs) < 6
            seen += [job.job_id for job in page.jobs]
            token = page.next_page_token
            if not token:
                break
        assert seen == created[::-1]


# -- wording (issue 14) -------------------------------------------------------------
async def test_schema_violations_say_what_is_wrong_once(tmp_path: Path) -> None:
    async with live_server(tmp_path, agent=demo()) as live:
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({"text": ""}, "input_data.text", "must not be empty or blank (the field is required)"),
            ({}, "input_data.text", "is required"),
            ({"text": "x" * 1001}, "input_data.text", "must be at most 1000 characters long"),
            ({"text": 5}, "input_data.text", "must be a string"),
            (
                {"text": "x", "ask_for_review": "yes"},
                "input_data.ask_for_review",
                "must be a boolean",
            ),
        ]
        for data, field, description in cases:
            struct = struct_pb2.Struct()
            struct.update(data)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await live.stub.StartJob(
                    jobs_pb2.StartJobRequest(identifier_from_purchaser=IDENT, input_data=struct)
                )
            _reason, fields = error_details(caught.value)
            assert fields[field] == description, fields
            message = caught.value.details() or ""
            assert description not in message, "the message must not repeat the violation"
            assert message == "input_data does not match the agent's input schema"


def demo() -> Agent:
    from agentjobs.server.demo_agent import agent

    return agent


# -- PostgreSQL (and every other backend) -------------------------------------------
@pytest.mark.parametrize("backend_name", ["memory", "sqlite", "postgres"])
async def test_every_backend_stores_what_is_accepted_and_refuses_nul(
    tmp_path: Path, backend_name: str
) -> None:
    async with (
        fresh_backend(backend_name, tmp_path) as backend,
        live_server(tmp_path, database_url=backend.url, sandbox_lock_after_s=0.05) as live,
    ):
        for data in ({"text": "a\x00b"}, {"data": {"\x00": "v"}}):
            refused = await start_over_grpc(live, data)
            assert refused.code == "INVALID_ARGUMENT", refused
        refused_http = await start_over_http(live, raw_start('{"text": "nul \\u0000 here"}'))
        assert refused_http.http_status == 400
        with pytest.raises(grpc.aio.AioRpcError) as bad_id:
            await live.stub.GetJobStatus(jobs_pb2.GetJobStatusRequest(job_id="a\x00"))
        assert bad_id.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        async with live.http.get("/status?job_id=%00") as response:
            assert response.status == 400
        wide = {
            "text": "end to end ✓",
            "data": {"deep": nested(20), "n": [2**53, 1e300, -0.0], "s": "\u2028\U0001f980"},
        }
        answer = await start_over_grpc(live, wide)
        assert answer.ok, answer
        await read_back_everywhere(live, answer.job_id, wide)
        # Paid: the agent runs, its result is stored and the job completes.
        async with asyncio.timeout(20):
            async for update in live.stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=answer.job_id)):
                if update.job.status == jobs_pb2.JOB_STATUS_COMPLETED:
                    assert update.job.result == "echo: end to end ✓"
                    break
                assert update.job.status != jobs_pb2.JOB_STATUS_FAILED, update.job.error


def test_the_http_field_path_quotes_odd_keys() -> None:
    from agentjobs.server.domain.input_rules import child_path

    assert child_path("input_data", "text") == "input_data.text"
    assert child_path("input_data", "a.b") == "input_data.`a.b`"
    assert child_path("input_data", "a`b") == "input_data.`a``b`"
    assert json.dumps(child_path("input_data", "\ud800")).isascii()
