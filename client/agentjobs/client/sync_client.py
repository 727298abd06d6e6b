"""JobClient: the typed blocking client of JobService and OperatorService."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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


class JobClient:
    """Blocking client; same constructor and methods as AsyncJobClient.

    Failed calls raise `agentjobs.client.errors.AgentJobsError` subclasses.
    TLS is used when `tls` is true or a `ca_file` (the server's CA; default: the system
    roots) or a client `cert_file` + `key_file` (mutual TLS) is given; else plaintext.
    `operator_token` is sent only on operator calls (OperatorService, ListJobs).
    `default_timeout` (seconds)
    is the deadline of every unary call; pass `timeout=` to override it (`None`: no
    deadline). WatchJob has no deadline unless one is given. Calls failing with
    UNAVAILABLE are retried with backoff by gRPC itself (see `service_config`);
    `retry_policy` replaces the default policy. Thread-safe.
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
        s = connection_settings(
            target,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            tls=tls,
            operator_token=operator_token,
            retry_policy=retry_policy,
            options=options,
        )
        self._settings = s
        self.target = target
        self.default_timeout = default_timeout
        # The underlying channel, e.g. for connectivity checks or other stubs.
        self.channel: grpc.Channel
        if s.credentials is None:
            self.channel = grpc.insecure_channel(s.target, options=s.options)
        else:
            self.channel = grpc.secure_channel(s.target, s.credentials, options=s.options)
        self.jobs_stub: Any = jobs_pb2_grpc.JobServiceStub(self.channel)
        self.operator_stub: Any = operator_pb2_grpc.OperatorServiceStub(self.channel)

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _unary(self, method: Any, request: Any, timeout: Timeout, *, operator: bool = False) -> Any:
        metadata = self._settings.operator_metadata if operator else None
        try:
            return method(
                request,
                timeout=resolve_timeout(timeout, self.default_timeout),
                metadata=metadata,
            )
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc

    # -- JobService ----------------------------------------------------------
    def start_job(
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
        response: jobs_pb2.StartJobResponse = self._unary(self.jobs_stub.StartJob, request, timeout)
        return response

    def get_job_status(
        self, job_id: str, *, timeout: Timeout = DEFAULT
    ) -> jobs_pb2.GetJobStatusResponse:
        request = jobs_pb2.GetJobStatusRequest(job_id=job_id)
        response: jobs_pb2.GetJobStatusResponse = self._unary(
            self.jobs_stub.GetJobStatus, request, timeout
        )
        return response

    def provide_input(
        self,
        job_id: str,
        status_id: str,
        input_data: Mapping[str, Any] | None,
        *,
        request_id: str | None = None,
        timeout: Timeout = DEFAULT,
    ) -> jobs_pb2.ProvideInputResponse:
        request = requests.provide_input(job_id, status_id, input_data, request_id)
        response: jobs_pb2.ProvideInputResponse = self._unary(
            self.jobs_stub.ProvideInput, request, timeout
        )
        return response

    def get_availability(self, *, timeout: Timeout = DEFAULT) -> jobs_pb2.GetAvailabilityResponse:
        response: jobs_pb2.GetAvailabilityResponse = self._unary(
            self.jobs_stub.GetAvailability, jobs_pb2.GetAvailabilityRequest(), timeout
        )
        return response

    def get_input_schema(self, *, timeout: Timeout = DEFAULT) -> jobs_pb2.GetInputSchemaResponse:
        response: jobs_pb2.GetInputSchemaResponse = self._unary(
            self.jobs_stub.GetInputSchema, jobs_pb2.GetInputSchemaRequest(), timeout
        )
        return response

    def get_demo(self, *, timeout: Timeout = DEFAULT) -> jobs_pb2.GetDemoResponse:
        response: jobs_pb2.GetDemoResponse = self._unary(
            self.jobs_stub.GetDemo, jobs_pb2.GetDemoRequest(), timeout
        )
        return response

    def list_jobs(
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
        response: jobs_pb2.ListJobsResponse = self._unary(
            self.jobs_stub.ListJobs, request, timeout, operator=True
        )
        return response

    def iter_jobs(
        self, *, status: JobStatusArg = None, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> Iterator[jobs_pb2.Job]:
        """Every job, newest first, following next_page_token (timeout is per page)."""
        token = ""
        while True:
            page = self.list_jobs(
                page_size=page_size, page_token=token, status=status, timeout=timeout
            )
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def watch(
        self, job_id: str, *, timeout: float | None = None
    ) -> Iterator[jobs_pb2.WatchJobResponse]:
        """The job's snapshot, then one message per event, until the job is terminal.
        Leaving the loop early (or closing the generator) cancels the stream."""
        call = self.jobs_stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), timeout=timeout)
        try:
            yield from call
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()

    def wait(self, job_id: str, *, timeout: float | None = None) -> jobs_pb2.Job:
        """Watches the job until it is terminal and returns its final snapshot."""
        last: jobs_pb2.Job | None = None
        for update in self.watch(job_id, timeout=timeout):
            last = update.job
        return final_snapshot(job_id, last)

    # -- OperatorService -----------------------------------------------------
    def get_earnings_report(
        self,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        recent_limit: int = 0,
        timeout: Timeout = DEFAULT,
    ) -> operator_pb2.GetEarningsReportResponse:
        """Naive datetimes are local time."""
        request = requests.earnings_report(start_time, end_time, recent_limit)
        response: operator_pb2.GetEarningsReportResponse = self._unary(
            self.operator_stub.GetEarningsReport, request, timeout, operator=True
        )
        return response

    def list_invoices(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        status: InvoiceStatusArg = None,
        timeout: Timeout = DEFAULT,
    ) -> operator_pb2.ListInvoicesResponse:
        request = requests.list_invoices(page_size, page_token, status)
        response: operator_pb2.ListInvoicesResponse = self._unary(
            self.operator_stub.ListInvoices, request, timeout, operator=True
        )
        return response

    def iter_invoices(
        self, *, status: InvoiceStatusArg = None, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> Iterator[operator_pb2.Invoice]:
        token = ""
        while True:
            page = self.list_invoices(
                page_size=page_size, page_token=token, status=status, timeout=timeout
            )
            yield from page.invoices
            token = page.next_page_token
            if not token:
                return

    def cancel_job(
        self, job_id: str, reason: str = "", *, timeout: Timeout = DEFAULT
    ) -> operator_pb2.CancelJobResponse:
        request = operator_pb2.CancelJobRequest(job_id=job_id, reason=reason)
        response: operator_pb2.CancelJobResponse = self._unary(
            self.operator_stub.CancelJob, request, timeout, operator=True
        )
        return response

    def list_attention(
        self, *, page_size: int = 0, page_token: str = "", timeout: Timeout = DEFAULT
    ) -> operator_pb2.ListAttentionResponse:
        """One page of the jobs whose money needs a person, most recently changed first;
        each job's `attention` says why and what to do."""
        request = operator_pb2.ListAttentionRequest(page_size=page_size, page_token=page_token)
        response: operator_pb2.ListAttentionResponse = self._unary(
            self.operator_stub.ListAttention, request, timeout, operator=True
        )
        return response

    def iter_attention(
        self, *, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> Iterator[jobs_pb2.Job]:
        """Every job needing a person, following next_page_token (timeout is per page)."""
        token = ""
        while True:
            page = self.list_attention(page_size=page_size, page_token=token, timeout=timeout)
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def recover_payment(
        self, job_id: str, *, timeout: Timeout = DEFAULT
    ) -> operator_pb2.RecoverPaymentResponse:
        """Retry what the payment service parked for this job, as its next step now.
        FailedPrecondition (NOTHING_TO_RECOVER, AGENT_AT_WORK, ...) when there is none."""
        request = operator_pb2.RecoverPaymentRequest(job_id=job_id)
        response: operator_pb2.RecoverPaymentResponse = self._unary(
            self.operator_stub.RecoverPayment, request, timeout, operator=True
        )
        return response

    def authorize_refund(
        self, job_id: str, *, timeout: Timeout = DEFAULT
    ) -> operator_pb2.AuthorizeRefundResponse:
        """Give the buyer's money back where the payment's contract allows it (V1: only
        from Disputed); FailedPrecondition (REFUND_NOT_POSSIBLE) elsewhere."""
        request = operator_pb2.AuthorizeRefundRequest(job_id=job_id)
        response: operator_pb2.AuthorizeRefundResponse = self._unary(
            self.operator_stub.AuthorizeRefund, request, timeout, operator=True
        )
        return response

    def list_replicas(self, *, timeout: Timeout = DEFAULT) -> operator_pb2.ListReplicasResponse:
        response: operator_pb2.ListReplicasResponse = self._unary(
            self.operator_stub.ListReplicas,
            operator_pb2.ListReplicasRequest(),
            timeout,
            operator=True,
        )
        return response
