"""Rows <-> domain values for the SQL backend. Each read builds a new, validated value."""

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
    "input_schema",
    "input_request_message",
    "result",
    "error",
    "request_id",
    "created_at",
    "updated_at",
)

INVOICE_COLUMNS = (
    "blockchain_identifier",
    "job_id",
    "status",
    "on_chain_state",
    "created_at",
    "paid_at",
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
    return {name: column_value(value) for name, value in fields.items()}


def job_row(job: Job) -> dict[str, Any]:
    return column_values({name: getattr(job, name) for name in JOB_COLUMNS})


def job_from_row(row: Mapping[Any, Any]) -> Job:
    error = row["error"]
    return Job(
        job_id=row["job_id"],
        status=JobStatus(row["status"]),
        status_id=row["status_id"],
        identifier_from_purchaser=row["identifier_from_purchaser"],
        input_data=row["input_data"],
        input_hash=row["input_hash"],
        blockchain_identifier=row["blockchain_identifier"],
        seller_vkey=row["seller_vkey"],
        agent_identifier=row["agent_identifier"],
        pay_by_time=row["pay_by_time"],
        submit_result_time=row["submit_result_time"],
        unlock_time=row["unlock_time"],
        external_dispute_unlock_time=row["external_dispute_unlock_time"],
        input_schema=row["input_schema"],
        input_request_message=row["input_request_message"],
        result=row["result"],
        error=None if error is None else JobError.model_validate(error),
        request_id=row["request_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def event_from_row(row: Mapping[Any, Any]) -> JobEvent:
    return JobEvent(
        job_id=row["job_id"],
        sequence=row["sequence"],
        type=row["type"],
        status=JobStatus(row["status"]),
        detail=row["detail"],
        data=row["data"],
        created_at=row["created_at"],
    )


def invoice_row(invoice: Invoice) -> dict[str, Any]:
    return column_values({name: getattr(invoice, name) for name in INVOICE_COLUMNS})


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
    return Invoice(
        blockchain_identifier=row["blockchain_identifier"],
        job_id=row["job_id"],
        status=InvoiceStatus(row["status"]),
        amounts=tuple(amounts),
        on_chain_state=row["on_chain_state"],
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
