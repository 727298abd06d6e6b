"""MIP-004 hashes (placeholder wrapping the masumi SDK until the JCS version lands)."""

from __future__ import annotations

from typing import Any

from masumi.helper_functions import create_masumi_input_hash, create_masumi_output_hash


def input_hash(input_data: dict[str, Any], identifier_from_purchaser: str) -> str:
    return str(create_masumi_input_hash(input_data, identifier_from_purchaser))


def output_hash(result: str, identifier_from_purchaser: str) -> str:
    return str(create_masumi_output_hash(result, identifier_from_purchaser))
