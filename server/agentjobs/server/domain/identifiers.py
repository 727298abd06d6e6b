"""Checks on identifiers, done by us before the payment service would reject them."""

from __future__ import annotations

import re

from agentjobs.server.domain.errors import FieldViolation

_HEX = re.compile(r"[0-9a-fA-F]*")


def identifier_from_purchaser_violation(value: str) -> FieldViolation | None:
    """The payment service wants hex, even length, 14 to 26 characters."""
    field = "identifier_from_purchaser"
    if not value:
        return FieldViolation(field, "required")
    if not _HEX.fullmatch(value):
        return FieldViolation(field, "must be hexadecimal (0-9, a-f)")
    if not 14 <= len(value) <= 26:
        return FieldViolation(field, f"must be 14 to 26 characters long, got {len(value)}")
    if len(value) % 2:
        return FieldViolation(field, "must have an even number of characters")
    return None
