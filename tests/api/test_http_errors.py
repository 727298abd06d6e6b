"""The HTTP front refuses every body that is not declared JSON (a cross-site "simple"
request must not start jobs from a buyer's browser), and answers every error, 404 and
405 included, in the one documented shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from agentjobs.server.testing import RunningServer

START = b'{"identifier_from_purchaser": "aabbccddeeff0011", "input_data": {"text": "x"}}'
ERROR_KEYS = {"code", "reason", "message", "field_violations"}


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.http_url) as session:
        yield session


def assert_error_shape(body: Any) -> dict[str, Any]:
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert ERROR_KEYS <= set(error) <= ERROR_KEYS | {"metadata"}
    assert isinstance(error["field_violations"], list)
    return error


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "application/jsonp",
        None,
    ],
)
@pytest.mark.parametrize("path", ["/start_job", "/provide_input"])
async def test_bodies_not_declared_json_are_415(
    server: RunningServer, http: aiohttp.ClientSession, path: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    # aiohttp adds application/octet-stream to a bytes body without a type.
    async with http.post(path, data=START, headers=headers) as response:
        assert response.status == 415
        error = assert_error_shape(await response.json())
        assert error["reason"] == "UNSUPPORTED_MEDIA_TYPE"
    assert await server.app.repository.count() == 0
    assert server.sandbox.request_counts[("POST", "/api/v1/payment")] == 0


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; charset=utf-8"])
async def test_json_bodies_are_read(
    server: RunningServer, http: aiohttp.ClientSession, content_type: str
) -> None:
    async with http.post("/start_job", data=START, headers={"content-type": content_type}) as r:
        assert r.status == 200, await r.text()


async def test_unknown_paths_and_methods_answer_in_the_error_shape(
    http: aiohttp.ClientSession,
) -> None:
    async with http.get("/no/such/path") as response:
        assert response.status == 404
        error = assert_error_shape(await response.json())
        assert (error["code"], error["reason"]) == ("NOT_FOUND", "PATH_NOT_FOUND")
    async with http.get("/start_job") as response:
        assert response.status == 405
        assert "POST" in response.headers["allow"]
        error = assert_error_shape(await response.json())
        assert (error["code"], error["reason"]) == ("UNIMPLEMENTED", "METHOD_NOT_ALLOWED")
    async with http.delete("/status") as response:
        assert response.status == 405
        assert_error_shape(await response.json())


async def test_service_errors_answer_in_the_same_shape(http: aiohttp.ClientSession) -> None:
    async with http.get("/status", params={"job_id": "nope"}) as response:
        assert response.status == 404
        error = assert_error_shape(await response.json())
        assert error["reason"] == "JOB_NOT_FOUND" and error["field_violations"] == []
    async with http.post(
        "/start_job", data=b"{", headers={"content-type": "application/json"}
    ) as response:
        assert response.status == 400
        assert assert_error_shape(await response.json())["reason"] == "MALFORMED_REQUEST"
