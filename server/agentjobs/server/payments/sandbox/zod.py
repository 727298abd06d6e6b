"""Request validation that fails the way the payment service's does.

Upstream validates every input with zod 4 (through express-zod-api 26), which checks all
fields of an object in schema order, keeps going after a failure, and turns the issues
into one message: `<path>: <message>` joined by "; " (express-zod-api's
getMessageFromError). The texts below are zod 4.3's, checked against zod itself, e.g.
"network: Invalid option: expected one of \"Preprod\"|\"Mainnet\"" or
"inputHash: Invalid input: expected string, received undefined".

A schema here is an ordered list of (name, Field); `parse` answers the cleaned values or
raises ApiError(400) with the joined message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentjobs.server.payments.sandbox.errors import ApiError

_MISSING: Any = object()


class Issues:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.messages.append(f"{path}: {message}" if path else message)


def received(value: object) -> str:
    """zod 4's name for what it got instead."""
    if value is _MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "NaN" if isinstance(value, float) and math.isnan(value) else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _expected(kind: str, value: object) -> str:
    return f"Invalid input: expected {kind}, received {received(value)}"


class Field:
    """One schema node. `check` adds issues and returns the parsed value."""

    optional = False
    nullable = False
    default: Callable[[], Any] | None = None

    def parse(self, value: object, path: str, issues: Issues) -> Any:
        if value is _MISSING:
            if self.default is not None:
                return self.default()
            if self.optional:
                return None
        if value is None and self.nullable:
            return None
        return self.check(value, path, issues)

    def check(self, value: object, path: str, issues: Issues) -> Any:
        raise NotImplementedError


@dataclass
class String(Field):
    min: int | None = None
    max: int | None = None
    length: int | None = None
    # (pattern, message): zod's .regex(pattern, message)
    regex: tuple[str, str] | None = None
    optional: bool = False
    nullable: bool = False
    default: Callable[[], Any] | None = None

    def check(self, value: object, path: str, issues: Issues) -> Any:
        if not isinstance(value, str):
            issues.add(path, _expected("string", value))
            return None
        size = len(value.encode("utf-16-le")) // 2  # JavaScript counts UTF-16 units
        if self.length is not None and size < self.length:
            issues.add(path, f"Too small: expected string to have >={self.length} characters")
        if self.length is not None and size > self.length:
            issues.add(path, f"Too big: expected string to have <={self.length} characters")
        if self.min is not None and size < self.min:
            issues.add(path, f"Too small: expected string to have >={self.min} characters")
        if self.max is not None and size > self.max:
            issues.add(path, f"Too big: expected string to have <={self.max} characters")
        if self.regex is not None and not re.search(self.regex[0], value):
            issues.add(path, self.regex[1])
        return value


@dataclass
class Enum(Field):
    values: Sequence[str] = ()
    optional: bool = False

    def check(self, value: object, path: str, issues: Issues) -> Any:
        if not isinstance(value, str) or value not in self.values:
            options = "|".join(f'"{option}"' for option in self.values)
            issues.add(path, f"Invalid option: expected one of {options}")
            return None
        return value


@dataclass
class Integer(Field):
    """z.number().int().min().max(): a non-integer stops the range checks."""

    min: int | None = None
    max: int | None = None
    optional: bool = False

    def check(self, value: object, path: str, issues: Issues) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            issues.add(path, _expected("number", value))
            return None
        if isinstance(value, float) and not value.is_integer():
            issues.add(path, "Invalid input: expected int, received number")
            return None
        return _in_range(int(value), self.min, self.max, path, issues)


def _in_range(
    value: float, low: float | None, high: float | None, path: str, issues: Issues
) -> Any:
    if low is not None and value < low:
        issues.add(path, f"Too small: expected number to be >={low:g}")
    if high is not None and value > high:
        issues.add(path, f"Too big: expected number to be <={high:g}")
    return value


def js_number(value: object) -> float:
    """JavaScript's Number(value) for what a query string can hold (z.coerce.number)."""
    if isinstance(value, list):
        return js_number(value[0]) if len(value) == 1 else math.nan
    if not isinstance(value, str):
        return math.nan
    text = value.strip()
    if text == "":
        return 0.0
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if text.lower().startswith(prefix):
            try:
                return float(int(text[2:], base))
            except ValueError:
                return math.nan
    if re.fullmatch(r"[+-]?(Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)", text) is None:
        return math.nan
    return float(text.replace("Infinity", "inf"))


@dataclass
class CoercedNumber(Field):
    """z.coerce.number().min().max().default()."""

    min: float | None = None
    max: float | None = None
    default: Callable[[], Any] | None = None

    def check(self, value: object, path: str, issues: Issues) -> Any:
        number = js_number(value)
        if math.isnan(number) or math.isinf(number):
            issues.add(path, f"Invalid input: expected number, received {received(number)}")
            return None
        return _in_range(number, self.min, self.max, path, issues)


@dataclass
class Boolean(Field):
    optional: bool = False

    def check(self, value: object, path: str, issues: Issues) -> Any:
        if not isinstance(value, bool):
            issues.add(path, _expected("boolean", value))
            return None
        return value


@dataclass
class FlagString(Field):
    """z.string().optional().transform(v => v?.toLowerCase() == 'true'): the query flags."""

    optional: bool = True
    default: Callable[[], Any] | None = None

    def parse(self, value: object, path: str, issues: Issues) -> Any:
        if value is _MISSING:
            return False
        if not isinstance(value, str):
            issues.add(path, _expected("string", value))
            return None
        return value.lower() == "true"

    def check(self, value: object, path: str, issues: Issues) -> Any:
        raise AssertionError("FlagString parses by itself")


# express-zod-api's ez.dateIn(): z.union([z.iso.date(), z.iso.datetime(),
# z.iso.datetime({local: true})]), then new Date(). These are zod 4.3's own patterns: no
# offsets ("+00:00" fails), "Z" only in upper case, seconds and fraction optional.
_DATE = (
    r"(?:(?:\d\d[2468][048]|\d\d[13579][26]|\d\d0[48]|[02468][048]00|[13579][26]00)-02-29"
    r"|\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|(?:02)-(?:0[1-9]|1\d|2[0-8])))"
)
_DATE_ONLY = re.compile(f"^{_DATE}$")
_DATE_TIME = re.compile(
    f"^({_DATE})T((?:[01]\\d|2[0-3]):[0-5]\\d)(?::([0-5]\\d)(?:\\.(\\d+))?)?(Z?)$"
)


def date_in_ms(value: object) -> int | None:
    """Epoch ms of what ez.dateIn() accepts, None when it rejects it. A date-time without
    "Z" is local time upstream (JavaScript's Date); the sandbox takes it as UTC, which is
    what a service running in UTC (its Docker image) does."""
    if not isinstance(value, str):
        return None
    if _DATE_ONLY.match(value):
        moment = datetime.fromisoformat(value).replace(tzinfo=UTC)
        return _epoch_ms(moment)
    match = _DATE_TIME.match(value)
    if match is None:
        return None
    day, hour_minute, seconds, fraction, _zone = match.groups()
    moment = datetime.fromisoformat(f"{day}T{hour_minute}:{seconds or '00'}").replace(tzinfo=UTC)
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    return _epoch_ms(moment) + millis


def _epoch_ms(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


@dataclass
class DateIn(Field):
    """ez.dateIn(): any failure of the union is just "Invalid input"."""

    optional: bool = False
    default: Callable[[], Any] | None = None

    def check(self, value: object, path: str, issues: Issues) -> Any:
        ms = date_in_ms(value)
        if ms is None:
            issues.add(path, "Invalid input")
        return ms


@dataclass
class Array(Field):
    item: Field = field(default_factory=String)
    max: int | None = None
    optional: bool = False

    def check(self, value: object, path: str, issues: Issues) -> Any:
        if not isinstance(value, list):
            issues.add(path, _expected("array", value))
            return None
        parsed = [self.item.parse(item, f"{path}[{at}]", issues) for at, item in enumerate(value)]
        if self.max is not None and len(value) > self.max:
            issues.add(path, f"Too big: expected array to have <={self.max} items")
        return parsed


@dataclass
class Object(Field):
    fields: Sequence[tuple[str, Field]] = ()

    def check(self, value: object, path: str, issues: Issues) -> Any:
        if not isinstance(value, dict):
            issues.add(path, _expected("object", value))
            return None
        return {
            name: spec.parse(value.get(name, _MISSING), f"{path}.{name}" if path else name, issues)
            for name, spec in self.fields
        }


def parse(schema: Sequence[tuple[str, Field]], values: Mapping[str, Any]) -> dict[str, Any]:
    """The cleaned input (unknown keys dropped, as zod objects strip them), or ApiError(400)."""
    issues = Issues()
    parsed = Object(fields=schema).check(dict(values), "", issues)
    if issues.messages:
        raise ApiError(400, "; ".join(issues.messages))
    assert isinstance(parsed, dict)
    return parsed
