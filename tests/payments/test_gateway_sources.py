"""MasumiPaymentGateway and the payment sources and pricing of upstream 0.28.0 over real
HTTP: V1 and V2 request bodies, RequestedFunds for dynamic pricing only, the terms read
back, the diff filtered by source type, and terms rebuilt from a diff or resolve answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from agentjobs.server.domain import Amount, PaymentServiceRejectedError
from agentjobs.server.domain.payment import PaymentState
from agentjobs.server.payments.gateway import PaymentSourceType
from agentjobs.server.payments.sandbox import (
    V1,
    V2,
    AgentListing,
    Funds,
    Pricing,
    SandboxPaymentService,
)
from tests.payments.conftest import Sent
from tests.payments.helpers import API_KEY, gateway_at, open_gateway, payment_request

TOKEN_UNIT = "c" * 56 + "746f6b656e"
V1_AGENT = "sourcesuite" + "1" * 61
V2_AGENT = "sourcesuite" + "2" * 61

Sandbox = Callable[..., AbstractAsyncContextManager[SandboxPaymentService]]


@pytest.fixture
def sandbox_with() -> Sandbox:
    @asynccontextmanager
    async def start(**options: Any) -> AsyncIterator[SandboxPaymentService]:
        service = SandboxPaymentService(api_key=API_KEY, lock_after=None, **options)
        await service.start("127.0.0.1", 0)
        try:
            yield service
        finally:
            await service.stop()

    return start


def payment_bodies(sent: Sent) -> list[dict[str, Any]]:
    return [body for method, path, body in sent if (method, path) == ("POST", "/payment")]


async def test_a_v2_request_sends_the_v2_source_and_its_index(
    sandbox_with: Sandbox, sent: Sent
) -> None:
    async with (
        sandbox_with(agent=AgentListing(source_type=V2)) as sandbox,
        open_gateway(sandbox.url) as gateway,
    ):
        terms = await gateway.create_payment_request(payment_request(source_index=0))
        [body] = payment_bodies(sent)
        assert (body["paymentSourceType"], body["supportedPaymentSourceIndex"]) == (
            "Web3CardanoV2",
            0,
        )
        assert "RequestedFunds" not in body
        shown = sandbox.payment(terms.blockchain_identifier)
        assert shown["PaymentSource"]["paymentSourceType"] == V2
        assert shown["PaymentSource"]["smartContractAddress"] == (
            sandbox.seller.v2_smart_contract_address
        )
        assert (terms.source_type, terms.source_index) == ("Web3CardanoV2", 0)
        assert (terms.pay_by_time, terms.submit_result_time) == (
            int(shown["payByTime"]),
            int(shown["submitResultTime"]),
        )
        assert (terms.unlock_time, terms.external_dispute_unlock_time) == (
            int(shown["unlockTime"]),
            int(shown["externalDisputeUnlockTime"]),
        )
        assert terms.amounts == (Amount(amount=10_000_000, unit=""),)


async def test_a_source_that_does_not_match_the_registry_is_rejected(
    sandbox_with: Sandbox, sent: Sent
) -> None:
    async with (
        sandbox_with(agent=AgentListing(source_type=V2)) as v2_sandbox,
        open_gateway(v2_sandbox.url) as gateway,
    ):
        # Our V1 default asks for the wrong contract: upstream says so, before rule 8.
        with pytest.raises(PaymentServiceRejectedError) as raised:
            await gateway.create_payment_request(payment_request())
        assert raised.value.message == "paymentSourceType does not match the agent registry source"
        with pytest.raises(PaymentServiceRejectedError) as raised:
            await gateway.create_payment_request(payment_request(source_index=3))
        assert raised.value.message == (
            "supportedPaymentSourceIndex 3 is not advertised by this agent"
        )
        assert list(v2_sandbox.ledger) == []
    async with sandbox_with() as v1_sandbox, open_gateway(v1_sandbox.url) as gateway:
        with pytest.raises(PaymentServiceRejectedError) as raised:
            await gateway.create_payment_request(payment_request(source_index=0))
        assert raised.value.message == "paymentSourceType does not match the agent registry source"
    v1_body = payment_bodies(sent)[0]
    assert v1_body["paymentSourceType"] == "Web3CardanoV1"
    assert "supportedPaymentSourceIndex" not in v1_body


@pytest.mark.parametrize("source_type", [V1, V2])
async def test_dynamic_pricing_sends_requested_funds_and_reads_them_back(
    sandbox_with: Sandbox, sent: Sent, source_type: str
) -> None:
    index = None if source_type == V1 else 0
    funds = (Amount(amount=2_500_000, unit=""), Amount(amount=7, unit=TOKEN_UNIT))
    async with (
        sandbox_with(agent=AgentListing(source_type=source_type, pricing=Pricing.dynamic())) as sb,
        open_gateway(sb.url) as gateway,
    ):
        terms = await gateway.create_payment_request(
            payment_request(source_index=index, requested_funds=funds)
        )
        [body] = payment_bodies(sent)
        assert body["RequestedFunds"] == [
            {"amount": "2500000", "unit": ""},
            {"amount": "7", "unit": TOKEN_UNIT},
        ]
        assert terms.amounts == funds
        assert (terms.source_type, terms.source_index) == (source_type, index)
        shown = sb.payment(terms.blockchain_identifier)
        assert (shown["pricingType"], shown["RequestedFunds"]) == (
            "Dynamic",
            body["RequestedFunds"],
        )


async def test_dynamic_pricing_without_requested_funds_is_rejected(
    sandbox_with: Sandbox, sent: Sent
) -> None:
    async with (
        sandbox_with(agent=AgentListing(pricing=Pricing.dynamic())) as sandbox,
        open_gateway(sandbox.url) as gateway,
    ):
        with pytest.raises(PaymentServiceRejectedError) as raised:
            await gateway.create_payment_request(payment_request())
        assert raised.value.message == "For dynamic pricing, RequestedFunds must be provided"
        assert list(sandbox.ledger) == []
    [body] = payment_bodies(sent)
    assert "RequestedFunds" not in body


async def test_fixed_pricing_refuses_requested_funds_with_upstreams_answer(
    sandbox_with: Sandbox, sent: Sent
) -> None:
    async with (
        sandbox_with(price=[Funds(4_000_000)]) as sandbox,
        open_gateway(sandbox.url) as gateway,
    ):
        with pytest.raises(PaymentServiceRejectedError) as raised:
            await gateway.create_payment_request(
                payment_request(requested_funds=(Amount(amount=1_000_000, unit=""),))
            )
        assert raised.value.message == "For fixed pricing, RequestedFunds must be null"
        assert raised.value.reason == "PAYMENT_REQUEST_REJECTED"
        assert list(sandbox.ledger) == []
        # Without RequestedFunds the registered price is the price.
        terms = await gateway.create_payment_request(payment_request())
        assert terms.amounts == (Amount(amount=4_000_000, unit=""),)
    refused, accepted = payment_bodies(sent)
    assert refused["RequestedFunds"] == [{"amount": "1000000", "unit": ""}]
    assert "RequestedFunds" not in accepted


@asynccontextmanager
async def both_sources(sandbox_with: Sandbox) -> AsyncIterator[tuple[SandboxPaymentService, Any]]:
    """A registry with a V1 and a V2 agent; one gateway for each."""
    agents = {V1_AGENT: AgentListing(V1), V2_AGENT: AgentListing(V2)}
    async with (
        sandbox_with(agents=agents) as sandbox,
        open_gateway(sandbox.url, agent_identifier=V1_AGENT) as v1,
        open_gateway(sandbox.url, agent_identifier=V2_AGENT) as v2,
    ):
        yield sandbox, (v1, v2)


async def test_changes_since_sees_only_the_source_type_it_asks_for(sandbox_with: Sandbox) -> None:
    async with both_sources(sandbox_with) as (sandbox, (v1, v2)):
        v1_bid = (await v1.create_payment_request(payment_request())).blockchain_identifier
        v2_bid = (
            await v2.create_payment_request(payment_request(source_index=0))
        ).blockchain_identifier

        default = await v1.changes_since(None)
        assert [p.blockchain_identifier for p in default.payments] == [v1_bid]
        explicit_v1 = await v2.changes_since(None, source_type=PaymentSourceType.V1)
        assert [p.blockchain_identifier for p in explicit_v1.payments] == [v1_bid]
        only_v2 = await v1.changes_since(None, source_type=PaymentSourceType.V2)
        assert [p.blockchain_identifier for p in only_v2.payments] == [v2_bid]
        assert [p.source_type for p in only_v2.payments] == [PaymentSourceType.V2]
        assert [p.source_type for p in default.payments] == [PaymentSourceType.V1]

        # A V2 change is seen by the V2 poll only, from its own watermark.
        await sandbox.lock_funds(v2_bid)
        assert only_v2.watermark is not None and default.watermark is not None
        again_v2 = await v2.changes_since(only_v2.watermark, source_type=PaymentSourceType.V2)
        assert [(p.blockchain_identifier, p.on_chain_state) for p in again_v2.payments] == [
            (v2_bid, "FundsLocked")
        ]
        # The V1 poll sees its cursor row again (inclusive), unchanged, and nothing else.
        again_v1 = await v1.changes_since(default.watermark)
        assert [(p.blockchain_identifier, p.on_chain_state) for p in again_v1.payments] == [
            (v1_bid, None)
        ]


async def test_terms_of_rebuilds_the_terms_from_a_diff_or_resolve_answer(
    sandbox_with: Sandbox,
) -> None:
    async with both_sources(sandbox_with) as (_sandbox, (v1, v2)):
        v1_terms = await v1.create_payment_request(payment_request())
        v2_terms = await v2.create_payment_request(payment_request(source_index=0))

        [v1_seen] = (await v1.changes_since(None)).payments
        [v2_seen] = (await v2.changes_since(None, source_type=PaymentSourceType.V2)).payments
        assert v1.terms_of(v1_seen, None) == v1_terms
        assert v2.terms_of(v2_seen, 0) == v2_terms
        resolved = await v2.get_payment(v2_terms.blockchain_identifier)
        assert v2.terms_of(resolved, 0) == v2_terms
        # The agent identifier comes from the payment, not from the gateway's setting.
        assert v2.terms_of(v1_seen, None) == v1_terms
        assert v1_terms.agent_identifier == V1_AGENT


async def test_terms_of_keeps_dynamic_amounts_exactly(sandbox_with: Sandbox) -> None:
    funds = (Amount(amount=123_456_789_012, unit=""), Amount(amount=1, unit=TOKEN_UNIT))
    async with (
        sandbox_with(agent=AgentListing(V2, Pricing.dynamic())) as sandbox,
        open_gateway(sandbox.url) as gateway,
    ):
        terms = await gateway.create_payment_request(
            payment_request(source_index=0, requested_funds=funds)
        )
        [seen] = (await gateway.changes_since(None, source_type=PaymentSourceType.V2)).payments
        rebuilt = gateway.terms_of(seen, 0)
        assert rebuilt == terms
        assert rebuilt is not None and rebuilt.amounts == funds


def test_terms_of_a_payment_without_its_times_is_none() -> None:
    # No request is made: terms_of reads the answer it is given.
    gateway = gateway_at("http://127.0.0.1:9/api/v1")
    bare = PaymentState(blockchain_identifier="ab" * 32, on_chain_state=None, requested_action="x")
    assert gateway.terms_of(bare, None) is None
