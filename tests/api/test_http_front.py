"""The MIP-003 HTTP front over real HTTP against a live server and the sandbox: the exact
shapes the marketplace reads, and a clear 4xx (never a 500) for every bad request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agentjobs.server.testing import RunningServer, running_server
from tests.support import free_port

IDENT = "aabbccddeeff0011"
WHO = "identifier_from_purchaser"
START_KEYS = {
    "id",
    "job_id",
    "status",
    "blockchainIdentifier",
    "payByTime",
    "submitResultTime",
    "unlockTime",
    "externalDisputeUnlockTime",
    "agentIdentifier",
    "sellerVKey",
    "identifierFromPurchaser",
    "input_hash",
    # The payment source, as Sokosumi's V2 schema reads it (V1 here: no index).
    "paymentSourceType",
}


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.http_url) as session:
        yield session


async def post(
    http: aiohttp.ClientSession, path: str, body: Any, **headers: str
) -> tuple[int, dict[str, Any]]:
    async with http.post(path, json=body, headers=headers) as response:
        return response.status, await response.json()


async def get(http: aiohttp.ClientSession, path: str) -> tuple[int, dict[str, Any]]:
    async with http.get(path) as response:
        return response.status, await response.json()


async def start(http: aiohttp.ClientSession, **input_data: Any) -> dict[str, Any]:
    status, body = await post(
        http, "/start_job", {"identifier_from_purchaser": IDENT, "input_data": input_data}
    )
    assert status == 200, body
    return body


async def status_until(
    http: aiohttp.ClientSession, job_id: str, wanted: str, within_s: float = 10
) -> dict[str, Any]:
    """Polls /status the way a marketplace does, until the status is `wanted`."""
    async with asyncio.timeout(within_s):
        while True:
            code, body = await get(http, f"/status?job_id={job_id}")
            assert code == 200, body
            if body["status"] == wanted:
                return body
            await asyncio.sleep(0.02)


async def test_start_job_answers_the_mip003_shape(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    body = await start(http, text="hello")
    assert set(body) == START_KEYS
    job = await server.app.repository.get(body["id"])
    assert body["job_id"] == job.job_id
    assert body["blockchainIdentifier"] == job.blockchain_identifier
    for key, value in (
        ("payByTime", job.pay_by_time),
        ("submitResultTime", job.submit_result_time),
        ("unlockTime", job.unlock_time),
        ("externalDisputeUnlockTime", job.external_dispute_unlock_time),
    ):
        assert body[key] == value and isinstance(body[key], int), key
    assert body["payByTime"] > 1_000_000_000_000  # milliseconds
    assert body["sellerVKey"] == job.seller_vkey and len(job.seller_vkey) == 56
    assert body["agentIdentifier"] == job.agent_identifier
    assert body["identifierFromPurchaser"] == IDENT
    assert body["input_hash"] == job.input_hash and len(body["input_hash"]) == 64
    assert body["paymentSourceType"] == "Web3CardanoV1"


async def test_status_through_the_lifecycle(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    started = await start(http, text="over http")
    code, waiting = await get(http, f"/status?job_id={started['id']}")
    assert code == 200
    assert waiting["status"] == "awaiting_payment" and "result" not in waiting
    again = (await get(http, f"/status?job_id={started['id']}"))[1]
    assert again["id"] == waiting["id"], "the status id is stable while the status holds"

    await server.sandbox.lock_funds(started["blockchainIdentifier"])
    done = await status_until(http, started["id"], "completed")
    assert done["result"] == "OVER HTTP!"
    assert done["id"] != waiting["id"], "a new status gets a new status id"
    assert set(done) == {"id", "job_id", "status", "result"}


async def test_human_input_over_http(server: RunningServer, http: aiohttp.ClientSession) -> None:
    started = await start(http, text="check me", ask_for_review=True)
    await server.sandbox.lock_funds(started["blockchainIdentifier"])
    asking = await status_until(http, started["id"], "awaiting_input")
    assert [f["id"] for f in asking["input_schema"]["input_data"]] == ["approve"]
    assert "CHECK ME!" in asking["message"]

    wrong = await post(
        http,
        "/provide_input",
        {"job_id": started["id"], "status_id": "stale", "input_data": {"approve": True}},
    )
    assert wrong[0] == 412 and wrong[1]["error"]["reason"] == "STATUS_ID_MISMATCH"
    invalid = await post(
        http,
        "/provide_input",
        {"job_id": started["id"], "status_id": asking["id"], "input_data": {"approve": "yes"}},
    )
    assert invalid[0] == 400
    assert "input_data.approve" in {v["field"] for v in invalid[1]["error"]["field_violations"]}

    answer = {"job_id": started["id"], "status_id": asking["id"], "input_data": {"approve": True}}
    code, receipt = await post(http, "/provide_input", answer, **{"Idempotency-Key": "a-1"})
    assert code == 200 and len(receipt["input_hash"]) == 64 and receipt["signature"] == ""
    retry = await post(http, "/provide_input", answer, **{"Idempotency-Key": "a-1"})
    assert retry == (200, receipt)
    done = await status_until(http, started["id"], "completed")
    assert done["result"] == "CHECK ME!"

    late = await post(http, "/provide_input", answer)
    assert late[0] == 409 and late[1]["error"]["reason"] == "JOB_NOT_AWAITING_INPUT"


async def test_idempotency_key_returns_the_same_job(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    body = {"identifier_from_purchaser": IDENT, "input_data": {"text": "once"}}
    first = await post(http, "/start_job", body, **{"Idempotency-Key": "k-1"})
    second = await post(http, "/start_job", body, **{"Idempotency-Key": "k-1"})
    assert first == second and first[0] == 200
    assert await server.app.repository.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input_data": {"text": "x"}}, WHO),
        ({WHO: 5, "input_data": {"text": "x"}}, WHO),
        ({WHO: "zz", "input_data": {"text": "x"}}, WHO),
        ({WHO: IDENT, "input_data": []}, "input_data"),
        ({WHO: IDENT, "input_data": {}}, "input_data.text"),
        ({WHO: IDENT, "input_data": {"text": 5}}, "input_data.text"),
        ([1, 2], "body"),
    ],
)
async def test_bad_start_bodies_are_400_with_fields(
    server: RunningServer, http: aiohttp.ClientSession, body: Any, field: str
) -> None:
    code, answer = await post(http, "/start_job", body)
    assert code == 400, answer
    assert answer["error"]["code"] == "INVALID_ARGUMENT"
    assert field in {v["field"] for v in answer["error"]["field_violations"]}
    assert await server.app.repository.count() == 0


@pytest.mark.parametrize(
    "raw", [b"{not json", b'{"identifier_from_purchaser": NaN}', b"\xff\xfe", b"[" * 100_000]
)
async def test_malformed_json_is_400(http: aiohttp.ClientSession, raw: bytes) -> None:
    async with http.post(
        "/start_job", data=raw, headers={"content-type": "application/json"}
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["reason"] == "MALFORMED_REQUEST"


async def test_oversized_body_is_413_without_being_read(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    limit = server.app.settings.max_message_bytes
    text = "x" * (limit + 1)
    code, answer = await post(
        http, "/start_job", {"identifier_from_purchaser": IDENT, "input_data": {"text": text}}
    )
    assert code == 413 and answer["error"]["reason"] == "REQUEST_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    # Chunked, with no Content-Length to refuse it early: the stream is cut at the limit.
    async with http.post("/start_job", data=chunks()) as response:
        assert response.status == 413


async def test_unknown_job_and_missing_id(http: aiohttp.ClientSession) -> None:
    code, answer = await get(http, "/status?job_id=nope")
    assert code == 404 and answer["error"]["reason"] == "JOB_NOT_FOUND"
    code, answer = await get(http, "/status")
    assert code == 400 and answer["error"]["field_violations"][0]["field"] == "job_id"
    code, answer = await post(http, "/provide_input", {"job_id": "nope", "status_id": "x"})
    assert code == 404
    code, answer = await post(http, "/provide_input", {"job_id": "nope"})
    assert code == 400 and answer["error"]["field_violations"][0]["field"] == "status_id"


async def test_availability_schema_demo_health_metrics(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    code, availability = await get(http, "/availability")
    assert code == 200
    assert availability["status"] == "available" and availability["type"] == "masumi-agent"
    assert availability["agentIdentifier"] == server.app.payments.agent_identifier
    assert "SANDBOX" in availability["message"] and availability["sandbox"] is True
    code, schema = await get(http, "/input_schema")
    assert code == 200 and [f["id"] for f in schema["input_data"]] == ["text", "ask_for_review"]
    code, demo = await get(http, "/demo")
    assert code == 200 and demo == {
        "input": {"text": "hello masumi"},
        "output": {"result": "HELLO MASUMI!"},
    }
    assert await get(http, "/healthz") == (200, {"status": "serving"})
    async with http.get("/metrics") as response:
        text = await response.text()
    assert response.status == 200
    assert 'agentjobs_http_requests_total{path="/availability",status="200"} 1.0' in text
    assert "agentjobs_http_request_duration_seconds_bucket" in text


async def test_request_id_is_kept_or_made(http: aiohttp.ClientSession) -> None:
    async with http.get("/availability", headers={"x-request-id": "trace-7"}) as response:
        assert response.headers["x-request-id"] == "trace-7"
    async with http.get("/availability") as response:
        assert len(response.headers["x-request-id"]) == 32


async def test_draining_server_reports_unavailable(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    server.app.jobs.accepting = False
    try:
        assert (await get(http, "/healthz"))[0] == 503
        code, availability = await get(http, "/availability")
        assert code == 503 and availability["status"] == "unavailable"
    finally:
        server.app.jobs.accepting = True


async def test_payment_service_down_is_503_and_leaves_nothing(tmp_path: Path) -> None:
    async with (
        running_server(
            tmp_path,
            payment_service_url=f"http://127.0.0.1:{free_port()}/api/v1",
            payment_api_key="k" * 16,
            agent_identifier="downtest" + "0" * 60,
            payment_timeout_s=0.5,
        ) as server,
        aiohttp.ClientSession(base_url=server.http_url) as http,
    ):
        code, answer = await post(
            http, "/start_job", {"identifier_from_purchaser": IDENT, "input_data": {"text": "x"}}
        )
        assert code == 503, json.dumps(answer)
        assert answer["error"]["reason"] == "PAYMENT_SERVICE_UNAVAILABLE"
        assert await server.app.repository.count() == 0
