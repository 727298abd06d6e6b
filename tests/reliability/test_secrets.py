"""Security: operator RPCs refuse a missing or wrong token, and no configured secret
(payment API key, operator token, a presented wrong token) ever reaches a log line or
an error message, through a full job and the failure paths, at DEBUG level."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.testing import running_server
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc, operator_pb2, operator_pb2_grpc
from tests.support import error_details

PAYMENT_KEY = "pk-secret-3f9a1c7e5b2d4a6c"
WRONG_PAYMENT_KEY = "pk-wrong-8e7d6c5b4a392817"
OPERATOR_TOKEN = "op-secret-0a1b2c3d4e5f6789"
PRESENTED_WRONG_TOKEN = "op-guess-99887766554433"
AGENT_IDENTIFIER = "secretstest" + "0" * 60
SECRETS = [PAYMENT_KEY, WRONG_PAYMENT_KEY, OPERATOR_TOKEN, PRESENTED_WRONG_TOKEN]


def request() -> jobs_pb2.StartJobRequest:
    data = struct_pb2.Struct()
    data.update({"text": "secret keeping"})
    return jobs_pb2.StartJobRequest(identifier_from_purchaser="aabbccddeeff0011", input_data=data)


async def test_secrets_stay_out_of_logs_and_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    sandbox = SandboxPaymentService(api_key=PAYMENT_KEY, lock_after=0, settle_after=0.02)
    url = await sandbox.start("127.0.0.1", 0)
    try:
        common: dict[str, Any] = {
            "payment_service_url": url,
            "agent_identifier": AGENT_IDENTIFIER,
            "operator_token": OPERATOR_TOKEN,
            "log_level": "DEBUG",
        }
        async with (
            running_server(tmp_path / "good", payment_api_key=PAYMENT_KEY, **common) as server,
            grpc.aio.insecure_channel(server.grpc_target) as channel,
        ):
            jobs = jobs_pb2_grpc.JobServiceStub(channel)
            operator = operator_pb2_grpc.OperatorServiceStub(channel)
            started = await jobs.StartJob(request())
            async with asyncio.timeout(30):
                async for update in jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=started.job_id)):
                    final = update.job
            assert final.status == jobs_pb2.JOB_STATUS_COMPLETED

            for metadata, code in [
                ((), grpc.StatusCode.UNAUTHENTICATED),
                ((("authorization", f"Bearer {PRESENTED_WRONG_TOKEN}"),), None),
            ]:
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await operator.GetEarningsReport(
                        operator_pb2.GetEarningsReportRequest(), metadata=metadata
                    )
                assert raised.value.code() in (
                    {code} if code else {grpc.StatusCode.PERMISSION_DENIED}
                )
                messages.append(raised.value.details() or "")
            report = await operator.GetEarningsReport(
                operator_pb2.GetEarningsReportRequest(),
                metadata=(("authorization", f"Bearer {OPERATOR_TOKEN}"),),
            )
            assert report.jobs_by_status

        async with (
            running_server(
                tmp_path / "bad", payment_api_key=WRONG_PAYMENT_KEY, **common
            ) as misconfigured,
            grpc.aio.insecure_channel(misconfigured.grpc_target) as channel,
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await jobs_pb2_grpc.JobServiceStub(channel).StartJob(request())
            assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert error_details(raised.value)[0] == "PAYMENT_SERVICE_MISCONFIGURED"
            messages.append(raised.value.details() or "")
    finally:
        await sandbox.stop()

    assert caplog.records, "nothing was logged: the check below would prove nothing"
    logged = caplog.text + "\n".join(messages)
    for secret in SECRETS:
        assert secret not in logged, f"a secret leaked: {secret[:6]}…"
