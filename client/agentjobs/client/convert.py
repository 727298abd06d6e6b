"""Conversions between Python values and the contract's messages."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from agentjobs.v1 import jobs_pb2, operator_pb2

# MIP-003 / the payment service accept 14-26 hex characters of even length; 20 leaves
# room on both sides and gives 80 bits of randomness.
IDENTIFIER_HEX_CHARS = 20


def new_identifier_from_purchaser() -> str:
    return secrets.token_hex(IDENTIFIER_HEX_CHARS // 2)


def identifier_for_request(request_id: str) -> str:
    """The same valid identifier for every retry of one request_id (the server refuses a
    reused request_id whose request differs, and a random identifier would differ)."""
    digest = hashlib.sha256(b"agentjobs identifier_from_purchaser\0" + request_id.encode())
    return digest.hexdigest()[:IDENTIFIER_HEX_CHARS]


def new_request_id() -> str:
    return str(uuid.uuid4())


def dict_to_struct(values: Mapping[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if values:
        struct.update(dict(values))
    return struct


def _plain(value: Any) -> Any:
    # Struct keeps every number as a double: give back 5 for 5.0 so that what a caller
    # sent as an int round-trips as an int.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, struct_pb2.Struct):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, struct_pb2.ListValue):
        return [_plain(v) for v in value]
    return value


def struct_to_dict(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    if struct is None:
        return {}
    return {key: _plain(value) for key, value in struct.items()}


def datetime_to_timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    # A naive datetime means local time, as a person typing a date would mean it.
    if value.tzinfo is None:
        value = value.astimezone()
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def timestamp_to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _enum_name(enum: Any, prefix: str, value: int | str) -> str:
    if isinstance(value, int):
        try:
            full: str = enum.Name(value)
        except ValueError:
            raise ValueError(f"unknown value {value}") from None
        return full
    key = value.strip().upper().replace("-", "_")
    if not key.startswith(prefix):
        key = prefix + key
    if key not in set(enum.keys()) or enum.Value(key) == 0:
        choices = ", ".join(short_enum_name(enum, prefix, v) for v in enum.values() if v)
        raise ValueError(f"unknown value {value!r}; choose one of: {choices}")
    return key


def short_enum_name(enum: Any, prefix: str, value: int) -> str:
    """JOB_STATUS_AWAITING_PAYMENT -> awaiting_payment."""
    try:
        full: str = enum.Name(value)
    except ValueError:
        return str(value)
    return full.removeprefix(prefix).lower()


# The generated constructors take an enum's full name as well as its number.
def job_status(value: int | str) -> str:
    """`running`, `RUNNING`, `JOB_STATUS_RUNNING` or 3 -> "JOB_STATUS_RUNNING"."""
    return _enum_name(jobs_pb2.JobStatus, "JOB_STATUS_", value)


def invoice_status(value: int | str) -> str:
    """`pending`, `PENDING`, `INVOICE_STATUS_PENDING` or 1 -> "INVOICE_STATUS_PENDING"."""
    return _enum_name(operator_pb2.InvoiceStatus, "INVOICE_STATUS_", value)


def job_status_name(value: int) -> str:
    return short_enum_name(jobs_pb2.JobStatus, "JOB_STATUS_", value)


def invoice_status_name(value: int) -> str:
    return short_enum_name(operator_pb2.InvoiceStatus, "INVOICE_STATUS_", value)


def event_type_name(value: int) -> str:
    return short_enum_name(jobs_pb2.JobEventType, "JOB_EVENT_TYPE_", value)


TERMINAL_STATUSES = frozenset({jobs_pb2.JOB_STATUS_COMPLETED, jobs_pb2.JOB_STATUS_FAILED})
