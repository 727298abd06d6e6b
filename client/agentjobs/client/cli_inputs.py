"""Turning what a person types into request values: `--input key=value`, `--input-file`,
dates and status names. Every bad value raises UsageProblem (exit 2) before any call."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from agentjobs.client.cli_common import UsageProblem
from agentjobs.v1 import input_schema_pb2

Inputs = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        "-i",
        help="key=value, repeatable. For a text field of the schema the value is taken as "
        "it is; otherwise it is JSON when it parses (5, true, [1]), else a string.",
    ),
]
InputFile = Annotated[
    Path | None, typer.Option("--input-file", help="A JSON object; --input entries override it.")
]

# MIP-003 field types whose value is not a string; every other type (text, textarea,
# email, url, date, ...) holds a string, so `--input text=42` must stay "42".
NON_TEXT_FIELD_TYPES = frozenset({"number", "range", "boolean", "checkbox", "option", "none"})


def split_pairs(pairs: Iterable[str] | None) -> list[tuple[str, str]]:
    split: list[tuple[str, str]] = []
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageProblem(f"--input {pair!r} is not key=value")
        split.append((key.strip(), value))
    return split


def read_input_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # also UnicodeDecodeError
        raise UsageProblem(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise UsageProblem(f"{path} must hold a JSON object")
    return loaded


def text_field_ids(schema: input_schema_pb2.InputSchema) -> frozenset[str]:
    fields = [*schema.input_data, *(f for g in schema.input_groups for f in g.input_data)]
    return frozenset(f.id for f in fields if f.type.lower() not in NON_TEXT_FIELD_TYPES)


def parse_value(text: str) -> Any:
    """JSON when it parses (numbers, booleans, null, lists, objects), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_input(
    from_file: Mapping[str, Any],
    pairs: Iterable[tuple[str, str]],
    text_fields: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    data = dict(from_file)
    for key, value in pairs:
        data[key] = value if key in text_fields else parse_value(value)
    return data


def parse_when(text: str | None, option: str) -> datetime | None:
    """ISO date or date-time; without a zone it is local time."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageProblem(f"{option} {text!r} is not an ISO date (2025-01-31[T12:00])") from None


def checked_enum(parse: Callable[[str], str], value: str | None, option: str) -> str | None:
    if not value:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise UsageProblem(f"{option}: {exc}") from exc
