"""The payment monitor: one background task per process that follows every payment.

Each round pages through GET /payment/diff from a durable watermark, applies what
changed to our jobs and invoices, decides the buyers' refund requests, then expires
unpaid jobs whose payByTime passed. Applying a change twice is harmless (a state the
invoice already shows is skipped, transitions are compare-and-set on the expected
status), so the watermark is saved only after a page is applied: a crash in between
replays the page instead of losing it. A transition that loses a race with another
writer (the runner, an operator) is decided again on the job as it is now, never
dropped.

Refund policy (the buyer's RefundRequested; the money is in escrow):
- a FAILED job (agent error, deadline, submission impossible, or funds locked after
  we had expired or cancelled it) can no longer earn the money: the refund is
  authorized (authorize-refund) and the invoice ends refunded at RefundWithdrawn;
- a job still AWAITING_PAYMENT (funds locked and a refund asked for between two
  polls) is not started: FAILED (REFUND_REQUESTED), and the refund is authorized;
- a RUNNING or AWAITING_INPUT job keeps working; the request is decided when the job
  ends: authorized if it fails, while a completed job's result turns the payment
  Disputed, which is recorded, logged and left to the operator (as is any dispute);
- RefundWithdrawn (the refund paid out, however it was authorized) stops a job that
  has not finished: FAILED (REFUNDED); the invoice is refunded.
Undecided requests are re-read from the open invoices at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from agentjobs.server.domain import (
    DomainError,
    EventType,
    InvalidStateTransitionError,
    Invoice,
    InvoiceStatus,
    Job,
    JobError,
    JobStatus,
)
from agentjobs.server.payments.gateway import (
    NextAction,
    OnChainState,
    PaymentGateway,
    PaymentState,
)
from agentjobs.server.repository.base import InvoiceChange, StatusChange, Watermark
from agentjobs.server.services.book import JobBook
from agentjobs.server.services.refunds import RefundDesk
from agentjobs.server.services.runner import JobRunner

log = logging.getLogger(__name__)

WATERMARK = "payments"
# How far back the very first poll starts before our oldest open invoice, so clock
# skew between us and the payment service cannot hide a change.
FIRST_POLL_LOOKBACK = timedelta(hours=1)
EXPIRY_BATCH = 500
# Tries to apply one change when other writers keep moving its job.
APPLY_ATTEMPTS = 3

# onChainState -> (invoice status, lifecycle event) for money that settles.
_SETTLED: dict[str, tuple[InvoiceStatus, EventType]] = {
    OnChainState.WITHDRAWN: (InvoiceStatus.WITHDRAWN, EventType.WITHDRAWN),
    OnChainState.REFUND_WITHDRAWN: (InvoiceStatus.REFUNDED, EventType.REFUNDED),
}
# States in which the buyer's money sits in escrow: the invoice is paid.
_ESCROWED = frozenset(
    {
        OnChainState.FUNDS_LOCKED,
        OnChainState.RESULT_SUBMITTED,
        OnChainState.REFUND_REQUESTED,
        OnChainState.DISPUTED,
        OnChainState.WITHDRAW_AUTHORIZED,
        OnChainState.REFUND_AUTHORIZED,
    }
)


def needs_attention(payment: PaymentState) -> bool:
    """A chain action failed and waits for an operator (error-state-recovery)."""
    return bool(
        payment.error_type
        or payment.error_note
        or payment.requested_action == NextAction.WAITING_FOR_MANUAL_ACTION
    )


class PaymentMonitor:
    def __init__(
        self,
        book: JobBook,
        gateway: PaymentGateway,
        runner: JobRunner,
        *,
        interval_s: float,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._book = book
        self._repository = book.repository
        self._gateway = gateway
        self._runner = runner
        self._refunds = RefundDesk(book, gateway)
        self._interval_s = interval_s
        self._clock_ms = clock_ms
        self._stop = asyncio.Event()
        self._poke = asyncio.Event()
        self._rounds_begun = 0
        self._rounds_ended = 0
        self._last_round_ok = False
        self._round_ended = asyncio.Condition()
        self.rounds = 0
        self.requests_last_round = 0
        # Read by run() from the books at start: where a first-ever poll begins.
        self._oldest_open: datetime | None = None
        self._started = False

    @property
    def undecided_refunds(self) -> frozenset[str]:
        return self._refunds.undecided

    async def run(self) -> None:
        """Poll until stop(); a failed round is logged and retried next interval."""
        open_invoices = await self._repository.list_open_invoices()
        self._gateway.follow([i.blockchain_identifier for i in open_invoices])
        for invoice in open_invoices:
            if invoice.on_chain_state == OnChainState.REFUND_REQUESTED:
                self._refunds.requested(invoice.blockchain_identifier)
        self._oldest_open = min((i.created_at for i in open_invoices), default=None)
        self._started = True
        del open_invoices  # with 100k open invoices, holding them costs hundreds of MiB
        while not self._stop.is_set():
            began = time.monotonic()
            self._rounds_begun += 1
            ok = False
            try:
                await self.poll_once()
                ok = True
            except DomainError as exc:
                log.warning("payment monitor round failed: %s (%s)", exc.message, exc.reason)
            except Exception:
                log.exception("payment monitor round failed")
            async with self._round_ended:
                self._rounds_ended, self._last_round_ok = self._rounds_begun, ok
                self._round_ended.notify_all()
            # A fixed period, not a fixed pause: a slow round must not stretch the time
            # from FundsLocked to RUNNING by its own length.
            pause = max(0.0, self._interval_s - (time.monotonic() - began))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), pause)
            self._poke.clear()

    def poke(self) -> None:
        """Poll now instead of at the next interval (tests, operator tools)."""
        self._poke.set()

    async def poll_round(self) -> bool:
        """Poll now and wait until a round that began after this call has ended; True if
        it succeeded. Only while run() runs (bound the wait with asyncio.timeout)."""
        wanted = self._rounds_begun + 1
        self.poke()
        async with self._round_ended:
            await self._round_ended.wait_for(lambda: self._rounds_ended >= wanted)
            return self._last_round_ok

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()

    async def poll_once(self) -> int:
        """One round; returns how many changed payments of ours were applied."""
        watermark = await self._repository.get_watermark(WATERMARK) or await self._first_watermark()
        applied = requests = 0
        while True:
            changes = await self._gateway.changes_since(watermark)
            requests += 1
            ours = await self._repository.get_by_blockchain_identifiers(
                [p.blockchain_identifier for p in changes.payments]
            )
            for payment in changes.payments:
                job = ours.get(payment.blockchain_identifier)
                if job is not None:
                    await self._apply_safely(job, payment)
                    applied += 1
            if changes.watermark is not None and changes.watermark != watermark:
                watermark = changes.watermark
                await self._repository.set_watermark(WATERMARK, watermark)
            if not changes.more:
                break
        self.requests_last_round = requests
        await self._refunds.decide()
        await self._expire_unpaid()
        self.rounds += 1
        return applied

    async def _first_watermark(self) -> Watermark:
        oldest = self._oldest_open
        if oldest is None and not self._started:
            # poll_once() without run() (tests, tools): nobody has read the books yet.
            open_invoices = await self._repository.list_open_invoices()
            oldest = min((i.created_at for i in open_invoices), default=None)
        return Watermark(last_update=(oldest or datetime.now(UTC)) - FIRST_POLL_LOOKBACK)

    async def _apply_safely(self, job: Job, payment: PaymentState) -> None:
        for _ in range(APPLY_ATTEMPTS):
            try:
                await self.apply(job, payment)
                return
            except InvalidStateTransitionError as exc:
                # Another writer moved the job between our read and our write: decide
                # again on the job as it is now.
                log.debug("payment %s: %s; applying again", payment.blockchain_identifier, exc)
                job = await self._repository.get(job.job_id)
        log.error(
            "payment %s (%s) could not be applied to job %s, which kept changing",
            payment.blockchain_identifier,
            payment.on_chain_state,
            job.job_id,
        )

    async def apply(self, job: Job, payment: PaymentState) -> None:
        state = payment.on_chain_state
        if state is None and not needs_attention(payment):
            return  # still unpaid: nothing to read (the first round may bring thousands)
        invoice = await self._repository.get_invoice(payment.blockchain_identifier)
        if state is None or state == invoice.on_chain_state:
            if needs_attention(payment):
                await self._note_attention(job, payment)
            return
        if state == OnChainState.FUNDS_LOCKED:
            await self._funds_locked(job, invoice, payment)
        elif state == OnChainState.FUNDS_OR_DATUM_INVALID and not job.is_terminal:
            await self._fail(
                job,
                "FUNDS_OR_DATUM_INVALID",
                "the buyer's funds or datum were invalid; the job was not run",
                InvoiceChange(status=InvoiceStatus.INVALID, on_chain_state=state),
            )
        elif state == OnChainState.REFUND_REQUESTED:
            await self._refund_requested(job, invoice, payment)
        elif state in _SETTLED:
            await self._settled(job, state)
        else:
            if state == OnChainState.DISPUTED:
                log.warning(
                    "payment %s of job %s is disputed: the buyer wants a refund of a "
                    "result we submitted; an operator must settle it",
                    payment.blockchain_identifier,
                    job.job_id,
                )
            await self._note(job, invoice, payment)

    async def _funds_locked(self, job: Job, invoice: Invoice, payment: PaymentState) -> None:
        if job.status is JobStatus.AWAITING_PAYMENT:
            await self._book.update_status(
                job.job_id,
                StatusChange(
                    to=JobStatus.RUNNING,
                    expected=JobStatus.AWAITING_PAYMENT,
                    event=EventType.FUNDS_LOCKED,
                    invoice=InvoiceChange(
                        status=InvoiceStatus.PAID, on_chain_state=payment.on_chain_state
                    ),
                ),
            )
            self._runner.enqueue(job.job_id)
            return
        if job.is_terminal:
            # Locked on chain in time (the chain enforces payByTime) but seen after we
            # had expired or cancelled the job. We cannot run it any more; the buyer
            # gets the money back with a refund request (authorized by policy) or
            # after unlockTime.
            log.warning(
                "payment %s: the buyer locked funds for job %s, which is already %s; "
                "their refund request will be authorized",
                payment.blockchain_identifier,
                job.job_id,
                job.status.value,
            )
        await self._note(job, invoice, payment)

    async def _refund_requested(self, job: Job, invoice: Invoice, payment: PaymentState) -> None:
        if job.status is JobStatus.AWAITING_PAYMENT:
            await self._fail(
                job,
                "REFUND_REQUESTED",
                "the buyer asked for a refund before the job started",
                InvoiceChange(status=InvoiceStatus.PAID, on_chain_state=payment.on_chain_state),
            )
        else:
            await self._note(job, invoice, payment)
        self._refunds.requested(payment.blockchain_identifier)

    async def _settled(self, job: Job, state: str) -> None:
        invoice_status, event = _SETTLED[state]
        change = InvoiceChange(status=invoice_status, on_chain_state=state)
        if invoice_status is InvoiceStatus.REFUNDED and not job.is_terminal:
            self._runner.cancel(job.job_id)
            await self._fail(job, "REFUNDED", "the buyer was refunded", change)
            return
        await self._book.record_event(job.job_id, event, detail=state, invoice=change)

    async def _note(self, job: Job, invoice: Invoice, payment: PaymentState) -> None:
        """A state worth recording that settles no money: ResultSubmitted, disputes,
        refund requests, errors waiting for an operator."""
        detail = self._describe(payment)
        self._warn_if_stuck(payment, detail)
        state = payment.on_chain_state
        # Money in escrow is paid, even on an invoice we had given up on.
        paid = (
            InvoiceStatus.PAID
            if state in _ESCROWED
            and invoice.status in (InvoiceStatus.PENDING, InvoiceStatus.EXPIRED)
            else None
        )
        await self._book.record_event(
            job.job_id,
            EventType.PAYMENT_STATE_CHANGED,
            detail=detail,
            data={"requested_action": payment.requested_action},
            invoice=InvoiceChange(status=paid, on_chain_state=state) if state else None,
        )

    async def _note_attention(self, job: Job, payment: PaymentState) -> None:
        """An error on a payment whose onChainState we know already: recorded once (a
        replayed page brings the same error again)."""
        detail = self._describe(payment)
        for event in reversed(await self._repository.events(job.job_id)):
            if event.type is EventType.PAYMENT_STATE_CHANGED:
                if event.detail == detail:
                    return
                break
        self._warn_if_stuck(payment, detail)
        await self._book.record_event(
            job.job_id,
            EventType.PAYMENT_STATE_CHANGED,
            detail=detail,
            data={"requested_action": payment.requested_action},
        )

    @staticmethod
    def _describe(payment: PaymentState) -> str:
        detail = payment.on_chain_state or payment.requested_action
        if needs_attention(payment):
            detail = (
                f"{detail}: {payment.requested_action}: {payment.error_type}: {payment.error_note}"
            )
        return detail

    @staticmethod
    def _warn_if_stuck(payment: PaymentState, detail: str) -> None:
        if needs_attention(payment):
            log.warning("payment %s needs attention: %s", payment.blockchain_identifier, detail)

    async def _fail(self, job: Job, reason: str, message: str, invoice: InvoiceChange) -> None:
        await self._book.update_status(
            job.job_id,
            StatusChange(
                to=JobStatus.FAILED,
                expected=job.status,
                event=EventType.FAILED,
                detail=message,
                error=JobError(reason=reason, message=message),
                invoice=invoice,
            ),
        )

    async def _expire_unpaid(self) -> None:
        """Nothing on the payment service expires an unpaid request: we do. Each job
        is checked once more with the service first, so a payment locked at the last
        moment (and not yet in the diff) is run, not expired. The transition is a
        compare-and-set from AWAITING_PAYMENT: a job expires once, whatever the rounds
        and restarts."""
        now_ms = self._clock_ms()
        for job in await self._repository.list_unpaid_expired(now_ms, EXPIRY_BATCH):
            try:
                payment = await self._gateway.get_payment(job.blockchain_identifier)
            except DomainError as exc:
                log.warning(
                    "cannot check payment %s before expiring it: %s",
                    job.blockchain_identifier,
                    exc.reason,
                )
                continue
            if payment.on_chain_state is not None:
                await self._apply_safely(job, payment)
                continue
            try:
                await self._book.update_status(
                    job.job_id,
                    StatusChange(
                        to=JobStatus.FAILED,
                        expected=JobStatus.AWAITING_PAYMENT,
                        event=EventType.PAYMENT_EXPIRED,
                        detail="not paid before payByTime",
                        error=JobError(
                            reason="PAYMENT_EXPIRED",
                            message="the buyer did not lock funds before payByTime",
                        ),
                        invoice=InvoiceChange(status=InvoiceStatus.EXPIRED),
                    ),
                )
            except InvalidStateTransitionError:
                continue  # moved meanwhile (paid, cancelled): not ours to expire
