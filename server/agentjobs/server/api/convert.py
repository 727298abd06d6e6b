"""proto <-> domain translation for the gRPC servicers."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any, cast

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import DecodeError

from agentjobs.server.domain import (
    EarningsReport,
    EventType,
    FieldViolation,
    InvalidArgumentError,
    Invoice,
    InvoiceStatus,
    Job,
    JobEvent,
    JobStatus,
    MoneyTotal,
)
from agentjobs.server.services.operator import Replica
from agentjobs.v1 import input_schema_pb2, jobs_pb2, operator_pb2

log = logging.getLogger(__name__)

_STATUS_TO_PB: dict[JobStatus, jobs_pb2.JobStatus] = {
    JobStatus.AWAITING_PAYMENT: jobs_pb2.JOB_STATUS_AWAITING_PAYMENT,
    JobStatus.AWAITING_INPUT: jobs_pb2.JOB_STATUS_AWAITING_INPUT,
    JobStatus.RUNNING: jobs_pb2.JOB_STATUS_RUNNING,
    JobStatus.COMPLETED: jobs_pb2.JOB_STATUS_COMPLETED,
    JobStatus.FAILED: jobs_pb2.JOB_STATUS_FAILED,
}
_STATUS_FROM_PB: dict[int, JobStatus] = {v: k for k, v in _STATUS_TO_PB.items()}
_EVENT_TO_PB: dict[EventType, jobs_pb2.JobEventType] = {
    event: cast(jobs_pb2.JobEventType, jobs_pb2.JobEventType.Value(f"JOB_EVENT_TYPE_{event.value}"))
    for event in EventType
}
_INVOICE_TO_PB: dict[InvoiceStatus, operator_pb2.InvoiceStatus] = {
    status: cast(
        operator_pb2.InvoiceStatus,
        operator_pb2.InvoiceStatus.Value(f"INVOICE_STATUS_{status.name}"),
    )
    for status in InvoiceStatus
}
_INVOICE_FROM_PB: dict[int, InvoiceStatus] = {v: k for k, v in _INVOICE_TO_PB.items()}


def struct_to_dict(struct: struct_pb2.Struct, field: str) -> dict[str, Any]:
    """Struct carries every number as a double; integral values become ints again so
    the MIP-004 input hash over gRPC equals the one over JSON (3, not 3.0)."""
    try:
        plain = json_format.MessageToDict(struct)
    except (json_format.SerializeToJsonError, ValueError, RecursionError) as exc:
        # NaN / Infinity, or a value JSON cannot represent: the input hash is over JSON.
        raise InvalidArgumentError(
            f"{field} holds a value JSON cannot carry",
            [FieldViolation(field, f"not representable as JSON: {exc}"[:200])],
        ) from None
    return _ints_back(plain, field)


def _ints_back(value: Any, field: str) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError(
                f"{field} holds a number JSON cannot carry",
                [FieldViolation(field, "NaN and infinity are not allowed")],
            )
        # The same bound as the door rules (domain/input_rules.MAX_SAFE_INTEGER).
        return int(value) if value.is_integer() and abs(value) <= 2**53 else value
    if isinstance(value, dict):
        return {k: _ints_back(v, f"{field}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_ints_back(v, field) for v in value]
    return value


def dict_to_struct(value: dict[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if value:
        struct.update(value)
    return struct


def stored_input_struct(job: Job) -> struct_pb2.Struct:
    """A job's input as a Struct. Input accepted today always converts (the door rules
    see to it); a job stored before those rules may hold one that cannot (too deep, an
    integer beyond a double): it is shown without input rather than poisoning every
    read of it, and of every page of ListJobs that holds it."""
    try:
        return dict_to_struct(job.input_data)
    except (ValueError, TypeError, OverflowError, RecursionError, DecodeError) as exc:
        log.warning(
            "job %s: its stored input_data cannot be carried in a protobuf Struct (%s); "
            "answering it without input_data",
            job.job_id,
            type(exc).__name__,
        )
        return struct_pb2.Struct()


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def from_timestamp(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def status_to_pb(status: JobStatus) -> jobs_pb2.JobStatus:
    return _STATUS_TO_PB[status]


def status_from_pb(value: int, field: str = "status") -> JobStatus | None:
    if value == jobs_pb2.JOB_STATUS_UNSPECIFIED:
        return None
    try:
        return _STATUS_FROM_PB[value]
    except KeyError:
        raise InvalidArgumentError(
            f"{field} {value} is not a job status", [FieldViolation(field, "unknown job status")]
        ) from None


def invoice_status_from_pb(value: int) -> InvoiceStatus | None:
    if value == operator_pb2.INVOICE_STATUS_UNSPECIFIED:
        return None
    try:
        return _INVOICE_FROM_PB[value]
    except KeyError:
        raise InvalidArgumentError(
            f"status {value} is not an invoice status",
            [FieldViolation("status", "unknown invoice status")],
        ) from None


def input_schema_to_pb(schema: dict[str, Any] | None) -> input_schema_pb2.InputSchema | None:
    if not schema:
        return None
    message = input_schema_pb2.InputSchema()
    json_format.ParseDict(schema, message, ignore_unknown_fields=True)
    return message


def job_to_pb(job: Job) -> jobs_pb2.Job:
    message = jobs_pb2.Job(
        job_id=job.job_id,
        status=status_to_pb(job.status),
        status_id=job.status_id,
        identifier_from_purchaser=job.identifier_from_purchaser,
        input_hash=job.input_hash,
        blockchain_identifier=job.blockchain_identifier,
        agent_identifier=job.agent_identifier,
        seller_vkey=job.seller_vkey,
        pay_by_time=job.pay_by_time,
        submit_result_time=job.submit_result_time,
        unlock_time=job.unlock_time,
        external_dispute_unlock_time=job.external_dispute_unlock_time,
        input_data=stored_input_struct(job),
        create_time=timestamp(job.created_at),
        update_time=timestamp(job.updated_at),
    )
    if job.status is JobStatus.AWAITING_INPUT:
        schema = input_schema_to_pb(job.input_schema)
        if schema is not None:
            message.input_schema.CopyFrom(schema)
        message.input_request_message = job.input_request_message or ""
    if job.status is JobStatus.COMPLETED and job.result is not None:
        message.result = job.result
    if job.status is JobStatus.FAILED and job.error is not None:
        message.error.reason = job.error.reason
        message.error.message = job.error.message
    message.pricing = job.pricing
    message.payment_source_type = job.payment_source_type or ""
    if job.payment_source_index is not None:
        message.supported_payment_source_index = job.payment_source_index
    if job.step is not None:
        message.next_step = job.step.value
        if job.run_at is not None:
            message.next_step_time.FromMilliseconds(job.run_at)
    return message


def operator_job_to_pb(job: Job) -> jobs_pb2.Job:
    """The job as the operator sees it: with what needs a person."""
    message = job_to_pb(job)
    if job.attention is not None:
        message.attention.CopyFrom(
            jobs_pb2.Attention(
                reason=job.attention.reason,
                message=job.attention.message,
                action=job.attention.action,
                since=timestamp(job.attention.since),
            )
        )
    return message


def status_response(job: Job) -> jobs_pb2.GetJobStatusResponse:
    full = job_to_pb(job)
    response = jobs_pb2.GetJobStatusResponse(
        job_id=full.job_id,
        status_id=full.status_id,
        status=full.status,
        input_request_message=full.input_request_message,
        update_time=full.update_time,
    )
    if full.HasField("input_schema"):
        response.input_schema.CopyFrom(full.input_schema)
    if full.HasField("result"):
        response.result = full.result
    if full.HasField("error"):
        response.error.CopyFrom(full.error)
    return response


def start_response(job: Job) -> jobs_pb2.StartJobResponse:
    return jobs_pb2.StartJobResponse(
        job_id=job.job_id,
        blockchain_identifier=job.blockchain_identifier,
        pay_by_time=job.pay_by_time,
        submit_result_time=job.submit_result_time,
        unlock_time=job.unlock_time,
        external_dispute_unlock_time=job.external_dispute_unlock_time,
        agent_identifier=job.agent_identifier,
        seller_vkey=job.seller_vkey,
        identifier_from_purchaser=job.identifier_from_purchaser,
        input_hash=job.input_hash,
        status=status_to_pb(job.status),
        payment_source_type=job.payment_source_type or "",
        supported_payment_source_index=job.payment_source_index,
    )


def event_to_pb(event: JobEvent) -> jobs_pb2.JobEvent:
    return jobs_pb2.JobEvent(
        sequence=event.sequence,
        type=_EVENT_TO_PB[event.type],
        status=status_to_pb(event.status),
        detail=event.detail,
        event_time=timestamp(event.created_at),
    )


def invoice_to_pb(invoice: Invoice) -> operator_pb2.Invoice:
    return operator_pb2.Invoice(
        blockchain_identifier=invoice.blockchain_identifier,
        job_id=invoice.job_id,
        status=_INVOICE_TO_PB[invoice.status],
        amounts=[operator_pb2.Amount(amount=a.amount, unit=a.unit) for a in invoice.amounts],
        on_chain_state=invoice.on_chain_state or "",
        create_time=timestamp(invoice.created_at),
        paid_time=timestamp(invoice.paid_at),
        update_time=timestamp(invoice.updated_at),
    )


def _money(total: MoneyTotal) -> operator_pb2.MoneyTotal:
    return operator_pb2.MoneyTotal(
        count=total.count,
        amounts=[operator_pb2.Amount(amount=a.amount, unit=a.unit) for a in total.amounts],
    )


def earnings_to_pb(report: EarningsReport) -> operator_pb2.GetEarningsReportResponse:
    return operator_pb2.GetEarningsReportResponse(
        earned=_money(report.total(InvoiceStatus.WITHDRAWN)),
        locked=_money(report.total(InvoiceStatus.PAID)),
        pending=_money(report.total(InvoiceStatus.PENDING)),
        expired=_money(report.total(InvoiceStatus.EXPIRED)),
        refunded=_money(report.total(InvoiceStatus.REFUNDED)),
        invalid=_money(report.total(InvoiceStatus.INVALID)),
        jobs_by_status=[
            operator_pb2.JobStatusCount(
                status=status_to_pb(status), count=report.jobs_by_status.get(status, 0)
            )
            for status in JobStatus
        ],
        recent=[invoice_to_pb(i) for i in report.recent],
        submitted=_money(report.total(InvoiceStatus.SUBMITTED)),
        confirmed=_money(report.total(InvoiceStatus.CONFIRMED)),
        disputed=_money(report.total(InvoiceStatus.DISPUTED)),
        dispute_resolved=_money(report.total(InvoiceStatus.DISPUTE_RESOLVED)),
        free_jobs=report.free_jobs,
    )


def replica_to_pb(replica: Replica) -> operator_pb2.Replica:
    message = operator_pb2.Replica(
        replica_id=replica.replica_id,
        role=replica.role,
        steps_held=replica.steps_held,
        leads_payment_monitor=replica.leads_monitor,
        gone=replica.gone,
    )
    message.start_time.FromMilliseconds(replica.started_at_ms)
    message.heartbeat_time.FromMilliseconds(replica.heartbeat_at_ms)
    return message
