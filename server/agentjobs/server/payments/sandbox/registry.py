"""What the sandbox knows about the seller: its payment sources (V1 and V2 escrow
contracts), its selling wallet, and the agents' registry entries (pricing, advertised
payment sources), as upstream reads them when POST /payment arrives
(src/routes/api/payments/index.ts, src/routes/api/registry/wallet/index.ts
resolveAgentPricingFromMetadata).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from agentjobs.server.payments.sandbox.ledger import V1, V2, Funds

SELLER_VKEY = hashlib.sha256(b"agentjobs sandbox seller").hexdigest()[:56]
FIXED, DYNAMIC, FREE = "Fixed", "Dynamic", "Free"
CARDANO = "Cardano"


@dataclass(frozen=True)
class Pricing:
    """An agent's pricing as its registry metadata states it."""

    pricing_type: str = FIXED
    amounts: tuple[Funds, ...] = (Funds(10_000_000),)

    @classmethod
    def fixed(cls, *amounts: Funds) -> Pricing:
        return cls(FIXED, amounts or (Funds(10_000_000),))

    @classmethod
    def dynamic(cls) -> Pricing:
        return cls(DYNAMIC, ())

    @classmethod
    def free(cls) -> Pricing:
        return cls(FREE, ())


@dataclass(frozen=True)
class AdvertisedSource:
    """One entry of the agent's metadata `supported_payment_sources` (what a V2
    `supportedPaymentSourceIndex` points at). settlement_address None: the sandbox's V2
    contract on that network."""

    network: str
    pricing: Pricing | None = field(default_factory=Pricing)
    chain: str = CARDANO
    settlement_address: str | None = None
    settlement_payment_source_type: str | None = V2


@dataclass(frozen=True)
class AgentListing:
    """An agent in the registry. `source_type`: the payment source its registry policy
    belongs to (V1 or V2). `pricing`: the metadata's top-level agentPricing (what V1
    uses when no Cardano source is advertised). `supported_payment_sources` None: for V2,
    one Cardano source per network with `pricing`; for V1, none."""

    source_type: str = V1
    pricing: Pricing = field(default_factory=Pricing)
    supported_payment_sources: tuple[AdvertisedSource, ...] | None = None
    name: str = "Sandbox agent"

    def advertised(self) -> tuple[AdvertisedSource, ...]:
        if self.supported_payment_sources is not None:
            return self.supported_payment_sources
        if self.source_type == V2:
            return tuple(
                AdvertisedSource(network, self.pricing) for network in ("Preprod", "Mainnet")
            )
        return ()

    def pricing_for(self, index: int | None) -> Pricing | None:
        """resolveAgentPricingFromMetadata: the indexed source's pricing, or the first
        Cardano source's, or agentPricing; None when the selection prices nothing."""
        sources = self.advertised()
        if index is not None:
            chosen: AdvertisedSource | None = sources[index] if index < len(sources) else None
            if chosen is None:
                return None
        else:
            chosen = next((s for s in sources if s.chain == CARDANO), None)
        if chosen is not None and chosen.chain != CARDANO:
            return None
        if chosen is not None and chosen.pricing is not None:
            return chosen.pricing
        return self.pricing


@dataclass(frozen=True)
class SellerSide:
    """What the sandbox plays on the seller's side: its wallet and payment sources."""

    # None: answers name no SmartContractWallet (as for a deleted selling wallet).
    wallet_vkey: str | None = SELLER_VKEY
    wallet_id: str = "sandbox-selling-wallet"
    wallet_address: str = "addr_test1qsandboxsellingwallet0000000000000000000000000000000"
    source_id: str = "sandbox-payment-source"
    smart_contract_address: str = "addr_test1wsandboxescrowcontract00000000000000000000000"
    v2_source_id: str = "sandbox-payment-source-v2"
    v2_smart_contract_address: str = "addr_test1wsandboxescrowcontractv2000000000000000000000"
    policy_id: str = hashlib.sha256(b"agentjobs sandbox registry").hexdigest()[:56]
    api_key_id: str = "sandbox-api-key"
    agent_name: str = "Sandbox agent"

    def source_id_of(self, source_type: str) -> str:
        return self.v2_source_id if source_type == V2 else self.source_id

    def address_of(self, source_type: str) -> str:
        return self.v2_smart_contract_address if source_type == V2 else self.smart_contract_address

    def type_of_address(self, address: str) -> str | None:
        for source_type in (V1, V2):
            if self.address_of(source_type) == address:
                return source_type
        return None


class Registry:
    """Agents by identifier. With `agents` None every agentIdentifier is listed as
    `default` (kinder than upstream, which answers 404 for an unregistered agent, so
    agentjobs runs with any AGENT_IDENTIFIER); with `agents` set, only those exist."""

    def __init__(
        self, default: AgentListing, agents: Mapping[str, AgentListing] | None = None
    ) -> None:
        self.default = default
        self.agents = None if agents is None else dict(agents)

    def listing(self, agent_identifier: str) -> AgentListing | None:
        if self.agents is None:
            return self.default
        return self.agents.get(agent_identifier)

    def knows_policy(self, policy_id: str) -> bool:
        if self.agents is None:
            return True
        return any(identifier[:56] == policy_id for identifier in self.agents)
