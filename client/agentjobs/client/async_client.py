"""AsyncJobClient: the typed asyncio client of JobService and OperatorService."""

# `timeout` here is the gRPC deadline: it travels to the server, which stops work when it
# passes. asyncio.timeout (what ASYNC109 suggests) would only cancel locally.
# ruff: noqa: ASYNC109

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import grpc

from agentjobs.client import requests
from agentjobs.client.channel import (
    DEFAULT,
    StrPath,
    Timeout,
    connection_settings,
    resolve_timeout,
)
from agentjobs.client.errors import error_from_rpc, final_snapshot
from agentjobs.client.requests import InvoiceStatusArg, JobStatusArg
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc, operator_pb2, operator_pb2_grpc


class AsyncJobClient:
    """Async client. Failed calls raise `agentjobs.client.errors.AgentJobsError` subclasses.

    TLS is used when `tls` is true or a `ca_file` (the server's CA; default: the system
    roots) or a client `cert_file` + `key_file` (mutual TLS) is given; else plaintext.
    `operator_token` is sent only on operator calls (OperatorService, ListJobs).
    `default_timeout` (seconds)
    is the deadline of every unary call; pass `timeout=` to a method to override it
    (`timeout=None`: no deadline). WatchJob has no deadline unless one is given.
    Calls failing with UNAVAILABLE are retried with backoff by gRPC itself (see
    `service_config`); `retry_policy` replaces the default policy.
    The channel is created on first use, inside the running event loop.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        ca_file: StrPath | None = None,
        cert_file: StrPath | None = None,
        key_file: StrPath | None = None,
        tls: bool = False,
        operator_token: str | None = None,
        default_timeout: float | None = 10.0,
        retry_policy: dict[str, Any] | None = None,
        options: list[tuple[str, Any]] | None = None,
    ) -> None:
        self._settings = connection_settings(
            target,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            tls=tls,
            operator_token=operator_token,
            retry_policy=retry_policy,
            options=options,
        )
        self.target = target
        self.default_timeout = default_timeout
        self._channel: grpc.aio.Channel | None = None
        self._jobs: Any = None
        self._operator: Any = None

    # -- lifecycle -----------------------------------------------------------
    def _connect(self) -> None:
        s = self._settings
        if s.credentials is None:
            self._channel = grpc.aio.insecure_channel(s.target, options=s.options)
        else:
            self._channel = grpc.aio.secure_channel(s.target, s.credentials, options=s.options)
        self._jobs = jobs_pb2_grpc.JobServiceStub(self._channel)
        self._operator = operator_pb2_grpc.OperatorServiceStub(self._channel)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying channel, e.g. for connectivity checks or other stubs."""
        if self._channel is None:
            self._connect()
        assert self._channel is not None
        return self._channel

    @property
    def jobs_stub(self) -> Any:
        if self._channel is None:
            self._connect()
        return self._jobs

    @property
    def operator_stub(self) -> Any:
        if self._channel is None:
            self._connect()
        return self._operator

    async def close(self, grace: float | None = None) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close(grace)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _unary(
        self, method: Any, request: Any, timeout: Timeout, *, operator: bool = False
    ) -> Any:
        metadata = self._settings.operator_metadata if operator else None
        try:
            return await method(
                request,
                timeout=resolve_timeout(timeout, self.default_timeout),
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc

    # -- JobService ----------------------------------------------------------
    async def start_job(
        self,
        input_data: Mapping[str, Any] | None = None,
        *,
        identifier_from_purchaser: str | None = None,
        request_id: str | None = None,
        timeout: Timeout = DEFAULT,
    ) -> jobs_pb2.StartJobResponse:
        """Starts a job. A uuid4 request_id is filled when not given, so gRPC's own
        retries are idempotent; pass your own request_id to retry across processes.
        Without an identifier, a 20-hex-char one is filled in: random, or derived from
        your request_id so that a retry sends the same request."""
        request = requests.start_job(input_data, identifier_from_purchaser, request_id)
        response: jobs_pb2.StartJobResponse = await self._unary(
            self.jobs_stub.StartJob, request, timeout
        )
        return response

    async def get_job_status(
        self, job_id: str, *, timeout: Timeout = DEFAULT
    ) -> jobs_pb2.GetJobStatusResponse:
        request = jobs_pb2.GetJobStatusRequest(job_id=job_id)
        response: jobs_pb2.GetJobStatusResponse = await self._unary(
            self.jobs_stub.GetJobStatus, request, timeout
        )
        return response

    async def provide_input(
        self,
        job_id: str,
        status_id: str,
        input_data: Mapping[str, Any] | None,
        *,
        request_id: str | None = None,
        timeout: Timeout = DEFAULT,
    ) -> jobs_pb2.ProvideInputResponse:
        request = requests.provide_input(job_id, status_id, input_data, request_id)
        response: jobs_pb2.ProvideInputResponse = await self._unary(
            self.jobs_stub.ProvideInput, request, timeout
        )
        return response

    async def get_availability(
        self, *, timeout: Timeout = DEFAULT
    ) -> jobs_pb2.GetAvailabilityResponse:
        response: jobs_pb2.GetAvailabilityResponse = await self._unary(
            self.jobs_stub.GetAvailability, jobs_pb2.GetAvailabilityRequest(), timeout
        )
        return response

    async def get_input_schema(
        self, *, timeout: Timeout = DEFAULT
    ) -> jobs_pb2.GetInputSchemaResponse:
        response: jobs_pb2.GetInputSchemaResponse = await self._unary(
            self.jobs_stub.GetInputSchema, jobs_pb2.GetInputSchemaRequest(), timeout
        )
        return response

    async def get_demo(self, *, timeout: Timeout = DEFAULT) -> jobs_pb2.GetDemoResponse:
        response: jobs_pb2.GetDemoResponse = await self._unary(
            self.jobs_stub.GetDemo, jobs_pb2.GetDemoRequest(), timeout
        )
        return response

    async def list_jobs(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        status: JobStatusArg = None,
        timeout: Timeout = DEFAULT,
    ) -> jobs_pb2.ListJobsResponse:
        """One page, newest first. `status` is an enum value or a name like "running".
        Needs the operator token: a listing shows every caller's jobs."""
        request = requests.list_jobs(page_size, page_token, status)
        response: jobs_pb2.ListJobsResponse = await self._unary(
            self.jobs_stub.ListJobs, request, timeout, operator=True
        )
        return response

    async def iter_jobs(
        self, *, status: JobStatusArg = None, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> AsyncIterator[jobs_pb2.Job]:
        """Every job, newest first, following next_page_token (timeout is per page)."""
        token = ""
        while True:
            page = await self.list_jobs(
                page_size=page_size, page_token=token, status=status, timeout=timeout
            )
            for job in page.jobs:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def watch(
        self, job_id: str, *, timeout: float | None = None
    ) -> AsyncIterator[jobs_pb2.WatchJobResponse]:
        """The job's snapshot, then one message per event, until the job is terminal.
        Leaving the loop early cancels the stream."""
        call = self.jobs_stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), timeout=timeout)
        try:
            async for update in call:
                yield update
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()

    async def wait(self, job_id: str, *, timeout: float | None = None) -> jobs_pb2.Job:
        """Watches the job until it is terminal and returns its final snapshot."""
        last: jobs_pb2.Job | None = None
        async for update in self.watch(job_id, timeout=timeout):
            last = update.job
        return final_snapshot(job_id, last)

    # -- OperatorService -----------------------------------------------------
    async def get_earnings_report(
        self,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        recent_limit: int = 0,
        timeout: Timeout = DEFAULT,
    ) -> operator_pb2.GetEarningsReportResponse:
        """Naive datetimes are local time."""
        request = requests.earnings_report(start_time, end_time, recent_limit)
        response: operator_pb2.GetEarningsReportResponse = await self._unary(
            self.operator_stub.GetEarningsReport, request, timeout, operator=True
        )
        return response

    async def list_invoices(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        status: InvoiceStatusArg = None,
        timeout: Timeout = DEFAULT,
    ) -> operator_pb2.ListInvoicesResponse:
        request = requests.list_invoices(page_size, page_token, status)
        response: operator_pb2.ListInvoicesResponse = await self._unary(
            self.operator_stub.ListInvoices, request, timeout, operator=True
        )
        return response

    async def iter_invoices(
        self, *, status: InvoiceStatusArg = None, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> AsyncIterator[operator_pb2.Invoice]:
        token = ""
        while True:
            page = await self.list_invoices(
                page_size=page_size, page_token=token, status=status, timeout=timeout
            )
            for invoice in page.invoices:
                yield invoice
            token = page.next_page_token
            if not token:
                return

    async def cancel_job(
        self, job_id: str, reason: str = "", *, timeout: Timeout = DEFAULT
    ) -> operator_pb2.CancelJobResponse:
        request = operator_pb2.CancelJobRequest(job_id=job_id, reason=reason)
        response: operator_pb2.CancelJobResponse = await self._unary(
            self.operator_stub.CancelJob, request, timeout, operator=True
        )
        return response

    async def list_attention(
        self, *, page_size: int = 0, page_token: str = "", timeout: Timeout = DEFAULT
    ) -> operator_pb2.ListAttentionResponse:
        """One page of the jobs whose money needs a person, most recently changed first;
        each job's `attention` says why and what to do."""
        request = operator_pb2.ListAttentionRequest(page_size=page_size, page_token=page_token)
        response: operator_pb2.ListAttentionResponse = await self._unary(
            self.operator_stub.ListAttention, request, timeout, operator=True
        )
        return response

    async def iter_attention(
        self, *, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> AsyncIterator[jobs_pb2.Job]:
        """Every job needing a person, following next_page_token (timeout is per page)."""
        token = ""
        while True:
            page = await self.list_attention(page_size=page_size, page_token=token, timeout=timeout)
            for job in page.jobs:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def recover_payment(
        self, job_id: str, *, timeout: Timeout = DEFAULT
    ) -> operator_pb2.RecoverPaymentResponse:
        """Retry what the payment service parked for this job, as its next step now.
        FailedPrecondition (NOTHING_TO_RECOVER, AGENT_AT_WORK, ...) when there is none."""
        request = operator_pb2.RecoverPaymentRequest(job_id=job_id)
        response: operator_pb2.RecoverPaymentResponse = await self._unary(
            self.operator_stub.RecoverPayment, request, timeout, operator=True
        )
        return response

    async def authorize_refund(
        self, job_id: str, *, timeout: Timeout = DEFAULT
    ) -> operator_pb2.AuthorizeRefundResponse:
        """Give the buyer's money back where the payment's contract allows it (V1: only
        from Disputed); FailedPrecondition (REFUND_NOT_POSSIBLE) elsewhere."""
        request = operator_pb2.AuthorizeRefundRequest(job_id=job_id)
        response: operator_pb2.AuthorizeRefundResponse = await self._unary(
            self.operator_stub.AuthorizeRefund, request, timeout, operator=True
        )
        return response

    async def list_replicas(
        self, *, timeout: Timeout = DEFAULT
    ) -> operator_pb2.ListReplicasResponse:
        response: operator_pb2.ListReplicasResponse = await self._unary(
            self.operator_stub.ListReplicas,
            operator_pb2.ListReplicasRequest(),
            timeout,
            operator=True,
        )
        return response
