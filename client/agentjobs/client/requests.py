"""Request builders shared by the sync and asyncio clients, so both send the same bytes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias

from agentjobs.client.convert import (
    datetime_to_timestamp,
    dict_to_struct,
    identifier_for_request,
    invoice_status,
    job_status,
    new_identifier_from_purchaser,
    new_request_id,
)
from agentjobs.v1 import jobs_pb2, operator_pb2

# An enum value, or its name in any case with or without prefix ("running").
JobStatusArg: TypeAlias = int | str | None
InvoiceStatusArg: TypeAlias = int | str | None


def start_job(
    input_data: Mapping[str, Any] | None,
    identifier_from_purchaser: str | None,
    request_id: str | None,
) -> jobs_pb2.StartJobRequest:
    """A caller's own request_id makes a retry idempotent only if the retry is the same
    request: without an identifier, the one filled in is derived from the request_id."""
    if not identifier_from_purchaser:
        identifier_from_purchaser = (
            identifier_for_request(request_id) if request_id else new_identifier_from_purchaser()
        )
    return jobs_pb2.StartJobRequest(
        identifier_from_purchaser=identifier_from_purchaser,
        input_data=dict_to_struct(input_data),
        request_id=request_id or new_request_id(),
    )


def provide_input(
    job_id: str, status_id: str, input_data: Mapping[str, Any] | None, request_id: str | None
) -> jobs_pb2.ProvideInputRequest:
    return jobs_pb2.ProvideInputRequest(
        job_id=job_id,
        status_id=status_id,
        input_data=dict_to_struct(input_data),
        request_id=request_id or new_request_id(),
    )


def list_jobs(page_size: int, page_token: str, status: JobStatusArg) -> jobs_pb2.ListJobsRequest:
    return jobs_pb2.ListJobsRequest(
        page_size=page_size,
        page_token=page_token,
        status=job_status(status) if status else None,
    )


def earnings_report(
    start_time: datetime | None, end_time: datetime | None, recent_limit: int
) -> operator_pb2.GetEarningsReportRequest:
    request = operator_pb2.GetEarningsReportRequest(recent_limit=recent_limit)
    if start_time is not None:
        request.start_time.CopyFrom(datetime_to_timestamp(start_time))
    if end_time is not None:
        request.end_time.CopyFrom(datetime_to_timestamp(end_time))
    return request


def list_invoices(
    page_size: int, page_token: str, status: InvoiceStatusArg
) -> operator_pb2.ListInvoicesRequest:
    return operator_pb2.ListInvoicesRequest(
        page_size=page_size,
        page_token=page_token,
        status=invoice_status(status) if status else None,
    )
