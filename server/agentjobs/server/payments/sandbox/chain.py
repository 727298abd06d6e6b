"""The simulated chain and the payment service's own chain jobs: what happens to a payment
after the seller's API call, on upstream's schedule (tag 0.28.0):

- submit-result job (packages/payment-source-v1|v2/src/services/payments/submit-result/
  service.ts), every CHECK_SUBMIT_RESULT_INTERVAL (15 s): picks SubmitResultRequested
  only while submitResultTime is more than 5 minutes away *at pickup* (V2 also later
  while a result is on chain and externalDisputeUnlockTime is more than 5 minutes
  away); a request it never picks stays SubmitResultRequested.
- authorize-refund job (every 15 s): V1 executes only from Disputed (datum back to
  RefundRequested, result hash emptied); V2 from Disputed or RefundRequested
  (RefundAuthorized). An AuthorizeRefundRequested it cannot execute stays as it is.
- automatic decisions (every AUTO_DECISION_INTERVAL, 30 s) and collection (15 s): a
  ResultSubmitted payment is withdrawn once unlockTime + 10 minutes have passed (V2:
  WithdrawAuthorized at once).
- every seller job skips a payment until sellerCoolDownTime < now - cooldownTime
  (lock-and-query-payments); a seller transaction sets sellerCoolDownTime to
  build time + cooldownTime + 10 minutes (newCooldownTime).
- the buyer's service withdraws a refund (AUTO_WITHDRAW_REFUNDS) once submitResultTime
  + 10 minutes have passed and no result is on chain (V2: RefundAuthorized at once).

A job's transaction shows NextAction *Initiated at once and its on-chain effect
`confirm_after_s` later; then the transition table (transitions.py) decides the new
NextAction, exactly as upstream's tx-sync does for every transaction it sees.

Every change is a simulated writing transaction: it takes its change stamp when it
starts and becomes visible `commit_lag_s` later (see ledger.py).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from agentjobs.server.payments.gateway import NextAction as A
from agentjobs.server.payments.gateway import OnChainState as S
from agentjobs.server.payments.sandbox.clock import Clock
from agentjobs.server.payments.sandbox.errors import SandboxConflictError, UnknownPaymentError
from agentjobs.server.payments.sandbox.ledger import (
    V2,
    ChainTransaction,
    Funds,
    Ledger,
    LedgerPayment,
    new_id,
)
from agentjobs.server.payments.sandbox.scheduler import Scheduler
from agentjobs.server.payments.sandbox.transitions import after_chain_change, joined_note

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
# submit-result service.ts: "submitResultTime: { gt: Date.now() + 1000 * 60 * 5 }".
SUBMIT_CUTOFF_MS = 5 * MINUTE_MS
# "10 minutes for blockchain time offset" (automatic-decisions, collection, collect-refund).
CHAIN_MARGIN_MS = 10 * MINUTE_MS
# payment-core config.ts DEFAULTS.COOLDOWN_TIME_PREPROD / _MAINNET.
DEFAULT_COOLDOWN_MS = 7 * MINUTE_MS
BUYER_VKEY = hashlib.sha256(b"agentjobs sandbox buyer").hexdigest()[:56]

LATE_LOCK_NOTE = "Block time is after pay by time. This is a timed out purchase."
INVALID_FUNDS_NOTE = "Payment amounts do not match. This likely is a spoofing attempt."
FAILED_ACTION_PREFIX = {
    A.SUBMIT_RESULT_REQUESTED: "Submitting result failed: ",
    A.SUBMIT_RESULT_INITIATED: "Submitting result failed: ",
    A.AUTHORIZE_REFUND_REQUESTED: "Authorizing refund failed: ",
    A.AUTHORIZE_REFUND_INITIATED: "Authorizing refund failed: ",
    A.WITHDRAW_REQUESTED: "Collecting payments failed: ",
    A.WITHDRAW_INITIATED: "Collecting payments failed: ",
}


@dataclass
class ChainTiming:
    """How long the simulated chain takes. Durations the chain itself introduces may be
    scaled down; the windows tied to a payment's own times are upstream's."""

    # Until the simulated buyer locks funds of a new payment (None: only when told).
    lock_after_s: float | None = 2.0
    # From a transaction's submission to tx-sync recording it (blocks + CHECK_TX_INTERVAL).
    confirm_after_s: float = 1.0
    # CHECK_SUBMIT_RESULT_INTERVAL, CHECK_AUTHORIZE_REFUND_INTERVAL, CHECK_COLLECTION_INTERVAL.
    job_interval_s: float = 15.0
    # AUTO_DECISION_INTERVAL.
    decision_interval_s: float = 30.0
    # How long a chain-side writing transaction runs before it commits.
    commit_lag_s: float = 0.0
    # The payment source's cooldownTime.
    cooldown_ms: int = DEFAULT_COOLDOWN_MS
    # The buyer's AUTO_WITHDRAW_REFUNDS, the seller's AUTO_WITHDRAW_PAYMENTS (both
    # default true upstream).
    buyer_auto_refund: bool = True
    seller_auto_withdraw: bool = True


def describe(payment: LedgerPayment) -> str:
    return f"onChainState={payment.on_chain_state}, requestedAction={payment.requested_action}"


class Chain:
    def __init__(
        self, ledger: Ledger, scheduler: Scheduler, time: Clock, timing: ChainTiming
    ) -> None:
        self._ledger = ledger
        self._scheduler = scheduler
        self._time = time
        self.timing = timing
        self._blocks = itertools.count(2_000_000)
        # Accepted submit-results the submit-result job never picked (too late).
        self.ignored_submissions: Counter[str] = Counter()
        # Payments whose simulated buyer pays by itself (persisted with the state).
        self.buyer_pays: set[str] = set()

    def require(self, blockchain_identifier: str) -> LedgerPayment:
        payment = self._ledger.get(blockchain_identifier)
        if payment is None:
            raise UnknownPaymentError(blockchain_identifier)
        return payment

    # -- writing transactions ------------------------------------------------
    def transact(
        self,
        payment: LedgerPayment,
        name: str,
        guard: Callable[[LedgerPayment], bool],
        apply: Callable[[LedgerPayment, int], None],
    ) -> None:
        """A chain-side write: stamped when it begins, visible after the commit lag. If
        the payment changed in between, it commits as a retry (new stamp), and only if
        `guard` still holds."""
        began, version = self._ledger.begin(), payment.version
        bid = payment.blockchain_identifier

        def commit() -> None:
            current = self._ledger.get(bid)
            if current is None or not guard(current):
                return
            stamp = began if current.version == version else self._ledger.begin()
            with self._ledger.changing(current, began=stamp) as at:
                apply(current, at)
            self.plan(current)

        if self.timing.commit_lag_s > 0:
            self._scheduler.after(self.timing.commit_lag_s, f"commit {name} for {bid}", commit)
        else:
            commit()

    def _pending(self, payment: LedgerPayment) -> ChainTransaction:
        now = self._time.now_ms()
        return ChainTransaction(
            id=new_id(),
            created_at=now,
            updated_at=now,
            tx_hash=secrets.token_hex(32),
            status="Pending",
            previous_state=None,
            new_state=None,
            block_height=None,
        )

    def _record(
        self,
        payment: LedgerPayment,
        at: int,
        new_state: str,
        tx: ChainTransaction | None,
        *,
        datum_result_hash: str | None,
    ) -> None:
        """tx-sync sees a transaction: the new state, the transition table's NextAction,
        the transaction confirmed (ours, in place) or added (the buyer's or admins')."""
        block = next(self._blocks)
        previous_state = payment.on_chain_state
        if tx is None:
            tx = ChainTransaction(
                id=new_id(),
                created_at=at,
                updated_at=at,
                tx_hash=secrets.token_hex(32),
                status="Confirmed",
                previous_state=previous_state,
                new_state=new_state,
                block_height=block,
            )
        else:
            tx = tx.confirmed(at, previous_state, new_state, block)
        payment.set_transaction(tx)
        outcome = after_chain_change(payment.requested_action, new_state)
        payment.set_action(
            outcome.action,
            at,
            error_type=outcome.error_type,
            error_note=joined_note(
                payment.action.error_note, payment.requested_action, outcome.error_note
            ),
        )
        payment.on_chain_state = new_state
        # tx-sync: decodedNewContract?.resultHash ?? decodedOldContract.resultHash, so a
        # datum that empties the hash (or no datum at all) leaves the hash as it was.
        if datum_result_hash is not None:
            payment.result_hash = datum_result_hash
        payment.datum_result_hash = datum_result_hash

    # -- what happens next ---------------------------------------------------
    def plan(self, payment: LedgerPayment) -> None:
        """Schedule the chain jobs that will look at this payment in its current state.
        A step finds nothing to do if the payment changed before it runs (a newer plan
        covers that change)."""
        timing = self.timing
        action, state = payment.requested_action, payment.on_chain_state
        healthy = payment.action.error_type is None
        if healthy and action == A.SUBMIT_RESULT_REQUESTED:
            self._at_tick(payment, timing.job_interval_s, "submit-result job", self._pick_submit)
        elif healthy and action == A.AUTHORIZE_REFUND_REQUESTED:
            self._at_tick(payment, timing.job_interval_s, "authorize-refund job", self._pick_refund)
        elif healthy and action == A.WITHDRAW_REQUESTED:
            self._at_tick(payment, timing.job_interval_s, "collection job", self._pick_collection)
        elif healthy and action == A.WAITING_FOR_EXTERNAL_ACTION and timing.seller_auto_withdraw:
            if state == S.RESULT_SUBMITTED:
                self._at_tick(
                    payment,
                    timing.decision_interval_s,
                    "automatic withdraw decision",
                    self._decide_withdraw,
                    not_before=payment.unlock_time + CHAIN_MARGIN_MS,
                )
            elif state == S.WITHDRAW_AUTHORIZED:
                self._at_tick(
                    payment,
                    timing.decision_interval_s,
                    "automatic withdraw decision",
                    self._decide_withdraw,
                )
        if timing.buyer_auto_refund and self._buyer_may_withdraw_refund_later(payment):
            not_before = (
                None
                if state == S.REFUND_AUTHORIZED
                else payment.submit_result_time + CHAIN_MARGIN_MS
            )
            self._at_tick(
                payment,
                timing.decision_interval_s,
                "buyer withdraws refund",
                self._buyer_auto_refund,
                not_before=not_before,
            )

    def resume(self, payment: LedgerPayment) -> None:
        """After a restart: transactions in flight land, jobs look again."""
        if (
            payment.requested_action
            in (
                A.SUBMIT_RESULT_INITIATED,
                A.AUTHORIZE_REFUND_INITIATED,
                A.WITHDRAW_INITIATED,
            )
            and payment.transaction is not None
            and payment.transaction.status == "Pending"
        ):
            self._confirm_later(payment, payment.transaction)
        if (
            payment.on_chain_state is None
            and payment.blockchain_identifier in self.buyer_pays
            and self.timing.lock_after_s is not None
        ):
            self._schedule_auto_lock(payment.blockchain_identifier)
        self.plan(payment)

    def _at_tick(
        self,
        payment: LedgerPayment,
        interval_s: float,
        name: str,
        step: Callable[[LedgerPayment], None],
        not_before: int | None = None,
    ) -> None:
        bid, version = payment.blockchain_identifier, payment.version

        def run() -> None:
            current = self._ledger.get(bid)
            if current is not None and current.version == version:
                step(current)

        self._scheduler.at_next_tick(interval_s, f"{name} for {bid}", run, not_before)

    def _cooling_down(self, payment: LedgerPayment) -> bool:
        # lock-and-query-payments: sellerCoolDownTime < Date.now() - cooldownTime.
        return payment.seller_cooldown_ms >= self._time.now_ms() - self.timing.cooldown_ms

    def _new_seller_cooldown(self, payment: LedgerPayment) -> int:
        # newCooldownTime is computed when the job builds the transaction.
        built = payment.transaction.created_at if payment.transaction else self._time.now_ms()
        return built + self.timing.cooldown_ms + CHAIN_MARGIN_MS

    def _start_seller_tx(
        self,
        payment: LedgerPayment,
        name: str,
        initiated: str,
        on_chain: Callable[[LedgerPayment, str | None], None],
    ) -> None:
        """A seller job builds and submits its transaction: NextAction *Initiated with a
        Pending transaction; `on_chain` runs when it confirms, if the UTxO it spent is
        still the payment's (else the transaction is dead: someone else's came first)."""
        tx = self._pending(payment)
        result_hash = payment.action.result_hash
        spent_state, version = payment.on_chain_state, payment.version

        def apply(current: LedgerPayment, at: int) -> None:
            current.set_action(initiated, at, result_hash=result_hash, submitted_tx_hash=tx.tx_hash)
            current.set_transaction(tx)
            self._confirm_later(current, tx, spent_state, on_chain)

        self.transact(payment, name, lambda current: current.version == version, apply)

    def _confirm_later(
        self,
        payment: LedgerPayment,
        tx: ChainTransaction,
        spent_state: str | None = None,
        on_chain: Callable[[LedgerPayment, str | None], None] | None = None,
    ) -> None:
        bid = payment.blockchain_identifier
        spent = payment.on_chain_state if spent_state is None else spent_state
        land = on_chain or self._landing_for(payment.requested_action)

        def confirm() -> None:
            current = self._ledger.get(bid)
            if current is None:
                return

            def alive(p: LedgerPayment) -> bool:
                return (
                    p.transaction is not None
                    and p.transaction.id == tx.id
                    and (p.on_chain_state == spent)
                )

            if not alive(current):
                log.info(
                    "sandbox chain: the seller's transaction for %s spent a UTxO that is gone", bid
                )
                return
            self.transact(
                current, "seller transaction confirmed", alive, lambda p, at: land(p, spent)
            )

        self._scheduler.after(self.timing.confirm_after_s, f"confirm transaction of {bid}", confirm)

    def _landing_for(self, initiated: str) -> Callable[[LedgerPayment, str | None], None]:
        return {
            A.SUBMIT_RESULT_INITIATED: self._result_lands,
            A.AUTHORIZE_REFUND_INITIATED: self._refund_authorization_lands,
            A.WITHDRAW_INITIATED: self._withdrawal_lands,
        }[initiated]

    # -- submit-result job ---------------------------------------------------
    def _pick_submit(self, payment: LedgerPayment) -> None:
        now = self._time.now_ms()
        state = payment.on_chain_state
        eligible = payment.submit_result_time > now + SUBMIT_CUTOFF_MS and state in (
            S.FUNDS_LOCKED,
            S.RESULT_SUBMITTED,
            S.REFUND_REQUESTED,
            S.DISPUTED,
        )
        if not eligible and payment.source_type == V2:
            # V2 leg B: a result already on chain may be replaced until shortly before
            # externalDisputeUnlockTime.
            eligible = payment.external_dispute_unlock_time > now + SUBMIT_CUTOFF_MS and state in (
                S.RESULT_SUBMITTED,
                S.DISPUTED,
            )
        if not eligible:
            # The job's query never selects it again: the window only closes.
            self.ignored_submissions[payment.blockchain_identifier] += 1
            log.info(
                "sandbox submit-result job skips %s: submitResultTime is less than 5 minutes "
                "away at pickup (%s)",
                payment.blockchain_identifier,
                describe(payment),
            )
            return
        if self._cooling_down(payment):
            self._at_tick(
                payment, self.timing.job_interval_s, "submit-result job", self._pick_submit
            )
            return
        self._start_seller_tx(
            payment, "submit-result job", A.SUBMIT_RESULT_INITIATED, self._result_lands
        )

    def _result_lands(self, payment: LedgerPayment, spent_state: str | None) -> None:
        at = self._time.now_ms()
        result_hash = payment.action.result_hash
        new_state = (
            S.DISPUTED if spent_state in (S.REFUND_REQUESTED, S.DISPUTED) else S.RESULT_SUBMITTED
        )
        self._record(payment, at, new_state, payment.transaction, datum_result_hash=result_hash)
        # The seller's transaction sets its own cooldown and clears the buyer's.
        payment.seller_cooldown_ms = self._new_seller_cooldown(payment)
        payment.buyer_cooldown_ms = 0
        payment.seller_fees_lovelace += 180_000

    # -- authorize-refund job ------------------------------------------------
    def _pick_refund(self, payment: LedgerPayment) -> None:
        executable = (
            (S.DISPUTED, S.REFUND_REQUESTED) if payment.source_type == V2 else (S.DISPUTED,)
        )
        if payment.on_chain_state not in executable:
            # Upstream's job never selects it; it stays AuthorizeRefundRequested until the
            # chain moves (then the transition table decides).
            return
        if self._cooling_down(payment):
            self._at_tick(
                payment, self.timing.job_interval_s, "authorize-refund job", self._pick_refund
            )
            return
        self._start_seller_tx(
            payment,
            "authorize-refund job",
            A.AUTHORIZE_REFUND_INITIATED,
            self._refund_authorization_lands,
        )

    def _refund_authorization_lands(self, payment: LedgerPayment, _spent_state: str | None) -> None:
        at = self._time.now_ms()
        new_state = S.REFUND_AUTHORIZED if payment.source_type == V2 else S.REFUND_REQUESTED
        self._record(payment, at, new_state, payment.transaction, datum_result_hash=None)
        # The seller's transaction sets its own cooldown and clears the buyer's.
        payment.seller_cooldown_ms = self._new_seller_cooldown(payment)
        payment.buyer_cooldown_ms = 0
        payment.seller_fees_lovelace += 180_000

    # -- automatic withdrawal ------------------------------------------------
    def _may_withdraw(self, payment: LedgerPayment) -> bool:
        if payment.on_chain_state == S.RESULT_SUBMITTED:
            return payment.unlock_time <= self._time.now_ms() - CHAIN_MARGIN_MS
        return payment.source_type == V2 and payment.on_chain_state == S.WITHDRAW_AUTHORIZED

    def _decide_withdraw(self, payment: LedgerPayment) -> None:
        if not self._may_withdraw(payment):
            return

        def apply(current: LedgerPayment, at: int) -> None:
            current.set_action(A.WITHDRAW_REQUESTED, at)

        version = payment.version
        self.transact(payment, "automatic withdraw decision", lambda p: p.version == version, apply)

    def _pick_collection(self, payment: LedgerPayment) -> None:
        if not self._may_withdraw(payment):
            return
        if self._cooling_down(payment):
            self._at_tick(
                payment, self.timing.job_interval_s, "collection job", self._pick_collection
            )
            return
        self._start_seller_tx(
            payment, "collection job", A.WITHDRAW_INITIATED, self._withdrawal_lands
        )

    def _withdrawal_lands(self, payment: LedgerPayment, _spent_state: str | None) -> None:
        at = self._time.now_ms()
        self._record(payment, at, S.WITHDRAWN, payment.transaction, datum_result_hash=None)
        payment.withdrawn_for_seller = payment.requested_funds
        payment.seller_fees_lovelace += 180_000

    # -- the buyer -----------------------------------------------------------
    def payment_created(self, payment: LedgerPayment, *, buyer_pays: bool) -> None:
        if buyer_pays:
            self.buyer_pays.add(payment.blockchain_identifier)
            if self.timing.lock_after_s is not None:
                self._schedule_auto_lock(payment.blockchain_identifier)
        self.plan(payment)

    def _schedule_auto_lock(self, bid: str) -> None:
        assert self.timing.lock_after_s is not None
        self._scheduler.after(
            self.timing.lock_after_s, f"buyer locks {bid}", lambda: self._auto_lock(bid)
        )

    def _auto_lock(self, blockchain_identifier: str) -> None:
        payment = self._ledger.get(blockchain_identifier)
        if payment is None or payment.on_chain_state is not None:
            return
        if self._time.now_ms() > payment.pay_by_time:
            log.info("sandbox buyer did not pay %s before payByTime", blockchain_identifier)
            return
        self._lock(payment, S.FUNDS_LOCKED, note=None)

    def lock_funds(self, blockchain_identifier: str) -> LedgerPayment:
        payment = self._unpaid(blockchain_identifier, "lock funds")
        self._lock(payment, S.FUNDS_LOCKED, note=None)
        return payment

    def lock_funds_late(self, blockchain_identifier: str) -> LedgerPayment:
        """The buyer's lock lands in a block after payByTime: upstream's tx-sync books it
        as FundsOrDatumInvalid and asks for a person (tx-sync/tx/index.ts)."""
        payment = self.require(blockchain_identifier)
        if payment.on_chain_state is not None:
            raise SandboxConflictError(f"cannot lock funds: already {payment.on_chain_state}")
        if self._time.now_ms() <= payment.pay_by_time:
            raise SandboxConflictError("cannot lock funds late: payByTime has not passed")
        self._lock(payment, S.FUNDS_OR_DATUM_INVALID, note=LATE_LOCK_NOTE)
        return payment

    def mark_funds_invalid(self, blockchain_identifier: str) -> LedgerPayment:
        payment = self._unpaid(blockchain_identifier, "lock invalid funds")
        self._lock(payment, S.FUNDS_OR_DATUM_INVALID, note=INVALID_FUNDS_NOTE)
        return payment

    def _unpaid(self, blockchain_identifier: str, what: str) -> LedgerPayment:
        payment = self.require(blockchain_identifier)
        if payment.on_chain_state is not None:
            raise SandboxConflictError(f"cannot {what}: already {payment.on_chain_state}")
        if self._time.now_ms() > payment.pay_by_time:
            raise SandboxConflictError(f"cannot {what}: payByTime has passed")
        return payment

    def _lock(self, payment: LedgerPayment, state: str, note: str | None) -> None:
        """The buyer's funding transaction as tx-sync books it (updateInitialPayment-
        Transaction): a spoofing or timing problem gives WaitingForManualAction with the
        note but no errorType."""

        def apply(current: LedgerPayment, at: int) -> None:
            current.set_transaction(
                ChainTransaction(
                    id=new_id(),
                    created_at=at,
                    updated_at=at,
                    tx_hash=secrets.token_hex(32),
                    status="Confirmed",
                    previous_state=None,
                    new_state=state,
                    block_height=next(self._blocks),
                )
            )
            action = A.WAITING_FOR_EXTERNAL_ACTION if note is None else A.WAITING_FOR_MANUAL_ACTION
            current.set_action(action, at, error_note=note)
            current.on_chain_state = state
            current.result_hash = current.datum_result_hash = None
            current.buyer_vkey = BUYER_VKEY
            current.collateral_return_lovelace = 0
            current.buyer_fees_lovelace += 180_000

        self.transact(payment, "buyer locks funds", lambda p: p.on_chain_state is None, apply)

    def _buyer_tx(
        self,
        payment: LedgerPayment,
        name: str,
        new_state: str,
        *,
        datum_result_hash: str | None,
        buyer_cooldown: bool,
        payout: Callable[[LedgerPayment], None] | None = None,
    ) -> None:
        spent = payment.on_chain_state

        def apply(current: LedgerPayment, at: int) -> None:
            self._record(current, at, new_state, None, datum_result_hash=datum_result_hash)
            if buyer_cooldown:
                current.buyer_cooldown_ms = at + self.timing.cooldown_ms + CHAIN_MARGIN_MS
                current.seller_cooldown_ms = 0
            if payout is not None:
                payout(current)
            current.buyer_fees_lovelace += 180_000

        self.transact(payment, name, lambda p: p.on_chain_state == spent, apply)

    def _buyer_cooled_down(self, payment: LedgerPayment, what: str) -> None:
        if payment.buyer_cooldown_ms > self._time.now_ms():
            raise SandboxConflictError(f"the buyer cannot {what} before its cooldown ends")

    def request_refund(self, blockchain_identifier: str) -> LedgerPayment:
        """SetRefundRequested: FundsLocked -> RefundRequested, ResultSubmitted -> Disputed
        (V2 also Disputed -> Disputed); only before unlockTime."""
        payment = self.require(blockchain_identifier)
        allowed = {S.FUNDS_LOCKED: S.REFUND_REQUESTED, S.RESULT_SUBMITTED: S.DISPUTED}
        if payment.source_type == V2:
            allowed[S.DISPUTED] = S.DISPUTED
        target = allowed.get(payment.on_chain_state or "")
        if target is None:
            raise SandboxConflictError(
                f"the buyer cannot ask for a refund now ({describe(payment)})"
            )
        if self._time.now_ms() >= payment.unlock_time:
            raise SandboxConflictError("the buyer cannot ask for a refund after unlockTime")
        self._buyer_cooled_down(payment, "ask for a refund")
        self._buyer_tx(
            payment,
            "buyer requests a refund",
            target,
            datum_result_hash=payment.datum_result_hash,
            buyer_cooldown=True,
        )
        return payment

    def cancel_refund(self, blockchain_identifier: str) -> LedgerPayment:
        """V1 UnSetRefundRequested: RefundRequested -> FundsLocked, Disputed ->
        ResultSubmitted. V2 has no such action."""
        payment = self.require(blockchain_identifier)
        if payment.source_type == V2:
            raise SandboxConflictError("V2 contracts have no UnSetRefundRequested")
        target = {S.REFUND_REQUESTED: S.FUNDS_LOCKED, S.DISPUTED: S.RESULT_SUBMITTED}.get(
            payment.on_chain_state or ""
        )
        if target is None:
            raise SandboxConflictError(f"no refund request to withdraw ({describe(payment)})")
        self._buyer_cooled_down(payment, "cancel its refund request")
        self._buyer_tx(
            payment,
            "buyer cancels its refund request",
            target,
            datum_result_hash=payment.datum_result_hash,
            buyer_cooldown=True,
        )
        return payment

    def _buyer_may_withdraw_refund_later(self, payment: LedgerPayment) -> bool:
        if payment.on_chain_state == S.REFUND_AUTHORIZED:
            return True
        return payment.on_chain_state in (S.FUNDS_LOCKED, S.REFUND_REQUESTED) and not (
            payment.datum_result_hash
        )

    def _buyer_may_withdraw_refund(self, payment: LedgerPayment) -> bool:
        if payment.on_chain_state == S.REFUND_AUTHORIZED:
            return True
        return (
            self._buyer_may_withdraw_refund_later(payment)
            and self._time.now_ms() > payment.submit_result_time
        )

    def withdraw_refund(self, blockchain_identifier: str) -> LedgerPayment:
        """WithdrawRefund: from FundsLocked or RefundRequested after submitResultTime with
        no result on chain (V2 also from RefundAuthorized at any time)."""
        payment = self.require(blockchain_identifier)
        if not self._buyer_may_withdraw_refund(payment):
            raise SandboxConflictError(
                f"the buyer cannot withdraw a refund now ({describe(payment)})"
            )
        self._refund_buyer(payment)
        return payment

    def _refund_buyer(self, payment: LedgerPayment) -> None:
        def payout(current: LedgerPayment) -> None:
            current.withdrawn_for_buyer = current.requested_funds

        self._buyer_tx(
            payment,
            "buyer withdraws the refund",
            S.REFUND_WITHDRAWN,
            datum_result_hash=None,
            buyer_cooldown=False,
            payout=payout,
        )

    def _buyer_auto_refund(self, payment: LedgerPayment) -> None:
        if not self._buyer_may_withdraw_refund(payment):
            return
        if payment.on_chain_state != S.REFUND_AUTHORIZED and (
            self._time.now_ms() < payment.submit_result_time + CHAIN_MARGIN_MS
        ):
            return
        bid, version = payment.blockchain_identifier, payment.version

        def lands() -> None:
            current = self._ledger.get(bid)
            if current is not None and current.version == version:
                self._refund_buyer(current)

        # The buyer's collect-refund job picks it up, then its transaction confirms.
        self._scheduler.after(
            self.timing.job_interval_s + self.timing.confirm_after_s,
            f"buyer's refund of {bid} lands",
            lands,
        )

    def authorize_withdrawal(self, blockchain_identifier: str) -> LedgerPayment:
        """V2 AuthorizeWithdrawal: the buyer settles a dispute for the seller."""
        payment = self.require(blockchain_identifier)
        if payment.source_type != V2 or payment.on_chain_state != S.DISPUTED:
            raise SandboxConflictError(
                f"the buyer cannot authorize a withdrawal now ({describe(payment)})"
            )
        self._buyer_cooled_down(payment, "authorize the withdrawal")
        self._buyer_tx(
            payment,
            "buyer authorizes the withdrawal",
            S.WITHDRAW_AUTHORIZED,
            datum_result_hash=payment.datum_result_hash,
            buyer_cooldown=True,
        )
        return payment

    def resolve_dispute(
        self, blockchain_identifier: str, *, seller: tuple[Funds, ...], buyer: tuple[Funds, ...]
    ) -> LedgerPayment:
        """WithdrawDisputed: the network's admins split a dispute after
        externalDisputeUnlockTime."""
        payment = self.require(blockchain_identifier)
        if payment.on_chain_state != S.DISPUTED:
            raise SandboxConflictError(f"no dispute to resolve ({describe(payment)})")
        if self._time.now_ms() <= payment.external_dispute_unlock_time:
            raise SandboxConflictError(
                "admins resolve disputes only after externalDisputeUnlockTime"
            )

        def payout(current: LedgerPayment) -> None:
            current.withdrawn_for_seller, current.withdrawn_for_buyer = seller, buyer

        spent = payment.on_chain_state

        def apply(current: LedgerPayment, at: int) -> None:
            self._record(current, at, S.DISPUTED_WITHDRAWN, None, datum_result_hash=None)
            payout(current)

        self.transact(
            payment, "admins resolve the dispute", lambda p: p.on_chain_state == spent, apply
        )
        return payment

    # -- errors an operator clears -------------------------------------------
    def fail_next_action(
        self, blockchain_identifier: str, note: str, error_type: str = "Unknown"
    ) -> LedgerPayment:
        """Park the payment in WaitingForManualAction as a failed chain job does
        (writePaymentErrorTransition: errorType Unknown, the requested result hash kept)."""
        payment = self.require(blockchain_identifier)
        if payment.requested_action == A.WAITING_FOR_MANUAL_ACTION:
            raise SandboxConflictError("the payment already waits for manual action")
        prefix = FAILED_ACTION_PREFIX.get(payment.requested_action, "")
        result_hash = payment.action.result_hash
        with self._ledger.changing(payment) as at:
            payment.set_action(
                A.WAITING_FOR_MANUAL_ACTION,
                at,
                result_hash=result_hash,
                error_type=error_type,
                error_note=prefix + note,
            )
        self.plan(payment)
        return payment
