"""The one vocabulary of payment facts, as the Masumi payment service (0.28.0) states them.

Every part of the service reads payments through these names: the gateway parses the
service's answers into PaymentState, the lifecycle decides on it, the sandbox speaks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from agentjobs.server.domain.job import Amount


class OnChainState:
    """onChainState values (None = the buyer has not locked funds)."""

    FUNDS_LOCKED = "FundsLocked"
    FUNDS_OR_DATUM_INVALID = "FundsOrDatumInvalid"
    RESULT_SUBMITTED = "ResultSubmitted"
    REFUND_REQUESTED = "RefundRequested"
    DISPUTED = "Disputed"
    # V2 only: the buyer authorized our withdrawal / we authorized the buyer's refund.
    WITHDRAW_AUTHORIZED = "WithdrawAuthorized"
    REFUND_AUTHORIZED = "RefundAuthorized"
    WITHDRAWN = "Withdrawn"
    REFUND_WITHDRAWN = "RefundWithdrawn"
    DISPUTED_WITHDRAWN = "DisputedWithdrawn"


class NextAction:
    """NextAction.requestedAction values of a payment (the seller's side)."""

    NONE = "None"
    IGNORE = "Ignore"
    WAITING_FOR_MANUAL_ACTION = "WaitingForManualAction"
    WAITING_FOR_EXTERNAL_ACTION = "WaitingForExternalAction"
    SUBMIT_RESULT_REQUESTED = "SubmitResultRequested"
    SUBMIT_RESULT_INITIATED = "SubmitResultInitiated"
    WITHDRAW_REQUESTED = "WithdrawRequested"
    WITHDRAW_INITIATED = "WithdrawInitiated"
    AUTHORIZE_REFUND_REQUESTED = "AuthorizeRefundRequested"
    AUTHORIZE_REFUND_INITIATED = "AuthorizeRefundInitiated"


# Money that moved for good: nothing more happens to such a payment.
SETTLED_STATES = frozenset(
    {
        OnChainState.WITHDRAWN,
        OnChainState.REFUND_WITHDRAWN,
        OnChainState.DISPUTED_WITHDRAWN,
        OnChainState.FUNDS_OR_DATUM_INVALID,
    }
)
# The buyer's money sits in the contract.
ESCROWED_STATES = frozenset(
    {
        OnChainState.FUNDS_LOCKED,
        OnChainState.RESULT_SUBMITTED,
        OnChainState.REFUND_REQUESTED,
        OnChainState.DISPUTED,
        OnChainState.WITHDRAW_AUTHORIZED,
        OnChainState.REFUND_AUTHORIZED,
    }
)
# A seller request the chain job is working on.
IN_PROGRESS_ACTIONS = frozenset(
    {
        NextAction.SUBMIT_RESULT_REQUESTED,
        NextAction.SUBMIT_RESULT_INITIATED,
        NextAction.AUTHORIZE_REFUND_REQUESTED,
        NextAction.AUTHORIZE_REFUND_INITIATED,
        NextAction.WITHDRAW_REQUESTED,
        NextAction.WITHDRAW_INITIATED,
    }
)


class PaymentSourceType(StrEnum):
    """Which smart contract holds the money. V1 is what the masumi SDK sends."""

    V1 = "Web3CardanoV1"
    V2 = "Web3CardanoV2"


class Pricing(StrEnum):
    FIXED = "fixed"  # the price registered for the agent (RequestedFunds not sent)
    DYNAMIC = "dynamic"  # the agent prices each job from its input (RequestedFunds sent)
    FREE = "free"  # no payment request at all


@dataclass(frozen=True)
class PaymentState:
    """What the payment service says about one payment now."""

    blockchain_identifier: str
    on_chain_state: str | None
    requested_action: str
    # NextAction.resultHash: the hash a submit-result asked for (None if none asked).
    next_action_result_hash: str | None = None
    # resultHash: the hash recorded on chain for the payment ("" or None: none).
    result_hash: str | None = None
    error_type: str | None = None
    error_note: str | None = None
    # nextActionOrOnChainStateOrResultLastChangedAt: what the diff endpoint sorts on.
    changed_at: datetime | None = None
    # The payment service's own row id: the diff endpoint's cursorId.
    payment_id: str | None = None
    # updatedAt: the optimistic lock error-state-recovery asks for.
    updated_at: datetime | None = None
    input_hash: str | None = None
    metadata: str | None = None
    source_type: PaymentSourceType | None = None
    # The payment request's terms (present in diff and resolve answers), so that a
    # payment found in the diff can be attached to the job that asked for it.
    terms: PaymentTermsSeen | None = None

    @property
    def needs_manual_action(self) -> bool:
        return self.requested_action == NextAction.WAITING_FOR_MANUAL_ACTION

    @property
    def describe(self) -> str:
        """One line for events and logs: the state, the action, any error."""
        text = f"{self.on_chain_state or 'unpaid'} / {self.requested_action}"
        if self.error_type or self.error_note:
            text += f": {self.error_type or 'error'}: {self.error_note or ''}".rstrip(": ")
        return text


@dataclass(frozen=True)
class PaymentTermsSeen:
    """The times and funds of a payment as a list or diff answer shows them."""

    seller_vkey: str | None
    agent_identifier: str | None
    pay_by_time: int
    submit_result_time: int
    unlock_time: int
    external_dispute_unlock_time: int
    amounts: tuple[Amount, ...] = ()
