"""The sandbox's /api/v1 over real HTTP: auth (401), validation in zod 4's words (400),
upstream's own 400s and 404s, another key's payment (403), what a created payment shows.
Every expected text is upstream's (tag 0.28.0) or zod 4.3's, checked against zod."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentjobs.server.payments.sandbox import SandboxPaymentService
from tests.payments.helpers import (
    API_KEY,
    RESULT_HASH,
    SECOND_KEY,
    RawApi,
    authorize_refund,
    epoch_ms,
    iso,
    payment_body,
)

WRONG_KEY = "not-the-key-0f1e2d3c"
NOW = datetime.now(UTC)
NOT_FOUND_OR_INVALID = "Payment not found or in invalid state"
NETWORK_ENUM = 'network: Invalid option: expected one of "Preprod"|"Mainnet"'


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/payment"),
        ("GET", "/payment?network=Preprod"),
        ("GET", "/payment/diff?network=Preprod"),
        ("POST", "/payment/resolve-blockchain-identifier"),
        ("POST", "/payment/submit-result"),
        ("POST", "/payment/authorize-refund"),
        ("POST", "/payment/error-state-recovery"),
    ],
)
async def test_missing_wrong_or_revoked_token_is_401_without_echo(
    raw: RawApi, sandbox: SandboxPaymentService, method: str, path: str
) -> None:
    sandbox.add_api_key(SECOND_KEY)
    sandbox.revoke_api_key(SECOND_KEY)
    missing = await raw.call(method, path, body=payment_body(), token=None)
    wrong = await raw.call(method, path, body=payment_body(), token=WRONG_KEY)
    revoked = await raw.call(method, path, body=payment_body(), token=SECOND_KEY)
    assert (missing.status, missing.message) == (
        401,
        "Unauthorized, no authentication token provided",
    )
    assert (wrong.status, wrong.message) == (
        401,
        "Unauthorized, invalid authentication token provided",
    )
    assert (revoked.status, revoked.message) == (401, "Unauthorized, API key is revoked")
    for answer in (missing, wrong, revoked):
        assert WRONG_KEY not in answer.text and API_KEY not in answer.text
        assert SECOND_KEY not in answer.text


async def test_a_read_key_may_read_but_not_pay(raw: RawApi, sandbox: SandboxPaymentService) -> None:
    sandbox.add_api_key(SECOND_KEY, pay=False)
    reads = await raw.call("GET", "/payment/count", params={"network": "Preprod"}, token=SECOND_KEY)
    assert reads.data == {"total": 0}
    pays = await raw.call("POST", "/payment", body=payment_body(), token=SECOND_KEY)
    assert (pays.status, pays.message) == (401, "Unauthorized, payment access required")


async def test_control_endpoints_need_the_token_too(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    [bid] = sandbox.create_payments(1)
    answer = await raw.call("POST", f"/sandbox/payments/{bid}/lock", token=None, under_api=False)
    assert answer.status == 401
    assert sandbox.payment(bid)["onChainState"] is None


async def test_all_missing_fields_are_named_in_schema_order(raw: RawApi) -> None:
    answer = await raw.call("POST", "/payment", body={})
    assert (answer.status, answer.message) == (
        400,
        "inputHash: Invalid input: expected string, received undefined; "
        f"{NETWORK_ENUM}; "
        "agentIdentifier: Invalid input: expected string, received undefined; "
        "identifierFromPurchaser: Invalid input: expected string, received undefined",
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # zod 4 (the schema of createPaymentsSchemaInput)
        (
            {"identifierFromPurchaser": "aabbccddeeff"},
            "identifierFromPurchaser: Too small: expected string to have >=14 characters",
        ),
        (
            {"identifierFromPurchaser": "aa" * 14},
            "identifierFromPurchaser: Too big: expected string to have <=26 characters",
        ),
        (
            {"identifierFromPurchaser": None},
            "identifierFromPurchaser: Invalid input: expected string, received undefined",
        ),
        ({"inputHash": 5}, "inputHash: Invalid input: expected string, received number"),
        ({"network": "Testnet"}, NETWORK_ENUM),
        (
            {"agentIdentifier": "short"},
            "agentIdentifier: Too small: expected string to have >=57 characters",
        ),
        (
            {"agentIdentifier": "a" * 251},
            "agentIdentifier: Too big: expected string to have <=250 characters",
        ),
        ({"payByTime": "tomorrow morning"}, "payByTime: Invalid input"),
        ({"submitResultTime": 1234}, "submitResultTime: Invalid input"),
        # ez.dateIn() takes no offsets, not even +00:00.
        ({"payByTime": NOW.isoformat()}, "payByTime: Invalid input"),
        (
            {"payByTime": (NOW + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+00:00")},
            "payByTime: Invalid input",
        ),
        ({"metadata": 7}, "metadata: Invalid input: expected string, received number"),
        (
            {"paymentSourceType": "Web3CardanoV3"},
            'paymentSourceType: Invalid option: expected one of "Web3CardanoV1"|"Web3CardanoV2"',
        ),
        (
            {"supportedPaymentSourceIndex": 25},
            "supportedPaymentSourceIndex: Too big: expected number to be <=24",
        ),
        (
            {"supportedPaymentSourceIndex": 1.5},
            "supportedPaymentSourceIndex: Invalid input: expected int, received number",
        ),
        (
            {"RequestedFunds": [{"amount": 1, "unit": ""}]},
            "RequestedFunds[0].amount: Invalid input: expected string, received number",
        ),
        # upstream's own checks, in its order
        (
            {"identifierFromPurchaser": "zzzzzzzzzzzzzzzz"},
            "Purchaser identifier is not a valid hex string",
        ),
        (
            {"identifierFromPurchaser": "aabbccddeeff001"},
            "Purchaser identifier is not a valid hex string",
        ),
        ({"inputHash": "not-hex"}, "Input hash is not a valid hex string"),
        ({"inputHash": ""}, "Input hash is not a valid hex string"),
        (
            {
                "payByTime": iso(NOW + timedelta(hours=30)),
                "submitResultTime": iso(NOW + timedelta(hours=24)),
            },
            "Pay by time must be before submit result time (min. 5 minutes)",
        ),
        (
            {"payByTime": iso(NOW - timedelta(hours=1))},
            "Pay by time must be in the future (max. 5 minutes)",
        ),
        (
            {
                "payByTime": iso(NOW + timedelta(minutes=1)),
                "submitResultTime": iso(NOW + timedelta(minutes=10)),
            },
            "Submit result time must be in the future (min. 15 minutes)",
        ),
        # Without times the schema's defaults (1970) apply, which no rule accepts.
        (
            {"payByTime": None, "submitResultTime": None},
            "Pay by time must be before submit result time (min. 5 minutes)",
        ),
        (
            {
                "unlockTime": iso(NOW + timedelta(hours=30)),
                "externalDisputeUnlockTime": iso(NOW + timedelta(hours=30, minutes=5)),
            },
            "External dispute unlock time must be after unlock time (min. 15 minutes difference)",
        ),
        (
            {
                "unlockTime": iso(NOW + timedelta(hours=24, minutes=5)),
                "externalDisputeUnlockTime": iso(NOW + timedelta(hours=30)),
            },
            "Submit result time must be before unlock time with at least 15 minutes difference",
        ),
        (
            {"supportedPaymentSourceIndex": 0},
            "V1 Cardano payments must not set supportedPaymentSourceIndex; pricing comes from "
            "AgentPricing",
        ),
        (
            {"paymentSourceType": "Web3CardanoV2"},
            "paymentSourceType does not match the agent registry source",
        ),
        (
            {"RequestedFunds": [{"amount": "1", "unit": ""}]},
            "For fixed pricing, RequestedFunds must be null",
        ),
        ({"RequestedFunds": []}, "For fixed pricing, RequestedFunds must be null"),
    ],
)
async def test_create_payment_validation_is_400_with_upstreams_message(
    raw: RawApi, sandbox: SandboxPaymentService, overrides: dict[str, Any], message: str
) -> None:
    body = payment_body(**overrides)
    for name, value in overrides.items():
        if value is None:
            body.pop(name, None)
    answer = await raw.call("POST", "/payment", body=body)
    assert (answer.status, answer.message) == (400, message)
    assert len(sandbox.ledger) == 0


async def test_the_trailing_slash_and_unknown_keys_are_accepted(raw: RawApi) -> None:
    # The masumi SDK posts to /payment/ with paymentType, a key the schema drops.
    again = await raw.call("POST", "/payment/", body=payment_body(paymentType="Web3CardanoV1"))
    assert again.status == 200


async def test_a_body_that_is_not_json_is_400(raw: RawApi) -> None:
    answer = await raw.call("POST", "/payment", raw_body="{not json")
    assert answer.status == 400
    assert answer.body["status"] == "error"


@pytest.mark.parametrize("raw_body", ["[1, 2]", ""])
async def test_an_array_or_empty_body_is_validated_as_missing_fields(
    raw: RawApi, raw_body: str
) -> None:
    answer = await raw.call("POST", "/payment", raw_body=raw_body)
    assert answer.status == 400
    assert answer.message.startswith(
        "inputHash: Invalid input: expected string, received undefined"
    )


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/payment/diff", {}, NETWORK_ENUM),
        (
            "/payment/diff",
            {"network": "Preprod", "limit": "0"},
            "limit: Too small: expected number to be >=1",
        ),
        (
            "/payment/diff",
            {"network": "Preprod", "limit": "101"},
            "limit: Too big: expected number to be <=100",
        ),
        (
            "/payment/diff",
            {"network": "Preprod", "limit": "ten"},
            "limit: Invalid input: expected number, received NaN",
        ),
        (
            "/payment/diff",
            {"network": "Preprod", "lastUpdate": "yesterday"},
            "lastUpdate: Invalid input",
        ),
        (
            "/payment/diff",
            {"network": "Preprod", "lastUpdate": "2026-01-01T00:00:00+00:00"},
            "lastUpdate: Invalid input",
        ),
        (
            "/payment/diff",
            {"network": "Preprod", "filterPaymentSourceType": "V2"},
            'filterPaymentSourceType: Invalid option: expected one of "Web3CardanoV1"|'
            '"Web3CardanoV2"',
        ),
        (
            "/payment",
            {"network": "Preprod", "filterOnChainState": "Paid"},
            'filterOnChainState: Invalid option: expected one of "FundsLocked"|'
            '"FundsOrDatumInvalid"|"ResultSubmitted"|"RefundRequested"|"Disputed"|'
            '"WithdrawAuthorized"|"RefundAuthorized"|"Withdrawn"|"RefundWithdrawn"|'
            '"DisputedWithdrawn"',
        ),
        ("/payment/count", {"network": "Testnet"}, NETWORK_ENUM),
    ],
)
async def test_query_validation_is_400(
    raw: RawApi, path: str, params: dict[str, str], message: str
) -> None:
    answer = await raw.call("GET", path, params=params)
    assert (answer.status, answer.message) == (400, message)


@pytest.mark.parametrize(
    ("submit_result_hash", "message"),
    [
        (
            "abc",
            "submitResultHash: Too small: expected string to have >=64 characters; "
            "submitResultHash: submitResultHash must be a 64-char hex sha256 digest",
        ),
        ("g" * 64, "submitResultHash: submitResultHash must be a 64-char hex sha256 digest"),
        (
            "a" * 65,
            "submitResultHash: Too big: expected string to have <=64 characters; "
            "submitResultHash: submitResultHash must be a 64-char hex sha256 digest",
        ),
        (None, "submitResultHash: Invalid input: expected string, received null"),
        (42, "submitResultHash: Invalid input: expected string, received number"),
    ],
)
async def test_submit_result_hash_must_be_64_hex(
    raw: RawApi, sandbox: SandboxPaymentService, submit_result_hash: object, message: str
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
    assert (answer.status, answer.message) == (400, message)
    assert sandbox.accepted_submissions(bid) == 0


async def test_resolve_needs_an_identifier(raw: RawApi) -> None:
    answer = await raw.call(
        "POST", "/payment/resolve-blockchain-identifier", body={"network": "Preprod"}
    )
    assert (answer.status, answer.message) == (
        400,
        "blockchainIdentifier: Invalid input: expected string, received undefined",
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/payment/resolve-blockchain-identifier", "Payment not found"),
        ("/payment/submit-result", NOT_FOUND_OR_INVALID),
        ("/payment/authorize-refund", NOT_FOUND_OR_INVALID),
    ],
)
async def test_unknown_payment_is_404(raw: RawApi, path: str, message: str) -> None:
    answer = await raw.call(
        "POST",
        path,
        body={
            "network": "Preprod",
            "blockchainIdentifier": "beef" * 16,
            "submitResultHash": "a" * 64,
        },
    )
    assert (answer.status, answer.message) == (404, message)


async def test_a_payment_is_found_only_on_its_network(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    [bid] = sandbox.create_payments(1, network="Preprod")
    answer = await raw.call(
        "POST",
        "/payment/resolve-blockchain-identifier",
        body={"network": "Mainnet", "blockchainIdentifier": bid},
    )
    assert (answer.status, answer.message) == (404, "Payment not found")


async def test_unknown_routes_answer_like_express_zod_api(raw: RawApi) -> None:
    answer = await raw.call("GET", "/purchase")
    assert (answer.status, answer.message) == (404, "Can not GET /api/v1/purchase")


async def test_submit_result_before_funds_are_locked_is_404(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    created = await raw.create()
    answer = await raw.submit(created["blockchainIdentifier"])
    assert (answer.status, answer.message) == (404, NOT_FOUND_OR_INVALID)
    assert sandbox.accepted_submissions(created["blockchainIdentifier"]) == 0


async def test_second_submit_result_while_the_first_is_pending_is_404(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.settle_after = 3600  # the first submission stays in flight
    bid = (await raw.create())["blockchainIdentifier"]
    await sandbox.lock_funds(bid)
    first = await raw.submit(bid)
    second = await raw.submit(bid, "b" * 64)
    assert (first.status, second.status, second.message) == (200, 404, NOT_FOUND_OR_INVALID)
    assert first.data["NextAction"] == {
        "requestedAction": "SubmitResultRequested",
        "errorType": None,
        "errorNote": None,
        "resultHash": RESULT_HASH,
    }
    assert sandbox.accepted_submissions(bid) == 1


async def test_an_injected_conflict_is_upstreams_409(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    [bid] = sandbox.create_payments(1)
    await sandbox.lock_funds(bid)
    sandbox.faults.conflict_next = 1
    answer = await raw.submit(bid)
    assert (answer.status, answer.message) == (
        409,
        "Payment state changed concurrently; retry against the new state",
    )


async def test_another_key_is_403_and_an_admin_key_may_act(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.settle_after = 3600
    sandbox.add_api_key(SECOND_KEY)
    admin = sandbox.add_api_key(admin=True)
    bid = (await raw.create())["blockchainIdentifier"]
    await sandbox.lock_funds(bid)
    other = await raw.call(
        "POST",
        "/payment/submit-result",
        body={"network": "Preprod", "blockchainIdentifier": bid, "submitResultHash": RESULT_HASH},
        token=SECOND_KEY,
    )
    assert (other.status, other.message) == (
        403,
        "You are not authorized to submit results for this payment",
    )
    await sandbox.request_refund(bid)
    refund = await authorize_refund(raw, bid, token=SECOND_KEY)
    assert (refund.status, refund.message) == (
        403,
        "You are not authorized to authorize a refund for this payment",
    )
    by_admin = await authorize_refund(raw, bid, token=admin.token)
    assert by_admin.data["NextAction"]["requestedAction"] == "AuthorizeRefundRequested"
    # Reading works with any key.
    assert (
        await raw.call("GET", "/payment", params={"network": "Preprod"}, token=SECOND_KEY)
    ).status == 200


async def test_a_key_added_over_http_is_accepted(raw: RawApi) -> None:
    added = await raw.call("POST", "/sandbox/api-keys", body={}, under_api=False)
    token = added.data["token"]
    assert (await raw.call("POST", "/payment", body=payment_body(), token=token)).status == 200
    twice = await raw.call("POST", "/sandbox/api-keys", body={"token": token}, under_api=False)
    assert twice.status == 409


async def test_create_answers_the_payment_as_upstream_shows_it(
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
    assert created["RequestedFunds"] == [{"amount": "10000000", "unit": ""}]
    assert created["pricingType"] == "Fixed"
    assert created["onChainState"] is None
    assert created["resultHash"] == ""
    assert created["requestedById"] == sandbox.primary_key.id
    assert created["NextAction"]["requestedAction"] == "WaitingForExternalAction"
    assert created["metadata"] == "order 17"
    assert created["PaymentSource"]["paymentSourceType"] == "Web3CardanoV1"
    assert "ActionHistory" not in created
    resolved = await raw.resolve(created["blockchainIdentifier"])
    assert (resolved["ActionHistory"], resolved["TransactionHistory"]) == (None, None)
    with_history = await raw.call(
        "POST",
        "/payment/resolve-blockchain-identifier",
        body={
            "network": "Preprod",
            "blockchainIdentifier": created["blockchainIdentifier"],
            "includeHistory": "true",
        },
    )
    assert with_history.data["ActionHistory"] == []
