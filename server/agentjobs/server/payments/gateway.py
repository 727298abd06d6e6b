"""The only way the rest of the service reaches the payment service.

Implementations map every failure to a domain error:
- unreachable, timed out, 5xx            -> PaymentServiceUnavailableError (retry later)
- 400                                    -> PaymentServiceRejectedError (with the service's message)
- 401, and 403 on our own requests       -> PaymentConfigurationError (logged without the key)
- 403 on a payment's seller actions      -> PaymentKeyMismatchError (created with another key)
- 404                                    -> PaymentNotFoundError ("not found or in invalid state")
- 404 on GET /payment/diff               -> PaymentConfigurationError (no diff endpoint: a
                                            service older than 0.28.0, or a wrong URL)
- 409                                    -> PaymentServiceConflictError (retry)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from agentjobs.server.domain import Amount, PaymentTerms
from agentjobs.server.domain.payment import (
    NextAction,
    OnChainState,
    PaymentSourceType,
    PaymentState,
)
from agentjobs.server.repository.base import Watermark

__all__ = [
    "NextAction",
    "OnChainState",
    "PaymentChanges",
    "PaymentGateway",
    "PaymentRequest",
    "PaymentSourceType",
    "PaymentState",
]


@dataclass(frozen=True)
class PaymentRequest:
    """What POST /payment asks for."""

    identifier_from_purchaser: str
    input_hash: str
    pay_by_time: datetime
    submit_result_time: datetime
    # Private to the seller: we keep the job id here, to find the intent again.
    metadata: str | None = None
    # None: V1 (Web3CardanoV1); set: V2 with this supported_payment_sources index.
    source_index: int | None = None
    # Dynamic pricing only; None for fixed pricing (the service forbids it then).
    requested_funds: tuple[Amount, ...] | None = None


@dataclass(frozen=True)
class PaymentChanges:
    """One page of the diff endpoint, ascending by change stamp."""

    payments: list[PaymentState]
    # Where the next call resumes (the last row of the page); None for an empty page.
    watermark: Watermark | None
    # True when the page was full: call again at once.
    more: bool


class PaymentGateway(Protocol):
    async def create_payment_request(self, request: PaymentRequest) -> PaymentTerms:
        """POST /payment. Every call creates a new payment: callers make retries idempotent."""
        ...

    async def get_payment(self, blockchain_identifier: str) -> PaymentState:
        """POST /payment/resolve-blockchain-identifier."""
        ...

    async def changes_since(
        self,
        watermark: Watermark | None,
        *,
        source_type: PaymentSourceType = PaymentSourceType.V1,
        limit: int = 100,
    ) -> PaymentChanges:
        """GET /payment/diff from the watermark (inclusive: the row at the cursor comes
        again), for one payment source type."""
        ...

    async def submit_result(self, blockchain_identifier: str, result_hash: str) -> PaymentState:
        """POST /payment/submit-result."""
        ...

    async def authorize_refund(self, blockchain_identifier: str) -> PaymentState:
        """POST /payment/authorize-refund."""
        ...

    async def recover_error_state(
        self, blockchain_identifier: str, updated_at: datetime
    ) -> PaymentState:
        """POST /payment/error-state-recovery (retryPreviousAction: true)."""
        ...

    def terms_of(self, payment: PaymentState, source_index: int | None) -> PaymentTerms | None:
        """The terms of a payment found in a diff or resolve answer (None if incomplete)."""
        ...

    async def close(self) -> None: ...
