"""Rows <-> domain values. Rows come from our own schema, so values are built without
re-validation (model_construct) but with every field typed as the model declares it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel

from agentjobs.server.domain import (
    Amount,
    Invoice,
    InvoiceStatus,
    Job,
    JobError,
    JobEvent,
    JobStatus,
)
from agentjobs.server.domain.events import EventType
from agentjobs.server.domain.job import Attention
from agentjobs.server.domain.steps import Step

# Columns of `jobs` whose names and meaning are exactly the Job field of the same name.
JOB_COLUMNS = (
    "job_id",
    "status",
    "status_id",
    "identifier_from_purchaser",
    "input_data",
    "input_hash",
    "blockchain_identifier",
    "seller_vkey",
    "agent_identifier",
    "pay_by_time",
    "submit_result_time",
    "unlock_time",
    "external_dispute_unlock_time",
    "pricing",
    "payment_source_type",
    "payment_source_index",
    "deadline",
    "input_schema",
    "input_request_message",
    "result",
    "result_hash",
    "error",
    "attention",
    "recoveries",
    "request_id",
    "step",
    "run_at",
    "attempt",
    "lease_owner",
    "lease_expires_at",
    "version",
    "event_count",
    "created_at",
    "updated_at",
)


def column_value(value: Any) -> Any:
    """A domain value as the column stores it: enums by value, models as JSON dicts."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def column_values(fields: Mapping[Any, Any]) -> dict[str, Any]:
    values = {name: column_value(value) for name, value in fields.items()}
    if values.get("blockchain_identifier") == "":
        values["blockchain_identifier"] = None  # NULLs do not collide in the unique index
    return values


def job_row(job: Job) -> dict[str, Any]:
    return column_values({name: getattr(job, name) for name in JOB_COLUMNS})


def job_from_row(row: Mapping[Any, Any]) -> Job:
    values = {name: row[name] for name in JOB_COLUMNS}
    values["status"] = JobStatus(values["status"])
    values["blockchain_identifier"] = values["blockchain_identifier"] or ""
    if values["step"] is not None:
        values["step"] = Step(values["step"])
    error, attention = values["error"], values["attention"]
    values["error"] = None if error is None else JobError.model_construct(**error)
    if attention is not None:
        values["attention"] = Attention.model_validate(attention)
    return Job.model_construct(**values)


def event_from_row(row: Mapping[Any, Any]) -> JobEvent:
    return JobEvent.model_construct(
        job_id=row["job_id"],
        sequence=row["sequence"],
        type=EventType(row["type"]),
        status=JobStatus(row["status"]),
        detail=row["detail"],
        data=row["data"],
        created_at=row["created_at"],
    )


def amount_rows(blockchain_identifier: str, amounts: Iterable[Amount]) -> list[dict[str, Any]]:
    return [
        {
            "blockchain_identifier": blockchain_identifier,
            "position": position,
            "unit": amount.unit,
            "amount": amount.amount,
        }
        for position, amount in enumerate(amounts)
    ]


def invoice_from_row(row: Mapping[Any, Any], amounts: Iterable[Amount] = ()) -> Invoice:
    return Invoice.model_construct(
        blockchain_identifier=row["blockchain_identifier"],
        job_id=row["job_id"],
        status=InvoiceStatus(row["status"]),
        amounts=tuple(amounts),
        on_chain_state=row["on_chain_state"],
        next_action=row["next_action"],
        payment_source_type=row["payment_source_type"],
        created_at=row["created_at"],
        paid_at=row["paid_at"],
        updated_at=row["updated_at"],
    )


def invoices_from_joined_rows(rows: Iterable[Mapping[Any, Any]]) -> list[Invoice]:
    """Invoices from rows of invoices LEFT JOIN invoice_amounts, one row per amount,
    each invoice's rows adjacent and in amount order (an invoice without amounts has
    one row whose unit and amount are NULL)."""
    found: list[Invoice] = []
    current: Mapping[Any, Any] | None = None
    amounts: list[Amount] = []
    for row in rows:
        if current is None or row["blockchain_identifier"] != current["blockchain_identifier"]:
            if current is not None:
                found.append(invoice_from_row(current, amounts))
            current, amounts = row, []
        if row["amount"] is not None:
            amounts.append(Amount(amount=int(row["amount"]), unit=row["unit"]))
    if current is not None:
        found.append(invoice_from_row(current, amounts))
    return found
