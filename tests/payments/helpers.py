"""Helpers for the payment tests: raw HTTP to a sandbox and valid request bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from agentjobs.server.payments.gateway import PaymentRequest
from agentjobs.server.payments.masumi import MasumiPaymentGateway

API_KEY = "payments-suite-key-7c1d2e9f"
AGENT_IDENTIFIER = "paymentsuite" + "0" * 60
PURCHASER = "aabbccddeeff0011"
INPUT_HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
RESULT_HASH = "a" * 64


def epoch_ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def payment_body(**overrides: Any) -> dict[str, Any]:
    """A POST /payment body the service accepts, as the masumi SDK shapes it."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "agentIdentifier": AGENT_IDENTIFIER,
        "network": "Preprod",
        "paymentType": "Web3CardanoV1",
        "payByTime": iso(now + timedelta(hours=12)),
        "submitResultTime": iso(now + timedelta(hours=24)),
        "identifierFromPurchaser": PURCHASER,
        "inputHash": INPUT_HASH,
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    text: str

    @property
    def data(self) -> Any:
        assert self.status == 200, (self.status, self.text)
        return self.body["data"]

    @property
    def message(self) -> str:
        assert self.body["status"] == "error", self.text
        message: str = self.body["error"]["message"]
        return message


@dataclass
class RawApi:
    """Plain HTTP to the sandbox, to see exactly what it answers."""

    session: aiohttp.ClientSession
    url: str

    @property
    def root(self) -> str:
        return self.url.removesuffix("/api/v1")

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        token: str | None = API_KEY,
        raw_body: str | None = None,
        under_api: bool = True,
    ) -> Answer:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["token"] = token
        data = raw_body if raw_body is not None else None if body is None else json.dumps(body)
        url = (self.url if under_api else self.root) + path
        async with self.session.request(
            method, url, data=data, params=params, headers=headers
        ) as response:
            text = await response.text()
            return Answer(response.status, json.loads(text), text)

    async def create(self, **overrides: Any) -> dict[str, Any]:
        created: dict[str, Any] = (
            await self.call("POST", "/payment", body=payment_body(**overrides))
        ).data
        return created

    async def resolve(self, blockchain_identifier: str) -> dict[str, Any]:
        answer = await self.call(
            "POST",
            "/payment/resolve-blockchain-identifier",
            body={"network": "Preprod", "blockchainIdentifier": blockchain_identifier},
        )
        resolved: dict[str, Any] = answer.data
        return resolved

    async def submit(self, blockchain_identifier: str, result_hash: str = RESULT_HASH) -> Answer:
        return await self.call(
            "POST",
            "/payment/submit-result",
            body={
                "network": "Preprod",
                "blockchainIdentifier": blockchain_identifier,
                "submitResultHash": result_hash,
            },
        )

    async def diff(self, **params: str) -> list[dict[str, Any]]:
        answer = await self.call("GET", "/payment/diff", params={"network": "Preprod", **params})
        payments: list[dict[str, Any]] = answer.data["Payments"]
        return payments


SECOND_KEY = "payments-suite-second-key-5a6b"
MINUTE = 60.0
WAIT_S = 5.0


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def times_from(now_ms: int, *, pay_by_min: float, submit_min: float) -> dict[str, str]:
    """payByTime and submitResultTime this many minutes after `now_ms`."""
    start = at(now_ms)
    return {
        "payByTime": iso(start + timedelta(minutes=pay_by_min)),
        "submitResultTime": iso(start + timedelta(minutes=submit_min)),
    }


async def refund_or_authorize(api: RawApi, path: str, bid: str, token: str = API_KEY) -> Answer:
    return await api.call(
        "POST", path, body={"network": "Preprod", "blockchainIdentifier": bid}, token=token
    )


async def authorize_refund(api: RawApi, bid: str, token: str = API_KEY) -> Answer:
    return await refund_or_authorize(api, "/payment/authorize-refund", bid, token)


async def recover(
    api: RawApi, bid: str, updated_at: str, *, retry: bool | None = None, token: str = API_KEY
) -> Answer:
    body: dict[str, Any] = {
        "network": "Preprod",
        "blockchainIdentifier": bid,
        "updatedAt": updated_at,
    }
    if retry is not None:
        body["retryPreviousAction"] = retry
    return await api.call("POST", "/payment/error-state-recovery", body=body, token=token)


def payment_request(
    start_ms: int | None = None,
    *,
    pay_by: timedelta = timedelta(hours=12),
    submit: timedelta = timedelta(hours=24),
    **fields: Any,
) -> PaymentRequest:
    """What agentjobs asks POST /payment for, its times counted from `start_ms` (a
    sandbox's clock; the wall clock when None)."""
    start = datetime.now(UTC) if start_ms is None else at(start_ms)
    values: dict[str, Any] = {
        "identifier_from_purchaser": PURCHASER,
        "input_hash": INPUT_HASH,
        "pay_by_time": start + pay_by,
        "submit_result_time": start + submit,
    }
    values.update(fields)
    return PaymentRequest(**values)


def gateway_at(
    url: str,
    *,
    api_key: str = API_KEY,
    agent_identifier: str = AGENT_IDENTIFIER,
    timeout_s: float = 2.0,
    **options: Any,
) -> MasumiPaymentGateway:
    return MasumiPaymentGateway(
        payment_service_url=url,
        api_key=api_key,
        agent_identifier=agent_identifier,
        network="Preprod",
        timeout_s=timeout_s,
        **options,
    )


@asynccontextmanager
async def open_gateway(url: str, **options: Any) -> AsyncIterator[MasumiPaymentGateway]:
    """A gateway to `url` (see gateway_at), closed afterwards."""
    gateway = gateway_at(url, **options)
    try:
        yield gateway
    finally:
        await gateway.close()
