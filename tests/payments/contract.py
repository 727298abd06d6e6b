"""Checks sandbox answers against the payment service's OpenAPI contract with
openapi-schema-validator (OAS 3.0, so `nullable` is understood).

Statuses the contract lists without a body, and error statuses it does not list (the 409
on submit-result the design relies on, the 404 of a service without /payment/diff), must
still be the service's error envelope.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30Validator, oas30_format_checker

from agentjobs.server.payments.sandbox import add_response_observer

CONTRACT = Path(__file__).resolve().parents[2] / "contracts" / "masumi-payment-service.openapi.json"

ERROR_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["status", "error"],
    "properties": {
        "status": {"type": "string", "enum": ["error"]},
        "error": {
            "type": "object",
            "required": ["message"],
            "properties": {"message": {"type": "string"}},
        },
    },
}


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(CONTRACT.read_text())
    return loaded


@cache
def _validator(path: str, method: str, status: str) -> OAS30Validator | None:
    """The validator of the JSON body the contract gives for this answer, if any."""
    responses = document()["paths"][path][method]["responses"]
    schema = responses[status].get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    # $refs point at #/components/...: resolve them against a root that has them.
    return OAS30Validator(
        {**schema, "components": document()["components"]}, format_checker=oas30_format_checker
    )


@cache
def _error_validator() -> OAS30Validator:
    return OAS30Validator(ERROR_ENVELOPE, format_checker=oas30_format_checker)


def _errors(validator: OAS30Validator, body: Any) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<body>'}: {error.message}"
        for error in validator.iter_errors(body)
    ][:5]


def problems(method: str, path: str, status: int, body: Any) -> list[str]:
    """Why this answer breaks the contract (empty: it does not)."""
    operation = document()["paths"].get(path, {}).get(method.lower())
    listed = operation is not None and str(status) in operation["responses"]
    if not listed:
        if status < 400:
            return [f"HTTP {status} is not an answer the contract gives to {method} {path}"]
        return _errors(_error_validator(), body)
    validator = _validator(path, method.lower(), str(status))
    if validator is None:
        return _errors(_error_validator(), body) if status >= 400 else []
    return _errors(validator, body)


class ContractRecorder:
    """A sandbox response observer that keeps every breach of the contract."""

    def __init__(self) -> None:
        self.checked = 0
        self.breaches: list[str] = []

    def __call__(self, method: str, path: str, status: int, body: Any) -> None:
        self.checked += 1
        for problem in problems(method, path, status, body):
            self.breaches.append(f"{method} {path} -> HTTP {status}: {problem}")


@contextmanager
def recording() -> Iterator[ContractRecorder]:
    recorder = ContractRecorder()
    remove = add_response_observer(recorder)
    try:
        yield recorder
    finally:
        remove()


def listed_statuses(method: str, path: str) -> set[int]:
    """The statuses the contract lists for this operation."""
    operation = document()["paths"][path][method.lower()]
    return {int(status) for status in operation["responses"]}
