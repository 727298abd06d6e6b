"""MIP-003 input validation (masumi.validation), turned into AIP-193 field violations."""

from __future__ import annotations

import copy
import json
from typing import Any

from masumi.validation import ValidationError, validate_input_data

from agentjobs.server.domain import FieldViolation, InvalidArgumentError


def validate_input(
    input_data: dict[str, Any], schema: dict[str, Any], *, field: str = "input_data"
) -> None:
    """Raise InvalidArgumentError naming each bad field as `<field>.<id>`."""
    try:
        # masumi normalises the schema dicts in place; keep the agent's copy pristine.
        validate_input_data(input_data, copy.deepcopy(schema))
    except ValidationError as exc:
        violations = [
            FieldViolation(f"{field}.{field_id}", message)
            for field_id, messages in exc.field_errors.items()
            for message in messages
        ] or [FieldViolation(field, exc.message)]
        raise InvalidArgumentError(exc.message, violations) from exc


def check_input_size(input_data: dict[str, Any], limit: int, *, field: str = "input_data") -> None:
    size = len(json.dumps(input_data, ensure_ascii=False, separators=(",", ":")).encode())
    if size > limit:
        raise InvalidArgumentError(
            f"{field} is {size} bytes, more than the {limit} allowed",
            [FieldViolation(field, f"at most {limit} bytes of JSON")],
            reason="INPUT_TOO_LARGE",
        )
