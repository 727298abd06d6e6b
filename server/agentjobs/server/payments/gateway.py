"""The only way the rest of the service reaches the payment service.

Implementations map every failure to a domain error:
- unreachable, timed out, 5xx            -> PaymentServiceUnavailableError (retry later)
- 400                                    -> PaymentServiceRejectedError (with the service's message)
- 401 / 403                              -> PaymentConfigurationError (logged without the key)
- 404 for a payment                      -> PaymentNotFoundError
- 409                                    -> PaymentServiceConflictError (retry)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from agentjobs.server.domain import PaymentTerms
from agentjobs.server.repository.base import Watermark


class OnChainState:
    """The payment service's onChainState values (None = not paid yet)."""

    FUNDS_LOCKED = "FundsLocked"
    FUNDS_OR_DATUM_INVALID = "FundsOrDatumInvalid"
    RESULT_SUBMITTED = "ResultSubmitted"
    REFUND_REQUESTED = "RefundRequested"
    DISPUTED = "Disputed"
    WITHDRAW_AUTHORIZED = "WithdrawAuthorized"
    REFUND_AUTHORIZED = "RefundAuthorized"
    WITHDRAWN = "Withdrawn"
    REFUND_WITHDRAWN = "RefundWithdrawn"
    DISPUTED_WITHDRAWN = "DisputedWithdrawn"


class NextAction:
    """The payment service's NextAction.requestedAction values."""

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


@dataclass(frozen=True)
class PaymentState:
    """What the payment service says about one payment now."""

    blockchain_identifier: str
    on_chain_state: str | None
    requested_action: str
    # NextAction.resultHash: the hash a submit-result asked for (None if none asked).
    next_action_result_hash: str | None = None
    # resultHash: the hash recorded for the payment.
    result_hash: str | None = None
    error_type: str | None = None
    error_note: str | None = None
    # nextActionOrOnChainStateOrResultLastChangedAt: what the diff endpoint sorts on.
    changed_at: datetime | None = None
    # The payment service's own row id: the diff endpoint's cursorId.
    payment_id: str | None = None


@dataclass(frozen=True)
class PaymentChanges:
    """One page of the diff endpoint, de-duplicated against the watermark it started from."""

    payments: list[PaymentState]
    # Where the next call resumes; persist it once `payments` are applied.
    watermark: Watermark | None
    # True when the page was full: call again at once.
    more: bool


class PaymentGateway(Protocol):
    async def create_payment_request(
        self,
        *,
        identifier_from_purchaser: str,
        input_hash: str,
        pay_by_time: datetime | None = None,
        submit_result_time: datetime | None = None,
    ) -> PaymentTerms:
        """POST /payment. Every call creates a new payment: callers make retries idempotent."""
        ...

    async def get_payment(self, blockchain_identifier: str) -> PaymentState:
        """POST /payment/resolve-blockchain-identifier."""
        ...

    async def changes_since(self, watermark: Watermark | None, limit: int = 100) -> PaymentChanges:
        """GET /payment/diff from the watermark (falls back to per-payment lookups of
        `follow` when the service has no diff endpoint: see follow())."""
        ...

    def follow(self, blockchain_identifiers: Sequence[str]) -> None:
        """Tell the gateway which payments are open, for the fallback path of
        changes_since() on services without /payment/diff."""
        ...

    async def submit_result(
        self, blockchain_identifier: str, result: str, identifier_from_purchaser: str
    ) -> PaymentState:
        """POST /payment/submit-result with the MIP-004 output hash of `result`."""
        ...

    async def authorize_refund(self, blockchain_identifier: str) -> PaymentState:
        """POST /payment/authorize-refund."""
        ...

    async def close(self) -> None: ...
