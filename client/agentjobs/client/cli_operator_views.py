"""How the CLI shows what needs the operator, the money actions and the replicas."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2
from rich.console import Group, RenderableType
from rich.text import Text

from agentjobs.client.cli_format import NONE, format_timestamp, key_values, styled
from agentjobs.client.cli_tables import AdaptiveTable, Cell, Column, KeyValues
from agentjobs.client.convert import job_status_name
from agentjobs.v1 import jobs_pb2, operator_pb2

# The command is copied whole, so it never wraps; the account of what happened reads
# fine wrapped under the reason. At 80 columns the rows become key/value blocks.
ATTENTION_COLUMNS = (
    Column("job id", no_wrap=True),
    Column("reason", no_wrap=True),
    Column("what to do", no_wrap=True, priority=2, stack_under="job id"),
    Column("since", no_wrap=True, priority=3, stack_under="reason"),
    Column("what happened", min_width=20, priority=1, stack_under="reason"),
)


def attention_table(jobs: Sequence[jobs_pb2.Job]) -> RenderableType:
    if not jobs:
        return Group(
            Text("Needs attention (0)", style="bold"),
            Text("Nothing needs you: no job's money is waiting for a person."),
        )
    rows: list[list[Cell]] = [
        [
            job.job_id,
            Text(job.attention.reason, style="bold yellow"),
            job.attention.action or NONE,
            format_timestamp(job.attention.since),
            job.attention.message or NONE,
        ]
        for job in jobs
    ]
    return AdaptiveTable(f"Needs attention ({len(jobs)})", ATTENTION_COLUMNS, rows)


def scheduled_view(job: jobs_pb2.Job, title: str) -> KeyValues:
    """The job after a recover or refund call: its next step is the one asked for."""
    next_step = NONE
    if job.next_step:
        next_step = f"{job.next_step}, due {format_timestamp(job.next_step_time)}"
    rows: list[tuple[str, RenderableType | str]] = [
        ("job id", job.job_id),
        ("status", styled(job_status_name(job.status))),
        ("next step", next_step),
    ]
    if job.HasField("attention"):
        rows.append(("attention", f"{job.attention.reason}: {job.attention.message}"))
    return key_values(rows, title=title)


REPLICA_COLUMNS = (
    Column("replica id", no_wrap=True),
    Column("role", no_wrap=True),
    Column("heartbeat", no_wrap=True),
    Column("steps held", justify="right"),
    Column("monitor leader"),
    Column("started", no_wrap=True, priority=1, stack_under="replica id"),
)


def age(moment: timestamp_pb2.Timestamp, now: datetime) -> str:
    """How long ago, to the second, in the two largest units: `4s ago`, `3m 10s ago`."""
    seconds = max(0, int((now - moment.ToDatetime(tzinfo=UTC)).total_seconds()))
    units = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
    parts: list[str] = []
    for name, size in units:
        count, seconds = divmod(seconds, size)
        if count or parts:
            parts.append(f"{count}{name}")
    return " ".join(parts[:2] or ["0s"]) + " ago"


def replicas_table(
    replicas: Sequence[operator_pb2.Replica], now: datetime | None = None
) -> AdaptiveTable:
    now = now or datetime.now(UTC)
    rows: list[list[Cell]] = []
    for replica in replicas:
        heartbeat = age(replica.heartbeat_time, now)
        rows.append(
            [
                replica.replica_id,
                replica.role,
                Text(f"gone, {heartbeat}", style="red") if replica.gone else heartbeat,
                str(replica.steps_held),
                Text("yes", style="green") if replica.leads_payment_monitor else "no",
                format_timestamp(replica.start_time),
            ]
        )
    return AdaptiveTable(f"Replicas ({len(replicas)})", REPLICA_COLUMNS, rows)
