"""Payments as the payment service's API shows them: the contract's `Payment` schema,
times of the payment as decimal strings of epoch milliseconds, timestamps as ISO-8601
strings with milliseconds and Z."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agentjobs.server.payments.sandbox.ledger import ChainTransaction, Funds, LedgerPayment

SELLER_VKEY = hashlib.sha256(b"agentjobs sandbox seller").hexdigest()[:56]


def iso_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True)
class SellerSide:
    """What the sandbox plays on the seller's side: its wallet and payment source."""

    # None: answers name no SmartContractWallet (as for a misconfigured selling wallet).
    wallet_vkey: str | None = SELLER_VKEY
    wallet_id: str = "sandbox-selling-wallet"
    wallet_address: str = "addr_test1qsandboxsellingwallet0000000000000000000000000000000"
    source_id: str = "sandbox-payment-source"
    smart_contract_address: str = "addr_test1wsandboxescrowcontract00000000000000000000000"
    policy_id: str = hashlib.sha256(b"agentjobs sandbox registry").hexdigest()[:56]
    api_key_id: str = "sandbox-api-key"
    agent_name: str = "Sandbox agent"


def _funds(funds: tuple[Funds, ...]) -> list[dict[str, str]]:
    return [{"amount": str(f.amount), "unit": f.unit} for f in funds]


def _transaction(tx: ChainTransaction | None) -> dict[str, Any] | None:
    if tx is None:
        return None
    return {
        "id": tx.id,
        "createdAt": iso_ms(tx.created_at),
        "updatedAt": iso_ms(tx.created_at),
        "fees": str(tx.fees_lovelace),
        "blockHeight": tx.block_height,
        "blockTime": tx.created_at // 1000,
        "txHash": tx.tx_hash,
        "status": "Confirmed",
        "previousOnChainState": tx.previous_state,
        "newOnChainState": tx.new_state,
        "confirmations": 1,
    }


def payment_json(
    payment: LedgerPayment, seller: SellerSide, *, with_history: bool = True
) -> dict[str, Any]:
    """One payment. `with_history` adds ActionHistory / TransactionHistory (null, as the
    service sends them unless includeHistory=true), which the list, diff and resolve
    answers carry and the create / submit-result / authorize-refund answers do not."""
    body: dict[str, Any] = {
        "id": payment.id,
        "createdAt": iso_ms(payment.created_at),
        "updatedAt": iso_ms(payment.updated_at),
        "blockchainIdentifier": payment.blockchain_identifier,
        "agentIdentifier": payment.agent_identifier,
        "agentName": seller.agent_name,
        "pricingType": "Fixed",
        "lastCheckedAt": None
        if payment.last_checked_at is None
        else iso_ms(payment.last_checked_at),
        "payByTime": str(payment.pay_by_time),
        "submitResultTime": str(payment.submit_result_time),
        "unlockTime": str(payment.unlock_time),
        "externalDisputeUnlockTime": str(payment.external_dispute_unlock_time),
        "collateralReturnLovelace": None,
        "buyerReturnAddress": None,
        "sellerReturnAddress": None,
        "requestedById": seller.api_key_id,
        "resultHash": payment.result_hash,
        "nextActionLastChangedAt": iso_ms(payment.next_action_changed_at),
        "onChainStateOrResultLastChangedAt": iso_ms(payment.on_chain_changed_at),
        "nextActionOrOnChainStateOrResultLastChangedAt": iso_ms(payment.changed_at),
        "inputHash": payment.input_hash,
        "totalBuyerCardanoFees": 0.18 if payment.buyer_vkey else 0,
        "totalSellerCardanoFees": 0,
        "cooldownTime": 0,
        "cooldownTimeOtherParty": 0,
        "onChainState": payment.on_chain_state,
        "NextAction": {
            "requestedAction": payment.requested_action,
            "errorType": payment.error_type,
            "errorNote": payment.error_note,
            "resultHash": payment.next_action_result_hash,
        },
        "CurrentTransaction": _transaction(payment.transaction),
        "RequestedFunds": _funds(payment.requested_funds),
        "WithdrawnForSeller": _funds(payment.withdrawn_for_seller),
        "WithdrawnForBuyer": _funds(payment.withdrawn_for_buyer),
        "PaymentSource": {
            "id": seller.source_id,
            "network": payment.network,
            "paymentSourceType": "Web3CardanoV1",
            "smartContractAddress": seller.smart_contract_address,
            "policyId": seller.policy_id,
        },
        "BuyerWallet": None
        if payment.buyer_vkey is None
        else {"id": "sandbox-buyer-wallet", "walletVkey": payment.buyer_vkey},
        "SmartContractWallet": None
        if seller.wallet_vkey is None
        else {
            "id": seller.wallet_id,
            "walletVkey": seller.wallet_vkey,
            "walletAddress": seller.wallet_address,
        },
        "metadata": payment.metadata,
    }
    if with_history:
        body["ActionHistory"] = None
        body["TransactionHistory"] = None
    return body
