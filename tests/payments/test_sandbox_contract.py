"""Rejected requests answer upstream's status and message in the contract's error
envelope, and every status the sandbox answers is one the contract lists (or, where the
contract lists none, the error envelope all the same)."""

from __future__ import annotations

from typing import Any

import pytest

from agentjobs.server.payments.sandbox import SandboxPaymentService
from tests.payments import contract
from tests.payments.helpers import API_KEY, RESULT_HASH, SECOND_KEY, RawApi, payment_body

NOT_FOUND_OR_INVALID = "Payment not found or in invalid state"

MANUAL_STALE = "Payment request not found with the provided blockchain identifier or it was changed"
SHORT_HASH = (
    "submitResultHash: Too small: expected string to have >=64 characters; "
    "submitResultHash: submitResultHash must be a 64-char hex sha256 digest"
)
ON = {"network": "Preprod"}


def on(bid: str, **more: Any) -> dict[str, Any]:
    return {**ON, "blockchainIdentifier": bid, **more}


# (method, contract path, body or query, token, status, message); "{bid}" is an unpaid
# payment of the first key, "{locked}" a locked one; token "" is the suite's key.
REJECTED: list[tuple[str, str, dict[str, Any], str | None, int, str]] = [
    ("POST", "/payment", {}, None, 401, "Unauthorized, no authentication token provided"),
    (
        "POST",
        "/payment",
        {"identifierFromPurchaser": "zz" * 8},
        "",
        400,
        "Purchaser identifier is not a valid hex string",
    ),
    (
        "GET",
        "/payment",
        {"network": "Testnet"},
        "",
        400,
        'network: Invalid option: expected one of "Preprod"|"Mainnet"',
    ),
    (
        "GET",
        "/payment/diff",
        {**ON, "lastUpdate": "2026-01-01T00:00:00+00:00"},
        "",
        400,
        "lastUpdate: Invalid input",
    ),
    (
        "GET",
        "/payment/diff/next-action",
        {**ON, "limit": "0"},
        "",
        400,
        "limit: Too small: expected number to be >=1",
    ),
    ("POST", "/payment/resolve-blockchain-identifier", on("beef"), "", 404, "Payment not found"),
    (
        "POST",
        "/payment/submit-result",
        on("{bid}", submitResultHash=RESULT_HASH),
        "",
        404,
        NOT_FOUND_OR_INVALID,
    ),
    (
        "POST",
        "/payment/submit-result",
        on("{locked}", submitResultHash=RESULT_HASH),
        SECOND_KEY,
        403,
        "You are not authorized to submit results for this payment",
    ),
    ("POST", "/payment/submit-result", on("{locked}", submitResultHash="x"), "", 400, SHORT_HASH),
    ("POST", "/payment/authorize-refund", on("{locked}"), "", 404, NOT_FOUND_OR_INVALID),
    (
        "POST",
        "/payment/error-state-recovery",
        on("{bid}", updatedAt="2020-01-01T00:00:00.000Z"),
        "",
        404,
        MANUAL_STALE,
    ),
    ("POST", "/payment/error-state-recovery", on("{bid}"), "", 400, "updatedAt: Invalid input"),
]


def _filled(values: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {
        key: names.get(value, value) if isinstance(value, str) else value
        for key, value in values.items()
    }


async def test_rejected_requests_answer_upstreams_status_and_message_in_the_envelope(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.add_api_key(SECOND_KEY)
    bid, locked = sandbox.create_payments(2)
    await sandbox.lock_funds(locked)
    names = {"{bid}": bid, "{locked}": locked}
    with contract.recording() as recorder:
        for method, path, values, token, status, message in REJECTED:
            filled = _filled(values, names)
            if path == "/payment" and method == "POST" and filled:
                filled = payment_body(**filled)
            answer = await raw.call(
                method,
                path,
                body=filled if method == "POST" else None,
                params=filled if method == "GET" else None,
                token=raw_token(token),
            )
            assert (answer.status, answer.message) == (status, message), (method, path)
            assert answer.body == {"status": "error", "error": {"message": message}}
            assert status in contract.listed_statuses(method, path) or status == 409
    assert recorder.checked == len(REJECTED)
    assert recorder.breaches == []


def raw_token(token: str | None) -> str | None:
    """ "" means the suite's own key, None no token at all."""

    return API_KEY if token == "" else token


@pytest.mark.parametrize("path", ["/payment/submit-result", "/payment/authorize-refund"])
async def test_an_injected_conflict_is_the_error_envelope(
    raw: RawApi, sandbox: SandboxPaymentService, path: str
) -> None:
    [bid] = sandbox.create_payments(1)
    await sandbox.lock_funds(bid)
    if path.endswith("authorize-refund"):
        await sandbox.request_refund(bid)
    sandbox.faults.conflict_next = 1
    with contract.recording() as recorder:
        answer = await raw.call(
            "POST",
            path,
            body={
                "network": "Preprod",
                "blockchainIdentifier": bid,
                "submitResultHash": RESULT_HASH,
            },
        )
    assert (answer.status, answer.message) == (
        409,
        "Payment state changed concurrently; retry against the new state",
    )
    assert recorder.breaches == []
