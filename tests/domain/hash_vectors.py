"""The vectors tools/sokosumi_hash_vectors.mjs computed with Sokosumi's own algorithm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS: dict[str, Any] = json.loads(
    Path(__file__).with_name("sokosumi_hash_vectors.json").read_text(encoding="utf-8")
)


def cases(kind: str) -> list[Any]:
    return [
        pytest.param(v, id=f"{i}-{v.get('name', 'result')}") for i, v in enumerate(VECTORS[kind])
    ]


def named(name: str) -> dict[str, Any]:
    return next(v for v in VECTORS["inputs"] if v["name"] == name)


def parsed(vector: dict[str, Any]) -> dict[str, Any]:
    """What the HTTP front hands the service: the buyer's body as Python's json reads it."""
    value = json.loads(vector["input_json"])
    assert isinstance(value, dict)
    return value
