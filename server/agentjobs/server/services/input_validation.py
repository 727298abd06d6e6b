"""Input at the door: the storable-value rules (domain/input_rules), the size limit, then
the MIP-003 schema (masumi.validation), each problem as an AIP-193 field violation.

`check_input_data` is the one call the use cases make for every input_data, StartJob's
against the agent's schema and ProvideInput's against the schema of the question asked.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from masumi.validation import ValidationError, normalize_field_type, validate_input_data

from agentjobs.server.domain import FieldViolation, InvalidArgumentError
from agentjobs.server.domain.input_rules import check_input, child_path

_TEXT_TYPES = frozenset({"text", "textarea", "email", "password", "tel", "url", "search", "hidden"})
_NUMBER_TYPES = frozenset({"number", "range"})
_CHOICE_TYPES = frozenset({"option", "checkbox", "radio"})
_DATE_TYPES = frozenset({"date", "datetime-local", "time", "month", "week"})


def check_input_data(
    input_data: dict[str, Any],
    schema: dict[str, Any],
    *,
    max_bytes: int,
    field: str = "input_data",
    schema_name: str = "the agent's input schema",
) -> None:
    """Raise InvalidArgumentError unless `input_data` may be stored, hashed and read back
    (checked first: the later checks serialise it) and matches `schema` exactly."""
    check_input(input_data, field)
    check_input_size(input_data, max_bytes, field=field)
    validate_input(input_data, schema, field=field, schema_name=schema_name)


def validate_input(
    input_data: dict[str, Any],
    schema: dict[str, Any],
    *,
    field: str = "input_data",
    schema_name: str = "the agent's input schema",
) -> None:
    """Raise InvalidArgumentError naming each bad field as `<field>.<id>`. A field the
    schema does not define is refused: MIP-003 input must strictly follow the schema
    (and an unbounded unknown field would be stored and listed with every job)."""
    fields = {str(f.get("id")): f for f in _schema_fields(schema)}
    violations = [
        FieldViolation(child_path(field, key), f"is not a field of {schema_name}")
        for key in input_data
        if key not in fields
    ]
    try:
        # masumi normalises the schema dicts in place; keep the agent's copy pristine.
        validate_input_data(input_data, copy.deepcopy(schema))
    except ValidationError as exc:
        for field_id, messages in exc.field_errors.items():
            spec = fields.get(field_id, {})
            for message in messages:
                violations.append(
                    FieldViolation(
                        child_path(field, field_id),
                        _description(field_id, message, spec, input_data),
                    )
                )
        if not exc.field_errors:
            violations.append(FieldViolation(field, exc.message))
    if violations:
        raise InvalidArgumentError(f"{field} does not match {schema_name}", violations)


def check_input_size(input_data: dict[str, Any], limit: int, *, field: str = "input_data") -> None:
    size = len(json.dumps(input_data, ensure_ascii=False, separators=(",", ":")).encode())
    if size > limit:
        raise InvalidArgumentError(
            f"{field} is {size} bytes, more than the {limit} allowed",
            [FieldViolation(field, f"must be at most {limit} bytes of JSON")],
            reason="INPUT_TOO_LARGE",
        )


def _schema_fields(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The field definitions of a MIP-003 schema, flat or in input_groups."""
    for group in schema.get("input_groups") or ():
        if isinstance(group, dict):
            yield from (f for f in group.get("input_data") or () if isinstance(f, dict))
    if not schema.get("input_groups"):
        yield from (f for f in schema.get("input_data") or () if isinstance(f, dict))


def _description(field_id: str, message: str, spec: dict[str, Any], given: dict[str, Any]) -> str:
    """masumi's message without the field name the violation already carries, and with
    the unit of a bound (`Field 'text' must be at most 1000` says neither what nor of
    what); an empty value that was given is called empty, not missing."""
    if message == f"Required field '{field_id}' is missing":
        return "is required"
    prefix = f"Field '{field_id}' "
    if not message.startswith(prefix):
        return message
    rest = message[len(prefix) :]
    kind = normalize_field_type(str(spec.get("type", "")))
    if rest == "is required" and field_id in given:
        value = given[field_id]
        if value is None:
            return "must not be null (the field is required)"
        if isinstance(value, list):
            return "must hold at least one value (the field is required)"
        return "must not be empty or blank (the field is required)"
    for side, comparison in (("least", "at least"), ("most", "at most")):
        lead = f"must be at {side} "
        if rest.startswith(lead):
            return _bound(kind, comparison, rest[len(lead) :])
    return rest


def _bound(kind: str, comparison: str, bound: str) -> str:
    if kind in _TEXT_TYPES:
        unit = "character" if bound == "1" else "characters"
        return f"must be {comparison} {bound} {unit} long"
    if kind in _NUMBER_TYPES:
        return f"must be a number {comparison} {bound}"
    if kind in _CHOICE_TYPES:
        unit = "selected value" if bound == "1" else "selected values"
        return f"must have {comparison} {bound} {unit}"
    if kind in _DATE_TYPES:
        return f"must be {'on or after' if comparison == 'at least' else 'on or before'} {bound}"
    return f"must be {comparison} {bound}"
