"""agentjobs.v1.OperatorService. Authentication is the auth interceptor's job."""

from __future__ import annotations

import grpc

from agentjobs.server.api import convert
from agentjobs.server.services.earnings import EarningsService
from agentjobs.server.services.jobs import JobsService
from agentjobs.server.services.operator import OperatorService
from agentjobs.v1 import operator_pb2, operator_pb2_grpc


class OperatorServicer(operator_pb2_grpc.OperatorServiceServicer):
    def __init__(
        self, jobs: JobsService, earnings: EarningsService, operator: OperatorService
    ) -> None:
        self._jobs = jobs
        self._earnings = earnings
        self._operator = operator

    async def GetEarningsReport(
        self, request: operator_pb2.GetEarningsReportRequest, context: grpc.aio.ServicerContext
    ) -> operator_pb2.GetEarningsReportResponse:
        report = await self._earnings.report(
            start=convert.from_timestamp(request.start_time)
            if request.HasField("start_time")
            else None,
            end=convert.from_timestamp(request.end_time) if request.HasField("end_time") else None,
            recent_limit=request.recent_limit,
        )
        return convert.earnings_to_pb(report)

    async def ListInvoices(
        self, request: operator_pb2.ListInvoicesRequest, context: grpc.aio.ServicerContext
    ) -> operator_pb2.ListInvoicesResponse:
        page = await self._earnings.invoices(
            request.page_size, request.page_token, convert.invoice_status_from_pb(request.status)
        )
        return operator_pb2.ListInvoicesResponse(
            invoices=[convert.invoice_to_pb(i) for i in page.items],
            next_page_token=page.next_page_token or "",
        )

    async def CancelJob(
        self, request: operator_pb2.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> operator_pb2.CancelJobResponse:
        job = await self._jobs.cancel_job(request.job_id, request.reason)
        return operator_pb2.CancelJobResponse(job=convert.operator_job_to_pb(job))

    async def ListAttention(
        self, request: operator_pb2.ListAttentionRequest, context: grpc.aio.ServicerContext
    ) -> operator_pb2.ListAttentionResponse:
        page = await self._operator.attention(request.page_size, request.page_token)
        return operator_pb2.ListAttentionResponse(
            jobs=[convert.operator_job_to_pb(job) for job in page.items],
            next_page_token=page.next_page_token or "",
        )

    async def RecoverPayment(
        self, request: operator_pb2.RecoverPaymentRequest, context: grpc.aio.ServicerContext
    ) -> operator_pb2.RecoverPaymentResponse:
        job = await self._operator.recover(request.job_id)
        return operator_pb2.RecoverPaymentResponse(job=convert.operator_job_to_pb(job))

    async def AuthorizeRefund(
        self, request: operator_pb2.AuthorizeRefundRequest, context: grpc.aio.ServicerContext
    ) -> operator_pb2.AuthorizeRefundResponse:
        job = await self._operator.refund(request.job_id)
        return operator_pb2.AuthorizeRefundResponse(job=convert.operator_job_to_pb(job))

    async def ListReplicas(
        self, request: operator_pb2.ListReplicasRequest, context: grpc.aio.ServicerContext
    ) -> operator_pb2.ListReplicasResponse:
        replicas = await self._operator.replicas()
        return operator_pb2.ListReplicasResponse(
            replicas=[convert.replica_to_pb(replica) for replica in replicas]
        )
