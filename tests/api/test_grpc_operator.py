"""OperatorService: bearer-token auth, earnings from the books, invoices, cancel."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from agentjobs.server.testing import RunningServer, running_server
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc, operator_pb2, operator_pb2_grpc
from tests.support import error_details


def _auth(server: RunningServer, token: str | None = None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token or server.operator_token}"),)


async def _start(channel: grpc.aio.Channel, text: str) -> jobs_pb2.StartJobResponse:
    data = struct_pb2.Struct()
    data.update({"text": text})
    return await jobs_pb2_grpc.JobServiceStub(channel).StartJob(
        jobs_pb2.StartJobRequest(identifier_from_purchaser="00112233445566", input_data=data)
    )


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer wrong-token"),), grpc.StatusCode.PERMISSION_DENIED),
        ((("authorization", "Basic dGVzdA=="),), grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_operator_calls_need_the_token(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], code: grpc.StatusCode
) -> None:
    stub = operator_pb2_grpc.OperatorServiceStub(channel)
    for call in (
        stub.GetEarningsReport(operator_pb2.GetEarningsReportRequest(), metadata=metadata),
        stub.ListInvoices(operator_pb2.ListInvoicesRequest(), metadata=metadata),
        stub.CancelJob(operator_pb2.CancelJobRequest(job_id="x"), metadata=metadata),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == code
        assert error_details(refused.value)[0] == code.name


async def test_empty_books_give_an_empty_report(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    stub = operator_pb2_grpc.OperatorServiceStub(channel)
    report = await stub.GetEarningsReport(
        operator_pb2.GetEarningsReportRequest(), metadata=_auth(server)
    )
    assert report.earned.count == 0 and list(report.earned.amounts) == []
    assert [c.count for c in report.jobs_by_status] == [0, 0, 0, 0, 0]
    assert list(report.recent) == []


async def test_cancel_and_invoices_and_report(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    stub = operator_pb2_grpc.OperatorServiceStub(channel)
    kept = await _start(channel, "kept")
    cancelled = await _start(channel, "cancelled")
    response = await stub.CancelJob(
        operator_pb2.CancelJobRequest(job_id=cancelled.job_id, reason="buyer asked"),
        metadata=_auth(server),
    )
    assert response.job.status == jobs_pb2.JOB_STATUS_FAILED
    assert response.job.error.reason == "CANCELLED"
    assert response.job.error.message == "buyer asked"
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stub.CancelJob(
            operator_pb2.CancelJobRequest(job_id=cancelled.job_id), metadata=_auth(server)
        )
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    invoices = await stub.ListInvoices(operator_pb2.ListInvoicesRequest(), metadata=_auth(server))
    by_job = {i.job_id: i for i in invoices.invoices}
    assert by_job[kept.job_id].status == operator_pb2.INVOICE_STATUS_PENDING
    assert by_job[cancelled.job_id].status == operator_pb2.INVOICE_STATUS_EXPIRED
    price = [(a.amount, a.unit) for a in by_job[kept.job_id].amounts]
    assert price and all(amount > 0 for amount, _ in price)

    pending_only = await stub.ListInvoices(
        operator_pb2.ListInvoicesRequest(status=operator_pb2.INVOICE_STATUS_PENDING),
        metadata=_auth(server),
    )
    assert [i.job_id for i in pending_only.invoices] == [kept.job_id]

    report = await stub.GetEarningsReport(
        operator_pb2.GetEarningsReportRequest(), metadata=_auth(server)
    )
    assert report.pending.count == 1 and report.expired.count == 1
    assert [(a.amount, a.unit) for a in report.pending.amounts] == price
    counts = {jobs_pb2.JobStatus.Name(c.status): c.count for c in report.jobs_by_status}
    assert counts["JOB_STATUS_AWAITING_PAYMENT"] == 1 and counts["JOB_STATUS_FAILED"] == 1


async def test_cancel_refuses_a_job_whose_buyer_has_paid_unnoticed(tmp_path: Path) -> None:
    """The monitor has not polled since the buyer locked funds: cancel asks the payment
    service itself, refuses, and the paid job runs."""
    async with (
        running_server(tmp_path, sandbox_lock_after_s=3600, monitor_interval_s=3600) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        started = await _start(channel, "paid already")
        await server.sandbox.lock_funds(started.blockchain_identifier)
        stub = operator_pb2_grpc.OperatorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CancelJob(
                operator_pb2.CancelJobRequest(job_id=started.job_id), metadata=_auth(server)
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_details(refused.value)[0] == "FUNDS_ALREADY_LOCKED"
        # What cancel learned is applied: the job is paid and goes on to run.
        job, invoice = await server.app.repository.get_with_invoice(started.job_id)
        assert job.status.value in ("running", "completed")
        assert invoice is not None and invoice.status.value in ("paid", "submitted")


async def test_without_a_configured_token_the_operator_service_is_closed(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, operator_token=None) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        stub = operator_pb2_grpc.OperatorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetEarningsReport(
                operator_pb2.GetEarningsReportRequest(), metadata=_auth(server, "anything")
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "disabled" in (refused.value.details() or "")
