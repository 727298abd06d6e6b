"""Reading MIP-003 request bodies: size-capped, strict JSON, typed fields.

Bodies are parsed here rather than by FastAPI's model validation so that every bad body
gets the same answer as a bad gRPC request: 400 with AIP-193 field violations (FastAPI
would answer 422 in its own shape), and an oversized body is refused before it is read
into memory.

Only `application/json` is read. text/plain, application/x-www-form-urlencoded and
multipart/form-data are the types a browser sends cross-site without asking the server
first (a CORS "simple" request): accepting JSON under them would let any web page a buyer
visits start jobs with the buyer's browser.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from agentjobs.server.domain import (
    FieldViolation,
    InvalidArgumentError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
)


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity by default; JSON (and the input hash) cannot.
    raise ValueError(f"{name} is not valid JSON")


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"the body is larger than the {limit} bytes allowed")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"the body is larger than the {limit} bytes allowed")
        chunks.append(chunk)
    raw = b"".join(chunks)
    check_json_content_type(request.headers.get("content-type"))
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError and JSONDecodeError are both ValueErrors.
        raise InvalidArgumentError(
            "the body is not valid JSON",
            [FieldViolation("body", f"not valid JSON: {str(exc)[:200]}")],
            reason="MALFORMED_REQUEST",
        ) from None
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            "the body must be a JSON object", [FieldViolation("body", "must be a JSON object")]
        )
    return value


def check_json_content_type(declared: str | None) -> None:
    media_type, _, parameters = (declared or "").partition(";")
    charset = ""
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if media_type.strip().lower() != "application/json" or charset not in ("", "utf-8"):
        shown = (declared or "none").encode("ascii", "backslashreplace").decode()[:100]
        raise UnsupportedMediaTypeError(
            f"the body must be sent as 'content-type: application/json' (UTF-8), not {shown}"
        )


def required_string(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None:
        raise InvalidArgumentError(f"{field} is required", [FieldViolation(field, "required")])
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"{field} must be a string", [FieldViolation(field, "must be a string")]
        )
    return value


def optional_string(body: dict[str, Any], field: str) -> str:
    """A string field that may be missing or null ("" then)."""
    value = body.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"{field} must be a string", [FieldViolation(field, "must be a string")]
        )
    return value


def optional_object(body: dict[str, Any], field: str) -> dict[str, Any]:
    """Missing or null means `{}` (MIP-003 allows a job without input)."""
    value = body.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            f"{field} must be a JSON object", [FieldViolation(field, "must be a JSON object")]
        )
    return value


def idempotency_key(request: Request, body: dict[str, Any]) -> str | None:
    """AIP-155's request_id over HTTP: the `Idempotency-Key` header or a `request_id`
    body field (the header wins)."""
    header = request.headers.get("idempotency-key")
    if header:
        return header
    value = body.get("request_id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentError(
            "request_id must be a string", [FieldViolation("request_id", "must be a string")]
        )
    return value or None
