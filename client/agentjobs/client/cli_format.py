"""How the CLI shows things: times, amounts, JSON documents and rich tables.

Free of typer; rich is imported here because only the CLI uses this module.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from rich.console import Group, RenderableType
from rich.text import Text

from agentjobs.client.cli_tables import AdaptiveTable, Cell, Column, KeyValues
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
    """One line per asset: a table column can then be as narrow as the widest amount."""
    parts = [format_amount(a.amount, a.unit) for a in amounts]
    return "\n".join(parts) if parts else NONE


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
def key_values(rows: Sequence[tuple[str, RenderableType | str]], title: str = "") -> KeyValues:
    return KeyValues(rows, title=title)


def started_view(started: jobs_pb2.StartJobResponse) -> KeyValues:
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


def job_view(job: jobs_pb2.Job) -> KeyValues:
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


# Ids and times are read (and copied) whole; the input wraps, or gives way when narrow.
JOB_COLUMNS = (
    Column("job id", no_wrap=True),
    Column("status", no_wrap=True),
    Column("created", no_wrap=True, priority=2, stack_under="status"),
    Column("input", min_width=12, priority=1),
)
INPUT_SHOWN_CHARS = 60


def jobs_table(jobs: Sequence[jobs_pb2.Job]) -> AdaptiveTable:
    rows: list[list[Cell]] = []
    for job in jobs:
        text = json.dumps(struct_to_dict(job.input_data), ensure_ascii=False)
        if len(text) > INPUT_SHOWN_CHARS:
            text = text[: INPUT_SHOWN_CHARS - 1] + "…"
        rows.append(
            [
                job.job_id,
                styled(job_status_name(job.status)),
                format_timestamp(job.create_time),
                text,
            ]
        )
    return AdaptiveTable(f"Jobs ({len(jobs)})", JOB_COLUMNS, rows)


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


SCHEMA_COLUMNS = (
    Column("id", no_wrap=True),
    Column("type", no_wrap=True),
    Column("name", min_width=10),
    Column("required", no_wrap=True, priority=1, stack_under="type"),
    Column("rules", min_width=10, priority=2),
    Column("description", min_width=12, priority=3),
)


def schema_table(
    schema: input_schema_pb2.InputSchema, title: str = "Input schema"
) -> AdaptiveTable:
    grouped = bool(schema.input_groups)
    columns = (Column("group", min_width=8), *SCHEMA_COLUMNS) if grouped else SCHEMA_COLUMNS
    rows: list[list[str]] = []
    for row in _field_rows(schema.input_data):
        rows.append([*(("",) if grouped else ()), *row])
    for group in schema.input_groups:
        for row in _field_rows(group.input_data):
            rows.append([group.title or group.id, *row])
    return AdaptiveTable(title, columns, rows)


# What to type for a field in an example --input, by MIP-003 field type.
EXAMPLE_VALUES = {"boolean": "true", "checkbox": "true", "number": "1", "range": "1"}
EXAMPLE_FIELDS = 3


def input_example(schema: input_schema_pb2.InputSchema) -> str:
    """`--input approve=true`: the --input options that answer `schema`, with example
    values of each field's type (its placeholder for a text field)."""
    fields = [*schema.input_data, *(f for g in schema.input_groups for f in g.input_data)]
    parts = []
    for field in fields[:EXAMPLE_FIELDS]:
        data = struct_to_dict(field.data)
        options = data.get("values")
        if field.type.lower() == "option" and isinstance(options, list) and options:
            value = str(options[0])
        else:
            value = EXAMPLE_VALUES.get(field.type.lower(), str(data.get("placeholder", "...")))
        parts.append(f"--input {shlex.quote(f'{field.id}={value}')}")
    return " ".join(parts) or "--input key=value"


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
    money_rows: list[list[Cell]] = []
    for name, label in MONEY_ROWS:
        total: operator_pb2.MoneyTotal = getattr(report, name)
        money_rows.append([label, str(total.count), format_amounts(total.amounts)])
    money = AdaptiveTable(title, MONEY_COLUMNS, money_rows)

    # The period filters invoices only; the job counts are the books as they are now.
    jobs = AdaptiveTable(
        "Jobs by status (now)",
        JOBS_BY_STATUS_COLUMNS,
        [[styled(job_status_name(item.status)), str(item.count)] for item in report.jobs_by_status],
    )
    recent = invoices_table(report.recent, title="Recent earnings")
    return Group(money, jobs, recent)


MONEY_COLUMNS = (
    Column("", no_wrap=True),
    Column("invoices", no_wrap=True, justify="right"),
    # Several assets are listed one per line (see format_amounts), each unbroken.
    Column("amount", no_wrap=True, justify="right"),
)
JOBS_BY_STATUS_COLUMNS = (Column("status", no_wrap=True), Column("jobs", justify="right"))
INVOICE_COLUMNS = (
    Column("job id", no_wrap=True),
    Column("amount", no_wrap=True, justify="right"),
    Column("state", no_wrap=True),
    Column("on chain", no_wrap=True, priority=1, stack_under="state"),
    Column("updated", no_wrap=True, priority=2, stack_under="amount"),
)


def invoices_table(
    invoices: Sequence[operator_pb2.Invoice], title: str = "Invoices"
) -> AdaptiveTable:
    rows: list[list[Cell]] = [
        [
            invoice.job_id,
            format_amounts(invoice.amounts),
            styled(invoice_status_name(invoice.status)),
            invoice.on_chain_state or NONE,
            format_timestamp(invoice.update_time),
        ]
        for invoice in invoices
    ]
    return AdaptiveTable(f"{title} ({len(invoices)})", INVOICE_COLUMNS, rows)
