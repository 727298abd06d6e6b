"""POST /payment after validation: upstream's checks in upstream's order
(src/routes/api/payments/index.ts paymentInitPost at tag 0.28.0), then the booking."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentjobs.server.payments.sandbox.errors import INTERNAL_SERVER_ERROR, ApiError
from agentjobs.server.payments.sandbox.keys import ApiKey
from agentjobs.server.payments.sandbox.ledger import V2, Funds, LedgerPayment, new_id
from agentjobs.server.payments.sandbox.registry import (
    CARDANO,
    DYNAMIC,
    FIXED,
    AgentListing,
    Pricing,
)

if TYPE_CHECKING:
    from agentjobs.server.payments.sandbox.service import SandboxPaymentService

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
_HEX = re.compile(r"[0-9a-fA-F]+")
_JS_BIGINT = re.compile(r"\s*(?:[+-]?\d+|0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+)?\s*")


def is_hex(value: str) -> bool:
    """validateHexString: whole bytes of hex digits (the empty string is not hex)."""
    return len(value) % 2 == 0 and bool(_HEX.fullmatch(value))


def _bigint(text: str) -> int:
    """JavaScript's BigInt(text); anything else throws a SyntaxError: a 500 upstream."""
    if not _JS_BIGINT.fullmatch(text):
        raise ApiError(500, INTERNAL_SERVER_ERROR)
    stripped = text.strip()
    return int(stripped, 0) if stripped else 0


class PaymentRequests:
    def __init__(self, service: SandboxPaymentService) -> None:
        self._service = service

    def create(self, values: Mapping[str, Any], key: ApiKey) -> LedgerPayment:
        service = self._service
        network = values["network"]
        agent_identifier: str = values["agentIdentifier"]
        policy_id = agent_identifier[:56]
        if not service.registry.knows_policy(policy_id):
            raise ApiError(404, "Network and policyId combination not supported")
        listing = service.registry.listing(agent_identifier)
        registry_type = (listing or service.registry.default).source_type
        if values["paymentSourceType"] is not None and values["paymentSourceType"] != registry_type:
            raise ApiError(400, "paymentSourceType does not match the agent registry source")
        if not is_hex(values["identifierFromPurchaser"]):
            raise ApiError(400, "Purchaser identifier is not a valid hex string")
        if not is_hex(values["inputHash"]):
            raise ApiError(400, "Input hash is not a valid hex string")
        times = self._times(values)
        if listing is None:
            raise ApiError(404, "Agent identifier not found")
        index = values["supportedPaymentSourceIndex"]
        if registry_type == V2:
            self._check_v2_selection(listing, index, network)
            pricing = listing.pricing_for(index)
        else:
            if index is not None:
                raise ApiError(
                    400,
                    "V1 Cardano payments must not set supportedPaymentSourceIndex; pricing comes "
                    "from AgentPricing",
                )
            pricing = listing.pricing_for(None)
        if pricing is None:
            raise ApiError(400, "Selected payment source does not advertise valid Cardano pricing")
        funds = self._funds(pricing, values["RequestedFunds"])
        payment = LedgerPayment(
            id=new_id(),
            blockchain_identifier=secrets.token_hex(32),
            network=network,
            source_type=registry_type,
            agent_identifier=agent_identifier,
            identifier_from_purchaser=values["identifierFromPurchaser"],
            input_hash=values["inputHash"],
            metadata=values["metadata"],
            pricing_type=pricing.pricing_type,
            requested_funds=funds,
            pay_by_time=times[0],
            submit_result_time=times[1],
            unlock_time=times[2],
            external_dispute_unlock_time=times[3],
            requested_by_id=key.id,
            created_at=service.clock.now_ms(),
            seller_return_address=values["sellerReturnAddress"],
        )
        service.book(payment, buyer_pays=True)
        return payment

    def _times(self, values: Mapping[str, Any]) -> tuple[int, int, int, int]:
        now = self._service.clock.now_ms()
        pay_by, submit = values["payByTime"], values["submitResultTime"]
        unlock = values["unlockTime"] if values["unlockTime"] is not None else submit + 6 * HOUR_MS
        dispute = values["externalDisputeUnlockTime"]
        if dispute is None:
            dispute = submit + 12 * HOUR_MS
        if pay_by > submit - 5 * MINUTE_MS:
            raise ApiError(400, "Pay by time must be before submit result time (min. 5 minutes)")
        if pay_by < now - 5 * MINUTE_MS:
            raise ApiError(400, "Pay by time must be in the future (max. 5 minutes)")
        if dispute < unlock + 15 * MINUTE_MS:
            raise ApiError(
                400,
                "External dispute unlock time must be after unlock time (min. 15 minutes "
                "difference)",
            )
        if submit < now + 15 * MINUTE_MS:
            raise ApiError(400, "Submit result time must be in the future (min. 15 minutes)")
        if submit > unlock - 15 * MINUTE_MS:
            raise ApiError(
                400,
                "Submit result time must be before unlock time with at least 15 minutes difference",
            )
        return pay_by, submit, unlock, dispute

    def _check_v2_selection(self, listing: AgentListing, index: int | None, network: str) -> None:
        if index is None:
            raise ApiError(
                400,
                "V2 Cardano payments require supportedPaymentSourceIndex to select a priced "
                "Cardano source",
            )
        sources = listing.advertised()
        if index >= len(sources):
            raise ApiError(
                400, f"supportedPaymentSourceIndex {index} is not advertised by this agent"
            )
        selected = sources[index]
        if selected.chain != CARDANO:
            raise ApiError(
                400, f"supportedPaymentSourceIndex {index} does not select a Cardano payment source"
            )
        if selected.network != network:
            raise ApiError(
                400, "Selected Cardano payment source network does not match the request network"
            )
        seller = self._service.seller
        address = selected.settlement_address or seller.address_of(V2)
        if selected.settlement_payment_source_type != V2:
            raise ApiError(
                400, "Selected Cardano payment source settlement is incomplete or unsupported"
            )
        if seller.type_of_address(address) != V2:
            raise ApiError(404, "Selected Cardano payment source is not configured on this node")

    def _funds(self, pricing: Pricing, requested: list[dict[str, str]] | None) -> tuple[Funds, ...]:
        if pricing.pricing_type == FIXED and requested is not None:
            raise ApiError(400, "For fixed pricing, RequestedFunds must be null")
        if pricing.pricing_type == DYNAMIC and not requested:
            raise ApiError(400, "For dynamic pricing, RequestedFunds must be provided")
        if pricing.pricing_type not in (FIXED, DYNAMIC):
            raise ApiError(400, "Pricing type not supported for payments")
        if pricing.pricing_type == FIXED:
            return pricing.amounts
        assert requested is not None
        amounts = [_bigint(fund["amount"]) for fund in requested]
        if any(amount <= 0 for amount in amounts):
            raise ApiError(400, "RequestedFunds amounts must be positive")
        return tuple(
            Funds(amount, "" if fund["unit"].lower() == "lovelace" else fund["unit"])
            for amount, fund in zip(amounts, requested, strict=True)
        )
