"""Checks on request fields, answering 400 with the kind of message the service gives."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

NETWORKS = ("Preprod", "Mainnet")
_HEX = re.compile(r"[0-9a-fA-F]+")
_HASH_64 = re.compile(r"[0-9a-fA-F]{64}")
# What the service's date parser takes: a date, or a date-time with optional seconds,
# fraction and zone.
_ISO = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?"
)


class ApiError(Exception):
    """Answered as {"status": "error", "error": {"message": ...}} with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def is_hex(value: str) -> bool:
    """Hex in whole bytes, as the service's validateHexString wants it."""
    return bool(_HEX.fullmatch(value)) and len(value) % 2 == 0


def string_field(
    body: Mapping[str, Any],
    name: str,
    *,
    required: bool = True,
    min_length: int = 0,
    max_length: int | None = None,
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"{name}: Required")
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name}: Expected string, received {type(value).__name__}")
    if len(value) < min_length:
        raise bad_request(f"{name}: String must contain at least {min_length} character(s)")
    if max_length is not None and len(value) > max_length:
        raise bad_request(f"{name}: String must contain at most {max_length} character(s)")
    return value


def required_string(body: Mapping[str, Any], name: str, **limits: int) -> str:
    value = string_field(body, name, required=True, **limits)
    assert value is not None
    return value


def network_field(value: object) -> str:
    if value is None:
        raise bad_request("network: Required")
    if value not in NETWORKS:
        raise bad_request(
            f"network: Invalid enum value. Expected 'Preprod' | 'Mainnet', received {value!r}"
        )
    return str(value)


def time_ms(value: object, name: str) -> int:
    """An ISO date or date-time (UTC unless a zone is given) as epoch milliseconds."""
    if not isinstance(value, str):
        raise bad_request(f"{name}: Expected an ISO date string")
    match = _ISO.fullmatch(value)
    if match is None:
        raise bad_request(f"{name}: Invalid date {value!r}")
    day, hour_minute, seconds, fraction, zone = match.groups()
    text = f"{day}T{hour_minute or '00:00'}:{seconds or '00'}"
    if fraction:
        text += "." + fraction[:6].ljust(6, "0")
    try:
        moment = datetime.fromisoformat(text + (zone or "Z").replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name}: Invalid date {value!r}") from None
    return _epoch_ms(moment)


def _epoch_ms(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def result_hash_field(body: Mapping[str, Any]) -> str:
    value = required_string(body, "submitResultHash")
    if not _HASH_64.fullmatch(value):
        raise bad_request("submitResultHash: must be a sha256 hash (64 hexadecimal characters)")
    return value


def limit_param(query: Mapping[str, str]) -> int:
    raw = query.get("limit")
    if raw is None:
        return 10
    try:
        limit = int(raw)
    except ValueError:
        raise bad_request(f"limit: Expected number, received {raw!r}") from None
    if not 1 <= limit <= 100:
        raise bad_request("limit: Number must be between 1 and 100")
    return limit
