"""The simulated Cardano chain and buyer: what happens to a payment after the seller's
payment service has asked for something, `settle_after` seconds later.

Paths modelled (onChainState / NextAction.requestedAction):
- buyer locks:       null -> FundsLocked (or FundsOrDatumInvalid when told so)
- seller submits:    NextAction SubmitResultRequested -> ResultSubmitted -> Withdrawn;
                     from RefundRequested the result makes it Disputed
- buyer wants money: FundsLocked -> RefundRequested; ResultSubmitted -> Disputed
- seller refunds:    NextAction AuthorizeRefundRequested -> RefundWithdrawn
The chain job ignores a submit-result made less than 5 minutes before
submitResultTime: the request is accepted, nothing happens on chain.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import secrets

from agentjobs.server.payments.gateway import NextAction, OnChainState
from agentjobs.server.payments.sandbox.clock import Clock
from agentjobs.server.payments.sandbox.ledger import ChainTransaction, Ledger, LedgerPayment, new_id
from agentjobs.server.payments.sandbox.scheduler import Scheduler

log = logging.getLogger(__name__)

SUBMIT_CUTOFF_MS = 5 * 60 * 1000
SUBMITTABLE_STATES = frozenset(
    {OnChainState.FUNDS_LOCKED, OnChainState.REFUND_REQUESTED, OnChainState.DISPUTED}
)
REFUNDABLE_STATES = frozenset({OnChainState.REFUND_REQUESTED, OnChainState.DISPUTED})
# Where a result lands, by the state the chain finds the payment in.
_RESULT_LANDS = {
    OnChainState.FUNDS_LOCKED: OnChainState.RESULT_SUBMITTED,
    OnChainState.REFUND_REQUESTED: OnChainState.DISPUTED,
    OnChainState.DISPUTED: OnChainState.DISPUTED,
}
_BUYER_WANTS_MONEY = {
    OnChainState.FUNDS_LOCKED: OnChainState.REFUND_REQUESTED,
    OnChainState.RESULT_SUBMITTED: OnChainState.DISPUTED,
}
BUYER_VKEY = hashlib.sha256(b"agentjobs sandbox buyer").hexdigest()[:56]


class SandboxConflictError(Exception):
    """The payment is not in a state for this (the API answers 409)."""


class UnknownPaymentError(LookupError):
    def __init__(self, blockchain_identifier: str) -> None:
        super().__init__(f"no payment {blockchain_identifier!r} in the sandbox")
        self.blockchain_identifier = blockchain_identifier


def describe(payment: LedgerPayment) -> str:
    return f"onChainState={payment.on_chain_state}, requestedAction={payment.requested_action}"


class Chain:
    def __init__(
        self,
        ledger: Ledger,
        scheduler: Scheduler,
        clock: Clock,
        *,
        lock_after: float | None,
        settle_after: float,
    ) -> None:
        self._ledger = ledger
        self._scheduler = scheduler
        self._clock = clock
        self.lock_after = lock_after
        self.settle_after = settle_after
        self._blocks = itertools.count(2_000_000)

    def require(self, blockchain_identifier: str) -> LedgerPayment:
        payment = self._ledger.get(blockchain_identifier)
        if payment is None:
            raise UnknownPaymentError(blockchain_identifier)
        return payment

    # -- the buyer -----------------------------------------------------------
    def payment_created(self, payment: LedgerPayment) -> None:
        if self.lock_after is not None:
            bid = payment.blockchain_identifier
            self._scheduler.after(
                self.lock_after, f"buyer locks {bid}", lambda: self._auto_lock(bid)
            )

    def _auto_lock(self, blockchain_identifier: str) -> None:
        payment = self._ledger.get(blockchain_identifier)
        if payment is None or payment.on_chain_state is not None:
            return
        if self._clock.now_ms() > payment.pay_by_time:
            log.info("sandbox buyer did not pay %s before payByTime", blockchain_identifier)
            return
        self._lock(payment, OnChainState.FUNDS_LOCKED)

    def lock_funds(self, blockchain_identifier: str) -> LedgerPayment:
        payment = self._unpaid(blockchain_identifier, "lock funds")
        self._lock(payment, OnChainState.FUNDS_LOCKED)
        return payment

    def mark_funds_invalid(self, blockchain_identifier: str) -> LedgerPayment:
        payment = self._unpaid(blockchain_identifier, "lock invalid funds")
        self._lock(payment, OnChainState.FUNDS_OR_DATUM_INVALID)
        return payment

    def request_refund(self, blockchain_identifier: str) -> LedgerPayment:
        payment = self.require(blockchain_identifier)
        target = _BUYER_WANTS_MONEY.get(payment.on_chain_state or "")
        if target is None:
            raise SandboxConflictError(
                f"the buyer cannot ask for a refund now ({describe(payment)})"
            )
        with self._ledger.changing(payment):
            payment.transaction = self._transaction(payment, target)
            payment.on_chain_state = target
        return payment

    def _unpaid(self, blockchain_identifier: str, what: str) -> LedgerPayment:
        payment = self.require(blockchain_identifier)
        if payment.on_chain_state is not None:
            raise SandboxConflictError(f"cannot {what}: already {payment.on_chain_state}")
        if self._clock.now_ms() > payment.pay_by_time:
            raise SandboxConflictError(f"cannot {what}: payByTime has passed")
        return payment

    def _lock(self, payment: LedgerPayment, state: str) -> None:
        with self._ledger.changing(payment):
            payment.transaction = self._transaction(payment, state)
            payment.on_chain_state = state
            payment.buyer_vkey = BUYER_VKEY
            payment.last_checked_at = self._clock.now_ms()

    # -- the seller's requests -----------------------------------------------
    def submit_result(self, payment: LedgerPayment, result_hash: str) -> None:
        if (
            payment.requested_action != NextAction.WAITING_FOR_EXTERNAL_ACTION
            or payment.on_chain_state not in SUBMITTABLE_STATES
        ):
            raise SandboxConflictError(
                f"payment does not accept a result now ({describe(payment)}); retry later"
            )
        with self._ledger.changing(payment):
            payment.requested_action = NextAction.SUBMIT_RESULT_REQUESTED
            payment.next_action_result_hash = result_hash
        payment.accepted_submissions += 1
        if self._clock.now_ms() > payment.submit_result_time - SUBMIT_CUTOFF_MS:
            payment.ignored_submissions += 1
            log.info(
                "sandbox chain ignores the result for %s: less than 5 minutes before "
                "submitResultTime",
                payment.blockchain_identifier,
            )
            return
        self._settle_result(payment.blockchain_identifier, result_hash)

    def _settle_result(self, blockchain_identifier: str, result_hash: str) -> None:
        self._scheduler.after(
            self.settle_after,
            f"result lands for {blockchain_identifier}",
            lambda: self._result_lands(blockchain_identifier, result_hash),
        )

    def _result_lands(self, blockchain_identifier: str, result_hash: str) -> None:
        payment = self.require(blockchain_identifier)
        if (
            payment.requested_action != NextAction.SUBMIT_RESULT_REQUESTED
            or payment.next_action_result_hash != result_hash
        ):
            return  # superseded, or parked by an error
        target = _RESULT_LANDS.get(payment.on_chain_state or "")
        if target is None:
            return
        with self._ledger.changing(payment):
            payment.transaction = self._transaction(payment, target)
            payment.on_chain_state = target
            payment.result_hash = result_hash
            payment.requested_action = NextAction.WAITING_FOR_EXTERNAL_ACTION
            payment.next_action_result_hash = None
        if target == OnChainState.RESULT_SUBMITTED:
            self._scheduler.after(
                self.settle_after,
                f"seller withdraws {blockchain_identifier}",
                lambda: self._withdraw(blockchain_identifier),
            )

    def _withdraw(self, blockchain_identifier: str) -> None:
        payment = self.require(blockchain_identifier)
        if payment.on_chain_state != OnChainState.RESULT_SUBMITTED:
            return  # the buyer disputed in time
        with self._ledger.changing(payment):
            payment.transaction = self._transaction(payment, OnChainState.WITHDRAWN)
            payment.on_chain_state = OnChainState.WITHDRAWN
            payment.requested_action = NextAction.NONE
            payment.withdrawn_for_seller = payment.requested_funds

    def authorize_refund(self, payment: LedgerPayment) -> None:
        if (
            payment.requested_action != NextAction.WAITING_FOR_EXTERNAL_ACTION
            or payment.on_chain_state not in REFUNDABLE_STATES
        ):
            raise SandboxConflictError(f"no refund to authorize now ({describe(payment)})")
        with self._ledger.changing(payment):
            payment.requested_action = NextAction.AUTHORIZE_REFUND_REQUESTED
        self._settle_refund(payment.blockchain_identifier)

    def _settle_refund(self, blockchain_identifier: str) -> None:
        self._scheduler.after(
            self.settle_after,
            f"refund lands for {blockchain_identifier}",
            lambda: self._refund_lands(blockchain_identifier),
        )

    def _refund_lands(self, blockchain_identifier: str) -> None:
        payment = self.require(blockchain_identifier)
        if payment.requested_action != NextAction.AUTHORIZE_REFUND_REQUESTED:
            return
        with self._ledger.changing(payment):
            payment.transaction = self._transaction(payment, OnChainState.REFUND_WITHDRAWN)
            payment.on_chain_state = OnChainState.REFUND_WITHDRAWN
            payment.requested_action = NextAction.NONE
            payment.withdrawn_for_buyer = payment.requested_funds

    # -- errors an operator clears -------------------------------------------
    def fail_next_action(
        self, blockchain_identifier: str, note: str, error_type: str = "NetworkError"
    ) -> LedgerPayment:
        """Park the payment in WaitingForManualAction, as a failed chain action would."""
        payment = self.require(blockchain_identifier)
        if payment.requested_action == NextAction.WAITING_FOR_MANUAL_ACTION:
            raise SandboxConflictError("the payment already waits for manual action")
        with self._ledger.changing(payment):
            payment.action_before_error = payment.requested_action
            payment.requested_action = NextAction.WAITING_FOR_MANUAL_ACTION
            payment.error_type = error_type
            payment.error_note = note
        return payment

    def recover_error(self, payment: LedgerPayment, retry_previous_action: bool) -> None:
        if payment.requested_action != NextAction.WAITING_FOR_MANUAL_ACTION:
            raise SandboxConflictError("payment is not in WaitingForManualAction state")
        previous = payment.action_before_error or NextAction.WAITING_FOR_EXTERNAL_ACTION
        with self._ledger.changing(payment):
            payment.requested_action = (
                previous if retry_previous_action else NextAction.WAITING_FOR_EXTERNAL_ACTION
            )
            if payment.requested_action != NextAction.SUBMIT_RESULT_REQUESTED:
                payment.next_action_result_hash = None
            payment.error_type = payment.error_note = payment.action_before_error = None
        if payment.requested_action == NextAction.SUBMIT_RESULT_REQUESTED:
            assert payment.next_action_result_hash is not None
            self._settle_result(payment.blockchain_identifier, payment.next_action_result_hash)
        elif payment.requested_action == NextAction.AUTHORIZE_REFUND_REQUESTED:
            self._settle_refund(payment.blockchain_identifier)

    def _transaction(self, payment: LedgerPayment, new_state: str) -> ChainTransaction:
        return ChainTransaction(
            id=new_id(),
            created_at=self._clock.now_ms(),
            tx_hash=secrets.token_hex(32),
            previous_state=payment.on_chain_state,
            new_state=new_state,
            block_height=next(self._blocks),
        )
