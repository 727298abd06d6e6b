"""How the CLI shows things: times, amounts, JSON documents and rich tables.

Free of typer; rich is imported here because only the CLI uses this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from agentjobs.client.convert import (
    event_type_name,
    invoice_status_name,
    job_status_name,
    struct_to_dict,
)
from agentjobs.v1 import input_schema_pb2, jobs_pb2, operator_pb2

LOVELACE_PER_ADA = 1_000_000
POLICY_ID_HEX_CHARS = 56
NONE = "—"

# Ids and times are read (and copied) whole: the other columns wrap instead.
UNBROKEN_COLUMNS = frozenset({"job id", "updated"})

STATUS_STYLE = {
    "awaiting_payment": "yellow",
    "awaiting_input": "magenta",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "pending": "yellow",
    "paid": "cyan",
    "withdrawn": "green",
    "expired": "dim",
    "refunded": "magenta",
    "invalid": "red",
}


# -- values ------------------------------------------------------------------
def local_time(moment: datetime) -> str:
    """2025-01-31 12:00:05 CET: local time, to the second, with its zone."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def format_ms(ms: int) -> str:
    """Epoch milliseconds -> local time; 0 (unset) -> a dash."""
    if not ms:
        return NONE
    return local_time(datetime.fromtimestamp(ms / 1000, tz=UTC))


def format_timestamp(ts: timestamp_pb2.Timestamp | None) -> str:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return NONE
    return local_time(ts.ToDatetime(tzinfo=UTC))


def is_lovelace(unit: str) -> bool:
    return unit in ("", "lovelace")


def format_ada(lovelace: int) -> str:
    """12_500_000 -> "12.5 ADA": exact (integer arithmetic), no trailing zeros."""
    sign = "-" if lovelace < 0 else ""
    whole, fraction = divmod(abs(lovelace), LOVELACE_PER_ADA)
    decimals = f"{fraction:06d}".rstrip("0")
    return f"{sign}{whole:,}{'.' + decimals if decimals else ''} ADA"


def asset_label(unit: str) -> str:
    """A native asset's unit is its policy id (56 hex) + its name in hex: show the name
    when it is printable, else a shortened unit. --json keeps the exact unit."""
    name_hex = unit[POLICY_ID_HEX_CHARS:]
    try:
        name = bytes.fromhex(name_hex).decode("ascii")
    except ValueError:
        name = ""
    if name and name.isprintable() and not name.isspace():
        return name
    return unit if len(unit) <= 16 else f"{unit[:8]}…{unit[-6:]}"


def format_amount(amount: int, unit: str) -> str:
    """Lovelace as ADA; other assets as the integer in their smallest unit + their name."""
    if is_lovelace(unit):
        return format_ada(amount)
    return f"{amount:,} {asset_label(unit)}"


def format_amounts(amounts: Iterable[operator_pb2.Amount]) -> str:
    parts = [format_amount(a.amount, a.unit) for a in amounts]
    return ", ".join(parts) if parts else NONE


def styled(name: str) -> Text:
    return Text(name, style=STATUS_STYLE.get(name, ""))


# -- JSON --------------------------------------------------------------------
def to_dict(message: Message) -> dict[str, Any]:
    """Canonical proto3 JSON (int64 as strings, enums by name) with the .proto's field
    names, every field present: what grpcurl prints, stable for scripts."""
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def dumps(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False)


# -- tables ------------------------------------------------------------------
def key_values(rows: Sequence[tuple[str, RenderableType | str]], title: str = "") -> Table:
    table = Table(show_header=False, box=None, title=title or None, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


def started_view(started: jobs_pb2.StartJobResponse) -> Table:
    return key_values(
        [
            ("job id", started.job_id),
            ("status", styled(job_status_name(started.status))),
            ("identifier", started.identifier_from_purchaser),
            ("blockchain id", started.blockchain_identifier),
            ("pay by", format_ms(started.pay_by_time)),
            ("submit result by", format_ms(started.submit_result_time)),
            ("unlock", format_ms(started.unlock_time)),
            ("dispute unlock", format_ms(started.external_dispute_unlock_time)),
            ("input hash", started.input_hash),
            ("agent", started.agent_identifier),
            ("seller vkey", started.seller_vkey),
        ],
        title="Job started",
    )


def _outcome_rows(
    status: int, result: str | None, error: jobs_pb2.JobError, request_message: str
) -> list[tuple[str, RenderableType | str]]:
    rows: list[tuple[str, RenderableType | str]] = []
    if status == jobs_pb2.JOB_STATUS_AWAITING_INPUT and request_message:
        rows.append(("input requested", request_message))
    if result is not None:
        rows.append(("result", result))
    if error.reason or error.message:
        rows.append(("error", Text(f"{error.reason}: {error.message}", style="red")))
    return rows


def status_view(status: jobs_pb2.GetJobStatusResponse) -> RenderableType:
    rows: list[tuple[str, RenderableType | str]] = [
        ("job id", status.job_id),
        ("status", styled(job_status_name(status.status))),
        ("status id", status.status_id),
        ("updated", format_timestamp(status.update_time)),
    ]
    rows += _outcome_rows(
        status.status,
        status.result if status.HasField("result") else None,
        status.error,
        status.input_request_message,
    )
    parts: list[RenderableType] = [key_values(rows)]
    if status.status == jobs_pb2.JOB_STATUS_AWAITING_INPUT and status.HasField("input_schema"):
        parts.append(schema_table(status.input_schema, title="Input requested"))
    return Group(*parts)


def job_view(job: jobs_pb2.Job) -> Table:
    rows: list[tuple[str, RenderableType | str]] = [
        ("job id", job.job_id),
        ("status", styled(job_status_name(job.status))),
        ("updated", format_timestamp(job.update_time)),
    ]
    rows += _outcome_rows(
        job.status,
        job.result if job.HasField("result") else None,
        job.error,
        job.input_request_message,
    )
    return key_values(rows)


def jobs_table(jobs: Sequence[jobs_pb2.Job]) -> Table:
    table = Table(title=f"Jobs ({len(jobs)})", title_justify="left")
    for column in ("job id", "status", "created"):
        table.add_column(column, no_wrap=True)
    table.add_column("input", overflow="fold")
    for job in jobs:
        text = json.dumps(struct_to_dict(job.input_data), ensure_ascii=False)
        table.add_row(
            job.job_id,
            styled(job_status_name(job.status)),
            format_timestamp(job.create_time),
            text if len(text) <= 60 else text[:59] + "…",
        )
    return table


def _field_rows(fields: Iterable[input_schema_pb2.InputField]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for field in fields:
        rules = {v.validation: v.value for v in field.validations}
        optional = rules.pop("optional", "false").lower() == "true"
        data = struct_to_dict(field.data)
        rows.append(
            (
                field.id,
                field.type,
                field.name,
                "no" if optional else "yes",
                ", ".join(f"{k}={v}" for k, v in rules.items()),
                str(data.get("description", data.get("placeholder", ""))),
            )
        )
    return rows


def schema_table(schema: input_schema_pb2.InputSchema, title: str = "Input schema") -> Table:
    table = Table(title=title, title_justify="left")
    grouped = bool(schema.input_groups)
    if grouped:
        table.add_column("group")
    for column in ("id", "type", "name", "required", "rules", "description"):
        table.add_column(column, overflow="fold")
    for row in _field_rows(schema.input_data):
        table.add_row(*(("",) if grouped else ()), *row)
    for group in schema.input_groups:
        for row in _field_rows(group.input_data):
            table.add_row(group.title or group.id, *row)
    return table


def availability_view(answer: jobs_pb2.GetAvailabilityResponse) -> RenderableType:
    available = answer.availability == jobs_pb2.AVAILABILITY_AVAILABLE
    shown = Text("available", style="green") if available else Text("unavailable", style="red")
    rows: list[tuple[str, RenderableType | str]] = [
        ("availability", shown),
        ("type", answer.type),
        ("agent", answer.agent_identifier),
        ("message", answer.message),
    ]
    if answer.sandbox:
        rows.append(("payments", Text("SANDBOX: no real funds move", style="bold yellow")))
    return key_values(rows)


def event_line(update: jobs_pb2.WatchJobResponse) -> Text:
    job = update.job
    status = job_status_name(job.status)
    if not update.HasField("event"):
        line = Text(f"{format_timestamp(job.update_time)}  watching {job.job_id}: ")
        line.append(status, style=STATUS_STYLE.get(status, ""))
        return line
    event = update.event
    line = Text(f"{format_timestamp(event.event_time)}  #{event.sequence:<3} ")
    line.append(f"{event_type_name(event.type):<22}", style="bold")
    line.append(status, style=STATUS_STYLE.get(status, ""))
    if event.detail:
        line.append(f"  {event.detail}", style="dim")
    return line


# -- operator ----------------------------------------------------------------
MONEY_ROWS: tuple[tuple[str, str], ...] = (
    ("earned", "Earned (withdrawn)"),
    ("locked", "Locked in escrow"),
    ("pending", "Pending"),
    ("expired", "Expired / cancelled"),
    ("refunded", "Refunded"),
    ("invalid", "Invalid"),
)


def earnings_is_empty(report: operator_pb2.GetEarningsReportResponse) -> bool:
    return not report.recent and all(getattr(report, name).count == 0 for name, _ in MONEY_ROWS)


def earnings_view(
    report: operator_pb2.GetEarningsReportResponse, period: str = ""
) -> RenderableType:
    title = "Earnings" + (f" ({period})" if period else "")
    if earnings_is_empty(report):
        return Group(
            Text(title, style="bold"),
            Text("No invoices yet in this period: nothing earned, nothing pending."),
            Text("Start a job with `agentjobs start --input key=value` to see money move."),
        )
    money = Table(title=title, title_justify="left")
    money.add_column("")
    money.add_column("invoices", justify="right")
    money.add_column("amount", justify="right")
    for name, label in MONEY_ROWS:
        total: operator_pb2.MoneyTotal = getattr(report, name)
        money.add_row(label, str(total.count), format_amounts(total.amounts))

    # The period filters invoices only; the job counts are the books as they are now.
    jobs = Table(title="Jobs by status (now)", title_justify="left")
    jobs.add_column("status")
    jobs.add_column("jobs", justify="right")
    for item in report.jobs_by_status:
        jobs.add_row(styled(job_status_name(item.status)), str(item.count))

    recent = invoices_table(report.recent, title="Recent earnings")
    return Group(money, jobs, recent)


def invoices_table(invoices: Sequence[operator_pb2.Invoice], title: str = "Invoices") -> Table:
    table = Table(title=f"{title} ({len(invoices)})", title_justify="left")
    for column in ("job id", "amount", "state", "on chain", "updated"):
        table.add_column(
            column,
            overflow="fold",
            no_wrap=column in UNBROKEN_COLUMNS,
            justify="right" if column == "amount" else "left",
        )
    for invoice in invoices:
        table.add_row(
            invoice.job_id,
            format_amounts(invoice.amounts),
            styled(invoice_status_name(invoice.status)),
            invoice.on_chain_state or NONE,
            format_timestamp(invoice.update_time),
        )
    return table
