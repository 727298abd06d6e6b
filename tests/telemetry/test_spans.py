"""With tracing on, every gRPC call, HTTP request, payment-service call, database write
transaction and agent run is a span; the caller's trace context is honoured and every
span of a call carries its request id. Spans go to the SDK's in-memory exporter; the
server is a real one on ephemeral ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agentjobs.server import telemetry
from agentjobs.server.testing import RunningServer, running_server
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc, operator_pb2, operator_pb2_grpc

REQUEST_ID = "agentjobs.request_id"


@dataclass
class Traced:
    server: RunningServer
    spans: InMemorySpanExporter

    def finished(self) -> Sequence[ReadableSpan]:
        return self.spans.get_finished_spans()

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def children_of(self, parent: ReadableSpan) -> list[ReadableSpan]:
        parent_id = parent.context.span_id
        return [s for s in self.finished() if s.parent and s.parent.span_id == parent_id]


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    telemetry.start({}, exporter=exporter, make_global=False)
    try:
        async with running_server(tmp_path, sandbox_lock_after_s=3600) as server:
            yield Traced(server, exporter)
    finally:
        telemetry.stop()


def caller_context(tracer_provider: TracerProvider) -> tuple[dict[str, str], int, int]:
    """A span of the caller's own and the `traceparent` header that carries it."""
    tracer = tracer_provider.get_tracer("the-caller")
    carrier: dict[str, str] = {}
    with tracer.start_as_current_span("caller") as span:
        TraceContextTextMapPropagator().inject(carrier)
        context = span.get_span_context()
    return carrier, context.trace_id, context.span_id


def start_request(text: str) -> jobs_pb2.StartJobRequest:
    data = struct_pb2.Struct()
    data.update({"text": text})
    return jobs_pb2.StartJobRequest(identifier_from_purchaser="aabbccddeeff0011", input_data=data)


async def test_a_grpc_call_is_a_child_of_the_callers_span_with_its_request_id(
    traced: Traced,
) -> None:
    carrier, trace_id, parent_id = caller_context(TracerProvider())
    metadata = (*carrier.items(), ("x-request-id", "req-grpc-1"))
    async with grpc.aio.insecure_channel(traced.server.grpc_target) as channel:
        started = await jobs_pb2_grpc.JobServiceStub(channel).StartJob(
            start_request("traced"), metadata=metadata
        )
    assert started.job_id

    (call,) = traced.named("/agentjobs.v1.JobService/StartJob")
    assert call.kind is SpanKind.SERVER
    assert call.context.trace_id == trace_id
    assert call.parent is not None and call.parent.span_id == parent_id
    assert call.attributes is not None
    assert call.attributes[REQUEST_ID] == "req-grpc-1"
    assert call.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]

    # What the call did: the payment request (an aiohttp client span) and the write
    # transaction, both children of the call, both with its request id.
    in_call = [
        s for s in traced.finished() if s.parent and s.parent.span_id == call.context.span_id
    ]
    kinds = {(s.name, s.kind) for s in in_call}
    assert ("POST", SpanKind.CLIENT) in kinds
    assert ("db.transaction", SpanKind.INTERNAL) in kinds
    for span in in_call:
        assert span.attributes is not None and span.attributes[REQUEST_ID] == "req-grpc-1"
    (payment,) = [s for s in in_call if s.name == "POST"]
    assert payment.attributes is not None
    assert str(payment.attributes["http.url"]).endswith("/api/v1/payment")
    # Two: the job stored as a payment intent before POST /payment, then its answer.
    transactions = [s for s in in_call if s.name == "db.transaction"]
    assert len(transactions) == 2
    for transaction in transactions:
        assert transaction.attributes is not None
        assert transaction.attributes["agentjobs.backend"] == "sqlite"


async def test_a_refused_call_is_traced_with_its_code(traced: Traced) -> None:
    async with grpc.aio.insecure_channel(traced.server.grpc_target) as channel:
        stub = operator_pb2_grpc.OperatorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetEarningsReport(
                operator_pb2.GetEarningsReportRequest(),
                metadata=(("authorization", "Bearer not-the-token"),),
            )
    (call,) = traced.named("/agentjobs.v1.OperatorService/GetEarningsReport")
    assert call.attributes is not None
    assert call.attributes["rpc.grpc.status_code"] == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert REQUEST_ID in call.attributes


async def test_an_http_request_is_a_child_of_the_callers_span(traced: Traced) -> None:
    carrier, trace_id, parent_id = caller_context(TracerProvider())
    headers = {**carrier, "x-request-id": "req-http-1"}
    body = {"identifier_from_purchaser": "aabbccddeeff0011", "input_data": {"text": "hi"}}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{traced.server.http_url}/start_job", json=body, headers=headers) as answer,
    ):
        assert answer.status == 200, await answer.text()
    (request,) = traced.named("POST /start_job")
    assert request.kind is SpanKind.SERVER
    assert request.context.trace_id == trace_id
    assert request.parent is not None and request.parent.span_id == parent_id
    assert request.attributes is not None and request.attributes[REQUEST_ID] == "req-http-1"
    children = [
        s for s in traced.finished() if s.parent and s.parent.span_id == request.context.span_id
    ]
    assert {"POST", "db.transaction"} <= {s.name for s in children}


async def test_an_agent_run_is_a_span_with_its_job(traced: Traced) -> None:
    server = traced.server
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        started = await stub.StartJob(start_request("run me"))
        await server.sandbox.lock_funds(started.blockchain_identifier)
        async with asyncio.timeout(20):
            async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=started.job_id)):
                final = update.job
    assert final.status == jobs_pb2.JOB_STATUS_COMPLETED
    (run,) = traced.named("agent.run")
    assert run.attributes is not None and run.attributes["agentjobs.job_id"] == started.job_id
    assert run.end_time is not None and run.start_time is not None
    # The result's submission to the payment service is traced as well.
    urls = [str((s.attributes or {}).get("http.url")) for s in traced.named("POST")]
    assert any(url.endswith("/submit-result") for url in urls), urls


async def test_no_span_holds_a_secret(traced: Traced) -> None:
    server = traced.server
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        await jobs_pb2_grpc.JobServiceStub(channel).StartJob(start_request("secret?"))
        await operator_pb2_grpc.OperatorServiceStub(channel).GetEarningsReport(
            operator_pb2.GetEarningsReportRequest(),
            metadata=(("authorization", f"Bearer {server.operator_token}"),),
        )
    secrets = [server.operator_token, server.sandbox.api_key]
    for span in traced.finished():
        shown = repr(dict(span.attributes or {})) + span.name
        for secret in secrets:
            assert secret not in shown, span.name


async def test_health_and_reflection_still_work_with_tracing_on(traced: Traced) -> None:
    async with grpc.aio.insecure_channel(traced.server.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        checked = await health.Check(health_pb2.HealthCheckRequest())
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest())
        first = await asyncio.wait_for(watch.read(), 10)
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
    assert traced.named("/grpc.health.v1.Health/Check")
