"""Keyset page tokens (AIP-158) shared by every backend.

A token is urlsafe base64 of a small JSON document naming the list it belongs to,
the filter it was issued under and the sort key of the last item returned, followed
by a checksum. The checksum is not a secret: it makes a truncated, hand-edited or
foreign token fail loudly instead of silently paging from an arbitrary position. A
token that decodes but was issued for another list or another filter is rejected too,
because resuming it would skip or repeat items.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agentjobs.server.domain import InvalidPageTokenError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_VERSION = 1
_CHECKSUM_KEY = b"agentjobs-page-token"
_CHECKSUM_BYTES = 8
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Far more than any job id or blockchain identifier; bounds what a token can smuggle in.
_MAX_KEY_LENGTH = 1024
_MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True)
class Cursor:
    """The sort key of the last item of a page: the next page starts strictly after it."""

    created_at: datetime
    key: str


def page_size_or_default(page_size: int) -> int:
    """0 means the default (as in the API); larger than the maximum is capped."""
    if page_size < 0:
        raise ValueError(f"page_size must not be negative, got {page_size}")
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _checksum(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, key=_CHECKSUM_KEY, digest_size=_CHECKSUM_BYTES).digest()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_page_token(listing: str, filter_value: str | None, cursor: Cursor) -> str:
    payload = json.dumps(
        {
            "v": _VERSION,
            "l": listing,
            "f": filter_value,
            "t": _micros(cursor.created_at),
            "k": cursor.key,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    return f"{_b64encode(payload)}.{_b64encode(_checksum(payload))}"


def decode_page_token(token: str, listing: str, filter_value: str | None) -> Cursor:
    """The cursor in `token`; InvalidPageTokenError unless this server issued it for
    the same listing and filter."""
    if len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise InvalidPageTokenError()
    body, checksum = token.split(".")
    try:
        payload = _b64decode(body)
        given = _b64decode(checksum)
        decoded = json.loads(payload)
    except (binascii.Error, ValueError) as exc:  # JSONDecodeError / UnicodeError are ValueErrors
        raise InvalidPageTokenError() from exc
    if given != _checksum(payload) or not isinstance(decoded, dict):
        raise InvalidPageTokenError()
    micros, key = decoded.get("t"), decoded.get("k")
    if (
        decoded.get("v") != _VERSION
        or decoded.get("l") != listing
        or decoded.get("f") != filter_value
        or type(micros) is not int
        or not isinstance(key, str)
        or not 0 < len(key) <= _MAX_KEY_LENGTH
    ):
        raise InvalidPageTokenError()
    try:
        created_at = _EPOCH + timedelta(microseconds=micros)
    except OverflowError as exc:
        raise InvalidPageTokenError() from exc
    return Cursor(created_at=created_at, key=key)
