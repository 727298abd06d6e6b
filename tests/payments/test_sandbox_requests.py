"""The sandbox's /api/v1 over real HTTP: auth, validation (400), unknown payments (404)
and submit-result / authorize-refund in the wrong state (409)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentjobs.server.payments.sandbox import SandboxPaymentService
from tests.payments.helpers import API_KEY, RawApi, epoch_ms, iso, payment_body

WRONG_KEY = "not-the-key-0f1e2d3c"
NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/payment"),
        ("GET", "/payment?network=Preprod"),
        ("GET", "/payment/diff?network=Preprod"),
        ("POST", "/payment/resolve-blockchain-identifier"),
        ("POST", "/payment/submit-result"),
        ("POST", "/payment/authorize-refund"),
    ],
)
async def test_missing_or_wrong_token_is_401_without_echo(
    raw: RawApi, method: str, path: str
) -> None:
    missing = await raw.call(method, path, body=payment_body(), token=None)
    wrong = await raw.call(method, path, body=payment_body(), token=WRONG_KEY)
    assert (missing.status, wrong.status) == (401, 401)
    assert "no authentication token" in missing.message
    assert "invalid authentication token" in wrong.message
    for answer in (missing, wrong):
        assert WRONG_KEY not in answer.text and API_KEY not in answer.text


async def test_control_endpoints_need_the_token_too(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    [bid] = sandbox.create_payments(1)
    answer = await raw.call("POST", f"/sandbox/payments/{bid}/lock", token=None, under_api=False)
    assert answer.status == 401
    assert sandbox.payment(bid)["onChainState"] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"identifierFromPurchaser": "zzzzzzzzzzzzzzzz"}, "not a valid hex string"),
        ({"identifierFromPurchaser": "aabbccddeeff001"}, "not a valid hex string"),  # odd
        ({"identifierFromPurchaser": "aabbccddeeff"}, "at least 14"),
        ({"identifierFromPurchaser": "aa" * 14}, "at most 26"),
        ({"identifierFromPurchaser": None}, "identifierFromPurchaser: Required"),
        ({"inputHash": None}, "inputHash: Required"),
        ({"inputHash": "not-hex"}, "Input hash is not a valid hex string"),
        ({"network": "Testnet"}, "network: Invalid enum value"),
        ({"agentIdentifier": "short"}, "at least 57"),
        ({"agentIdentifier": "a" * 251}, "at most 250"),
        ({"payByTime": "tomorrow morning"}, "payByTime: Invalid date"),
        ({"submitResultTime": 1234}, "submitResultTime: Expected an ISO date"),
        (
            {
                "payByTime": iso(NOW + timedelta(hours=30)),
                "submitResultTime": iso(NOW + timedelta(hours=24)),
            },
            "Pay by time must be before submit result time",
        ),
        ({"payByTime": iso(NOW - timedelta(hours=1))}, "Pay by time must be in the future"),
        (
            {
                "payByTime": iso(NOW + timedelta(minutes=1)),
                "submitResultTime": iso(NOW + timedelta(minutes=10)),
            },
            "Submit result time must be in the future (min. 15 minutes)",
        ),
        # Without times the service's defaults (1970) apply, which no rule accepts.
        ({"payByTime": None, "submitResultTime": None}, "Pay by time must be before"),
        (
            {"unlockTime": iso(NOW + timedelta(hours=24, minutes=5))},
            "Submit result time must be before unlock time",
        ),
        ({"RequestedFunds": [{"amount": "1", "unit": ""}]}, "RequestedFunds must be null"),
    ],
)
async def test_create_payment_validation_is_400_with_message(
    raw: RawApi, sandbox: SandboxPaymentService, overrides: dict[str, Any], message: str
) -> None:
    answer = await raw.call("POST", "/payment", body=payment_body(**overrides))
    assert answer.status == 400
    assert message in answer.message
    assert len(sandbox.ledger) == 0


@pytest.mark.parametrize("raw_body", ["{not json", "[1, 2]", ""])
async def test_a_body_that_is_not_a_json_object_is_400(raw: RawApi, raw_body: str) -> None:
    answer = await raw.call("POST", "/payment", raw_body=raw_body)
    assert answer.status == 400
    assert "JSON" in answer.message


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/payment/diff", {}, "network: Required"),
        ("/payment/diff", {"network": "Preprod", "limit": "0"}, "between 1 and 100"),
        ("/payment/diff", {"network": "Preprod", "limit": "101"}, "between 1 and 100"),
        ("/payment/diff", {"network": "Preprod", "limit": "ten"}, "limit: Expected number"),
        ("/payment/diff", {"network": "Preprod", "lastUpdate": "yesterday"}, "Invalid date"),
        ("/payment", {"network": "Preprod", "filterOnChainState": "Paid"}, "Invalid enum"),
    ],
)
async def test_query_validation_is_400(
    raw: RawApi, path: str, params: dict[str, str], message: str
) -> None:
    answer = await raw.call("GET", path, params=params)
    assert answer.status == 400
    assert message in answer.message


@pytest.mark.parametrize("submit_result_hash", ["abc", "g" * 64, "a" * 63, "a" * 65, None, 42])
async def test_submit_result_hash_must_be_64_hex(
    raw: RawApi, sandbox: SandboxPaymentService, submit_result_hash: object
) -> None:
    [bid] = sandbox.create_payments(1)
    await sandbox.lock_funds(bid)
    answer = await raw.call(
        "POST",
        "/payment/submit-result",
        body={
            "network": "Preprod",
            "blockchainIdentifier": bid,
            "submitResultHash": submit_result_hash,
        },
    )
    assert answer.status == 400
    assert "submitResultHash" in answer.message
    assert sandbox.accepted_submissions(bid) == 0


async def test_resolve_needs_an_identifier(raw: RawApi) -> None:
    answer = await raw.call(
        "POST", "/payment/resolve-blockchain-identifier", body={"network": "Preprod"}
    )
    assert answer.status == 400
    assert "blockchainIdentifier: Required" in answer.message


@pytest.mark.parametrize(
    "path",
    [
        "/payment/resolve-blockchain-identifier",
        "/payment/submit-result",
        "/payment/authorize-refund",
    ],
)
async def test_unknown_payment_is_404(raw: RawApi, path: str) -> None:
    answer = await raw.call(
        "POST",
        path,
        body={
            "network": "Preprod",
            "blockchainIdentifier": "beef" * 16,
            "submitResultHash": "a" * 64,
        },
    )
    assert answer.status == 404
    assert "not found" in answer.message


async def test_a_payment_is_found_only_on_its_network(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    [bid] = sandbox.create_payments(1, network="Preprod")
    answer = await raw.call(
        "POST",
        "/payment/resolve-blockchain-identifier",
        body={"network": "Mainnet", "blockchainIdentifier": bid},
    )
    assert answer.status == 404


async def test_unknown_routes_answer_the_error_envelope(raw: RawApi) -> None:
    answer = await raw.call("GET", "/purchase")
    assert answer.status == 404
    assert answer.body["status"] == "error"


async def test_submit_result_before_funds_are_locked_is_409(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    created = await raw.create()
    answer = await raw.submit(created["blockchainIdentifier"])
    assert answer.status == 409
    assert "retry" in answer.message
    assert sandbox.accepted_submissions(created["blockchainIdentifier"]) == 0


async def test_second_submit_result_while_the_first_is_pending_is_409(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.settle_after = 3600  # the first submission stays SubmitResultRequested
    created = await raw.create()
    bid = created["blockchainIdentifier"]
    await sandbox.lock_funds(bid)
    first = await raw.submit(bid)
    second = await raw.submit(bid, "b" * 64)
    assert (first.status, second.status) == (200, 409)
    assert first.data["NextAction"] == {
        "requestedAction": "SubmitResultRequested",
        "errorType": None,
        "errorNote": None,
        "resultHash": "a" * 64,
    }
    assert sandbox.accepted_submissions(bid) == 1


@pytest.mark.parametrize("locked", [False, True])
async def test_authorize_refund_without_a_refund_request_is_409(
    raw: RawApi, sandbox: SandboxPaymentService, locked: bool
) -> None:
    [bid] = sandbox.create_payments(1)
    if locked:
        await sandbox.lock_funds(bid)
    answer = await raw.call(
        "POST",
        "/payment/authorize-refund",
        body={"network": "Preprod", "blockchainIdentifier": bid},
    )
    assert answer.status == 409


async def test_create_answers_the_payment_as_the_contract_describes(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    pay_by = NOW + timedelta(hours=2, milliseconds=123)
    submit = NOW + timedelta(hours=5, milliseconds=456)
    created = await raw.create(
        payByTime=iso(pay_by), submitResultTime=iso(submit), metadata="order 17"
    )
    assert created["payByTime"] == str(epoch_ms(pay_by))
    assert created["submitResultTime"] == str(epoch_ms(submit))
    assert int(created["unlockTime"]) == int(created["submitResultTime"]) + 6 * 3_600_000
    assert int(created["externalDisputeUnlockTime"]) == int(created["submitResultTime"]) + (
        12 * 3_600_000
    )
    assert created["SmartContractWallet"]["walletVkey"] == sandbox.seller.wallet_vkey
    assert len(created["SmartContractWallet"]["walletVkey"]) == 56
    assert created["RequestedFunds"] == [{"amount": "10000000", "unit": ""}]
    assert created["onChainState"] is None
    assert created["NextAction"]["requestedAction"] == "WaitingForExternalAction"
    assert created["metadata"] == "order 17"
    assert created["inputHash"] == payment_body()["inputHash"]
    assert created["id"] and created["blockchainIdentifier"]
    # The SDK posts to /payment/ (trailing slash): the same endpoint.
    again = await raw.call("POST", "/payment/", body=payment_body())
    assert again.status == 200
