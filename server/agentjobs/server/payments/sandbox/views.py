"""Payments as the payment service's API shows them: the contract's `Payment` schema
(upstream src/routes/api/payments/schemas.ts paymentResponseSchema), the payment's times
as decimal strings of epoch milliseconds, timestamps as ISO-8601 with milliseconds and Z.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentjobs.server.payments.sandbox.ledger import Action, ChainTransaction, Funds, LedgerPayment
from agentjobs.server.payments.sandbox.registry import SELLER_VKEY, SellerSide

__all__ = ["SELLER_VKEY", "SellerSide", "iso_ms", "payment_json"]


def iso_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _funds(funds: tuple[Funds, ...]) -> list[dict[str, str]]:
    return [{"amount": str(f.amount), "unit": f.unit} for f in funds]


def _ada(lovelace: int) -> float | int:
    return lovelace / 1_000_000 if lovelace else 0


def _transaction(tx: ChainTransaction | None, *, current: bool) -> dict[str, Any] | None:
    if tx is None:
        return None
    body: dict[str, Any] = {
        "id": tx.id,
        "createdAt": iso_ms(tx.created_at),
        "updatedAt": iso_ms(tx.updated_at or tx.created_at),
        "fees": None if tx.status == "Pending" else str(tx.fees_lovelace),
        "blockHeight": tx.block_height,
        "blockTime": None if tx.block_height is None else (tx.updated_at or tx.created_at) // 1000,
        "txHash": tx.tx_hash,
        "status": tx.status,
        "previousOnChainState": tx.previous_state,
        "newOnChainState": tx.new_state,
        "confirmations": None if tx.block_height is None else 1,
    }
    if not current:
        # TransactionHistory entries list txHash and status first; same fields.
        body = {
            key: body[key]
            for key in (
                "id",
                "createdAt",
                "updatedAt",
                "txHash",
                "status",
                "fees",
                "blockHeight",
                "blockTime",
                "previousOnChainState",
                "newOnChainState",
                "confirmations",
            )
        }
    return body


def _action(action: Action) -> dict[str, Any]:
    return {
        "id": action.id,
        "createdAt": iso_ms(action.created_at),
        "updatedAt": iso_ms(action.created_at),
        "submittedTxHash": action.submitted_tx_hash,
        "requestedAction": action.requested_action,
        "errorType": action.error_type,
        "errorNote": action.error_note,
        "resultHash": action.result_hash,
    }


def payment_json(
    payment: LedgerPayment,
    seller: SellerSide,
    *,
    with_history: bool = True,
    include_history: bool = False,
) -> dict[str, Any]:
    """One payment. `with_history` adds ActionHistory / TransactionHistory, which the list,
    diff and resolve answers carry (null unless includeHistory=true) and the create /
    submit-result / authorize-refund / error-state-recovery answers do not."""
    body: dict[str, Any] = {
        "id": payment.id,
        "createdAt": iso_ms(payment.created_at),
        "updatedAt": iso_ms(payment.updated_at),
        "blockchainIdentifier": payment.blockchain_identifier,
        "agentIdentifier": payment.agent_identifier,
        "agentName": seller.agent_name,
        "pricingType": payment.pricing_type,
        # Upstream never sets a payment's lastCheckedAt (only its transactions').
        "lastCheckedAt": None,
        "payByTime": str(payment.pay_by_time),
        "submitResultTime": str(payment.submit_result_time),
        "unlockTime": str(payment.unlock_time),
        "externalDisputeUnlockTime": str(payment.external_dispute_unlock_time),
        "collateralReturnLovelace": None
        if payment.collateral_return_lovelace is None
        else str(payment.collateral_return_lovelace),
        "buyerReturnAddress": None,
        "sellerReturnAddress": payment.seller_return_address,
        "requestedById": payment.requested_by_id,
        "resultHash": payment.result_hash,
        "nextActionLastChangedAt": iso_ms(payment.next_action_changed_at),
        "onChainStateOrResultLastChangedAt": iso_ms(payment.on_chain_changed_at),
        "nextActionOrOnChainStateOrResultLastChangedAt": iso_ms(payment.changed_at),
        "inputHash": payment.input_hash,
        "totalBuyerCardanoFees": _ada(payment.buyer_fees_lovelace),
        "totalSellerCardanoFees": _ada(payment.seller_fees_lovelace),
        "cooldownTime": payment.seller_cooldown_ms,
        "cooldownTimeOtherParty": payment.buyer_cooldown_ms,
        "onChainState": payment.on_chain_state,
        "NextAction": {
            "requestedAction": payment.action.requested_action,
            "errorType": payment.action.error_type,
            "errorNote": payment.action.error_note,
            "resultHash": payment.action.result_hash,
        },
        "CurrentTransaction": _transaction(payment.transaction, current=True),
        "RequestedFunds": _funds(payment.requested_funds),
        "WithdrawnForSeller": _funds(payment.withdrawn_for_seller),
        "WithdrawnForBuyer": _funds(payment.withdrawn_for_buyer),
        "PaymentSource": {
            "id": seller.source_id_of(payment.source_type),
            "network": payment.network,
            "paymentSourceType": payment.source_type,
            "smartContractAddress": seller.address_of(payment.source_type),
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
        # Newest first, as upstream orders them (createdAt desc).
        body["ActionHistory"] = (
            [_action(a) for a in reversed(payment.action_history)] if include_history else None
        )
        body["TransactionHistory"] = (
            [_transaction(t, current=False) for t in reversed(payment.transaction_history)]
            if include_history
            else None
        )
    return body
