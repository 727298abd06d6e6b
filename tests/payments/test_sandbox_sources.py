"""Payment sources and pricing as upstream's POST /payment reads the registry
(src/routes/api/payments/index.ts, registry/wallet resolveAgentPricingFromMetadata), and
the V1 default of the list, count and diff endpoints (payments/queries.ts)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import pytest

from agentjobs.server.payments.sandbox import (
    V1,
    V2,
    AdvertisedSource,
    AgentListing,
    Funds,
    Pricing,
    SandboxPaymentService,
)
from tests.payments.helpers import AGENT_IDENTIFIER, API_KEY, RawApi, payment_body

Sandbox = Callable[..., AbstractAsyncContextManager[tuple[SandboxPaymentService, RawApi]]]


@pytest.fixture
def sandbox_with() -> Sandbox:
    @asynccontextmanager
    async def start(**options: Any) -> AsyncIterator[tuple[SandboxPaymentService, RawApi]]:
        service = SandboxPaymentService(api_key=API_KEY, lock_after=None, **options)
        await service.start("127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as session:
                yield service, RawApi(session, service.url)
        finally:
            await service.stop()

    return start


async def test_v2_needs_a_source_index_and_books_a_v2_payment(sandbox_with: Sandbox) -> None:
    async with sandbox_with(agent=AgentListing(source_type=V2)) as (sandbox, api):
        missing = await api.call("POST", "/payment", body=payment_body())
        assert (missing.status, missing.message) == (
            400,
            "V2 Cardano payments require supportedPaymentSourceIndex to select a priced "
            "Cardano source",
        )
        beyond = await api.call(
            "POST", "/payment", body=payment_body(supportedPaymentSourceIndex=5)
        )
        assert (beyond.status, beyond.message) == (
            400,
            "supportedPaymentSourceIndex 5 is not advertised by this agent",
        )
        # Index 1 is the agent's Mainnet source.
        wrong_network = await api.call(
            "POST", "/payment", body=payment_body(supportedPaymentSourceIndex=1)
        )
        assert (wrong_network.status, wrong_network.message) == (
            400,
            "Selected Cardano payment source network does not match the request network",
        )
        v1 = await api.call("POST", "/payment", body=payment_body(paymentSourceType=V1))
        assert (v1.status, v1.message) == (
            400,
            "paymentSourceType does not match the agent registry source",
        )
        created = (
            await api.call(
                "POST",
                "/payment",
                body=payment_body(paymentSourceType=V2, supportedPaymentSourceIndex=0),
            )
        ).data
        source = created["PaymentSource"]
        assert source["paymentSourceType"] == V2
        assert source["smartContractAddress"] == sandbox.seller.v2_smart_contract_address


async def test_a_v2_source_must_settle_on_a_v2_contract_of_this_node(sandbox_with: Sandbox) -> None:
    agent = AgentListing(
        source_type=V2,
        supported_payment_sources=(
            AdvertisedSource("Preprod", chain="Ethereum"),
            AdvertisedSource("Preprod", settlement_payment_source_type=None),
            AdvertisedSource("Preprod", settlement_address="addr_test1wsomebodyelse"),
        ),
    )
    async with sandbox_with(agent=agent) as (_sandbox, api):
        answers = [
            await api.call("POST", "/payment", body=payment_body(supportedPaymentSourceIndex=at))
            for at in range(3)
        ]
    assert [(a.status, a.message) for a in answers] == [
        (400, "supportedPaymentSourceIndex 0 does not select a Cardano payment source"),
        (400, "Selected Cardano payment source settlement is incomplete or unsupported"),
        (404, "Selected Cardano payment source is not configured on this node"),
    ]


async def test_dynamic_pricing_needs_positive_requested_funds(sandbox_with: Sandbox) -> None:
    async with sandbox_with(agent=AgentListing(pricing=Pricing.dynamic())) as (_sandbox, api):
        missing = await api.call("POST", "/payment", body=payment_body())
        empty = await api.call("POST", "/payment", body=payment_body(RequestedFunds=[]))
        zero = await api.call(
            "POST", "/payment", body=payment_body(RequestedFunds=[{"amount": "0", "unit": ""}])
        )
        created = (
            await api.call(
                "POST",
                "/payment",
                body=payment_body(RequestedFunds=[{"amount": "2500000", "unit": "lovelace"}]),
            )
        ).data
    for answer in (missing, empty):
        assert (answer.status, answer.message) == (
            400,
            "For dynamic pricing, RequestedFunds must be provided",
        )
    assert (zero.status, zero.message) == (400, "RequestedFunds amounts must be positive")
    assert created["pricingType"] == "Dynamic"
    assert created["RequestedFunds"] == [{"amount": "2500000", "unit": ""}]


async def test_free_agents_get_no_payment_request(sandbox_with: Sandbox) -> None:
    async with sandbox_with(agent=AgentListing(pricing=Pricing.free())) as (_sandbox, api):
        answer = await api.call("POST", "/payment", body=payment_body())
    assert (answer.status, answer.message) == (400, "Pricing type not supported for payments")


async def test_fixed_pricing_is_the_registrys(sandbox_with: Sandbox) -> None:
    price = Pricing.fixed(Funds(3_000_000), Funds(5, "abcd"))
    async with sandbox_with(agent=AgentListing(pricing=price)) as (_sandbox, api):
        created = await api.create()
    assert created["RequestedFunds"] == [
        {"amount": "3000000", "unit": ""},
        {"amount": "5", "unit": "abcd"},
    ]


async def test_a_listed_registry_knows_only_its_agents(sandbox_with: Sandbox) -> None:
    other_policy = "f" * 56 + "00"
    same_policy = AGENT_IDENTIFIER[:56] + "ff"
    async with sandbox_with(agents={AGENT_IDENTIFIER: AgentListing()}) as (_sandbox, api):
        known = await api.call("POST", "/payment", body=payment_body())
        unknown_policy = await api.call(
            "POST", "/payment", body=payment_body(agentIdentifier=other_policy)
        )
        unknown_asset = await api.call(
            "POST", "/payment", body=payment_body(agentIdentifier=same_policy)
        )
    assert known.status == 200
    assert (unknown_policy.status, unknown_policy.message) == (
        404,
        "Network and policyId combination not supported",
    )
    assert (unknown_asset.status, unknown_asset.message) == (404, "Agent identifier not found")


async def test_list_count_and_diff_default_to_v1_unless_asked(sandbox_with: Sandbox) -> None:
    async with sandbox_with() as (sandbox, api):
        [v1] = sandbox.create_payments(1)
        [v2] = sandbox.create_payments(1, source_type=V2)

        async def bids(path: str, **params: str) -> list[str]:
            answer = await api.call("GET", path, params={"network": "Preprod", **params})
            return [p["blockchainIdentifier"] for p in answer.data["Payments"]]

        async def count(**params: str) -> int:
            answer = await api.call(
                "GET", "/payment/count", params={"network": "Preprod", **params}
            )
            total: int = answer.data["total"]
            return total

        v2_address = sandbox.seller.v2_smart_contract_address
        for path in ("/payment", "/payment/diff", "/payment/diff/next-action"):
            assert await bids(path) == [v1]
            assert await bids(path, filterPaymentSourceType=V2) == [v2]
            assert await bids(path, filterSmartContractAddress=v2_address) == [v2]
            assert (
                await bids(
                    path,
                    filterSmartContractAddress=v2_address,
                    filterPaymentSourceType=V1,
                )
                == []
            )
        assert (await count(), await count(filterPaymentSourceType=V2)) == (1, 1)
        # resolve finds either kind.
        assert (await api.resolve(v2))["PaymentSource"]["paymentSourceType"] == V2
