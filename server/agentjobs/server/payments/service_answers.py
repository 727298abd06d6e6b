"""Reading the payment service's answers into domain values. An answer without a field
we rely on is the service's fault, not the caller's: PaymentServiceUnavailableError
with a message naming the field (never a KeyError)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agentjobs.server.domain import Amount, PaymentServiceUnavailableError
from agentjobs.server.domain.payment import PaymentSourceType, PaymentState, PaymentTermsSeen

_DIGITS = re.compile(r"[0-9]+")


class MalformedAnswerError(PaymentServiceUnavailableError):
    def __init__(self, what: str, problem: str) -> None:
        super().__init__(f"the payment service answered {what} with {problem}")


def _object(value: object, what: str, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedAnswerError(what, f"{name} that is not an object")
    return value


def required_text(data: Mapping[str, Any], name: str, what: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedAnswerError(what, f"no valid {name}")
    return value


def _optional_text(data: Mapping[str, Any], name: str, what: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise MalformedAnswerError(what, f"a {name} that is not a string")
    return value


def whole_number(data: Mapping[str, Any], name: str, what: str) -> int:
    """A decimal string (times in epoch ms, amounts in the smallest unit), taken exactly."""
    value = data.get(name)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise MalformedAnswerError(what, f"no valid {name} (a decimal whole number)")


def timestamp(value: object, name: str, what: str) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise MalformedAnswerError(what, f"no valid {name} timestamp")


def _source_type(payment: Mapping[str, Any]) -> PaymentSourceType | None:
    source = payment.get("PaymentSource")
    if not isinstance(source, Mapping):
        return None
    value = source.get("paymentSourceType")
    try:
        return PaymentSourceType(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _terms_seen(payment: Mapping[str, Any], what: str) -> PaymentTermsSeen | None:
    """The payment's terms, when the answer carries all four times (diff and resolve do)."""
    names = ("payByTime", "submitResultTime", "unlockTime", "externalDisputeUnlockTime")
    if any(payment.get(name) is None for name in names):
        return None
    agent = payment.get("agentIdentifier")
    return PaymentTermsSeen(
        seller_vkey=wallet_vkey(payment, what),
        agent_identifier=agent if isinstance(agent, str) and agent else None,
        pay_by_time=whole_number(payment, "payByTime", what),
        submit_result_time=whole_number(payment, "submitResultTime", what),
        unlock_time=whole_number(payment, "unlockTime", what),
        external_dispute_unlock_time=whole_number(payment, "externalDisputeUnlockTime", what),
        amounts=requested_funds(payment, what),
    )


def payment_state(data: object, what: str) -> PaymentState:
    payment = _object(data, what, "a payment")
    next_action = _object(payment.get("NextAction"), what, "a NextAction")
    changed = payment.get("nextActionOrOnChainStateOrResultLastChangedAt")
    updated = payment.get("updatedAt")
    payment_id = payment.get("id")
    return PaymentState(
        blockchain_identifier=required_text(payment, "blockchainIdentifier", what),
        on_chain_state=_optional_text(payment, "onChainState", what),
        requested_action=required_text(next_action, "requestedAction", what),
        next_action_result_hash=_optional_text(next_action, "resultHash", what) or None,
        result_hash=_optional_text(payment, "resultHash", what) or None,
        error_type=_optional_text(next_action, "errorType", what),
        error_note=_optional_text(next_action, "errorNote", what),
        changed_at=None
        if changed is None
        else timestamp(changed, "nextActionOrOnChainStateOrResultLastChangedAt", what),
        payment_id=payment_id if isinstance(payment_id, str) and payment_id else None,
        updated_at=None if updated is None else timestamp(updated, "updatedAt", what),
        input_hash=_optional_text(payment, "inputHash", what),
        metadata=_optional_text(payment, "metadata", what),
        source_type=_source_type(payment),
        terms=_terms_seen(payment, what),
    )


def payment_page(data: object, what: str) -> list[PaymentState]:
    """The Payments of a list or diff answer; each must carry its id and change time."""
    payments = _object(data, what, "data").get("Payments")
    if not isinstance(payments, list):
        raise MalformedAnswerError(what, "no Payments list")
    page = [payment_state(payment, what) for payment in payments]
    for state in page:
        if state.changed_at is None or state.payment_id is None:
            raise MalformedAnswerError(
                what, "a payment without id or nextActionOrOnChainStateOrResultLastChangedAt"
            )
    return page


def requested_funds(data: Mapping[str, Any], what: str) -> tuple[Amount, ...]:
    funds = data.get("RequestedFunds")
    if funds is None:
        return ()
    if not isinstance(funds, list):
        raise MalformedAnswerError(what, "RequestedFunds that is not a list")
    amounts = []
    for item in funds:
        entry = _object(item, what, "a RequestedFunds entry")
        unit = entry.get("unit")
        if not isinstance(unit, str):
            raise MalformedAnswerError(what, "a RequestedFunds entry without unit")
        amounts.append(Amount(amount=whole_number(entry, "amount", what), unit=unit))
    return tuple(amounts)


def wallet_vkey(data: Mapping[str, Any], what: str) -> str | None:
    """data.SmartContractWallet.walletVkey: the seller's vkey (None if not sent)."""
    wallet = data.get("SmartContractWallet")
    if wallet is None:
        return None
    vkey = _object(wallet, what, "a SmartContractWallet").get("walletVkey")
    if vkey is None:
        return None
    if not isinstance(vkey, str) or not vkey:
        raise MalformedAnswerError(what, "a SmartContractWallet.walletVkey that is not a string")
    return vkey
