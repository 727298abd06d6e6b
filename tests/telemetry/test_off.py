"""Tracing is off unless the OTEL_* variables ask for it, and off costs nothing: no SDK,
no instrumentation imported, no interceptor or middleware in the call path."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agentjobs.server import telemetry

SERVE_ONE_CALL = """
import asyncio, sys, tempfile
from pathlib import Path
import grpc
from agentjobs.server import telemetry
from agentjobs.server.testing import running_server
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc

async def main():
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp)) as server:
            async with grpc.aio.insecure_channel(server.grpc_target) as channel:
                stub = jobs_pb2_grpc.JobServiceStub(channel)
                await stub.GetAvailability(jobs_pb2.GetAvailabilityRequest())

asyncio.run(main())
assert not telemetry.enabled()
loaded = [m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.instr"))]
print("loaded", loaded)
"""


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_RESOURCE_ATTRIBUTES": "a=b"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_which_variables_turn_tracing_on(environ: dict[str, str], on: bool) -> None:
    assert telemetry.wanted(environ) is on


def test_off_imports_nothing_of_the_sdk() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", SERVE_ONE_CALL],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "loaded []" in done.stdout, done.stdout


def test_the_hooks_do_nothing_when_off() -> None:
    # No interceptor, no middleware, no trace config: nothing in the path of a call.
    assert not telemetry.enabled()
    with telemetry.span("db.transaction", backend="sqlite") as inside:
        assert inside is None
    telemetry.tag_request_id("nobody-listens")
    assert telemetry.grpc_server_interceptors() == []
    assert telemetry.aiohttp_trace_configs() == []
    app = object()
    assert telemetry.asgi_app(app) is app


async def test_the_async_hook_does_nothing_when_off() -> None:
    async with telemetry.span("agent.run", job_id="j") as inside:
        assert inside is None
