"""The payment monitor: one background task per process that follows every payment.

Each round pages through GET /payment/diff from a durable watermark, applies what
changed to our jobs and invoices, then expires unpaid jobs whose payByTime passed.
Applying a change twice is harmless (transitions are compare-and-set on the expected
status), so the watermark is saved only after a page is applied: a crash in between
replays the page instead of losing it.
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
from agentjobs.server.payments.gateway import OnChainState, PaymentGateway, PaymentState
from agentjobs.server.repository.base import InvoiceChange, StatusChange, Watermark
from agentjobs.server.services.book import JobBook
from agentjobs.server.services.runner import JobRunner

log = logging.getLogger(__name__)

WATERMARK = "payments"
# How far back the very first poll starts before our oldest open invoice, so clock
# skew between us and the payment service cannot hide a change.
FIRST_POLL_LOOKBACK = timedelta(hours=1)
EXPIRY_BATCH = 500

# onChainState -> (invoice status, lifecycle event) for money that settles.
_SETTLED: dict[str, tuple[InvoiceStatus, EventType]] = {
    OnChainState.WITHDRAWN: (InvoiceStatus.WITHDRAWN, EventType.WITHDRAWN),
    OnChainState.REFUND_WITHDRAWN: (InvoiceStatus.REFUNDED, EventType.REFUNDED),
}


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
        self._interval_s = interval_s
        self._clock_ms = clock_ms
        self._stop = asyncio.Event()
        self._poke = asyncio.Event()
        self.rounds = 0
        self.requests_last_round = 0

    async def run(self) -> None:
        """Poll until stop(); a failed round is logged and retried next interval."""
        open_invoices = await self._repository.list_open_invoices()
        self._gateway.follow([i.blockchain_identifier for i in open_invoices])
        while not self._stop.is_set():
            try:
                await self.poll_once()
            except DomainError as exc:
                log.warning("payment monitor round failed: %s (%s)", exc.message, exc.reason)
            except Exception:
                log.exception("payment monitor round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self._interval_s)
            self._poke.clear()

    def poke(self) -> None:
        """Poll now instead of at the next interval (tests, operator tools)."""
        self._poke.set()

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
        await self._expire_unpaid()
        self.rounds += 1
        return applied

    async def _first_watermark(self) -> Watermark:
        open_invoices = await self._repository.list_open_invoices(limit=1_000_000)
        oldest = min((i.created_at for i in open_invoices), default=datetime.now(UTC))
        return Watermark(last_update=oldest - FIRST_POLL_LOOKBACK)

    async def _apply_safely(self, job: Job, payment: PaymentState) -> None:
        try:
            await self.apply(job, payment)
        except InvalidStateTransitionError as exc:
            # Another writer (runner, operator) moved the job first: nothing to do.
            log.debug("payment %s: %s", payment.blockchain_identifier, exc.message)

    async def apply(self, job: Job, payment: PaymentState) -> None:
        invoice = await self._repository.get_invoice(payment.blockchain_identifier)
        state = payment.on_chain_state
        if state == invoice.on_chain_state and state is not None:
            return
        if state is None:
            if payment.error_type or payment.requested_action == "WaitingForManualAction":
                await self._note(job, invoice, payment)
            return
        if state == OnChainState.FUNDS_LOCKED and job.status is JobStatus.AWAITING_PAYMENT:
            await self._book.update_status(
                job.job_id,
                StatusChange(
                    to=JobStatus.RUNNING,
                    expected=JobStatus.AWAITING_PAYMENT,
                    event=EventType.FUNDS_LOCKED,
                    invoice=InvoiceChange(status=InvoiceStatus.PAID, on_chain_state=state),
                ),
            )
            self._runner.enqueue(job.job_id)
            return
        if state == OnChainState.FUNDS_OR_DATUM_INVALID and not job.is_terminal:
            await self._fail(
                job,
                "FUNDS_OR_DATUM_INVALID",
                "the buyer's funds or datum were invalid; the job was not run",
                InvoiceChange(status=InvoiceStatus.INVALID, on_chain_state=state),
            )
            return
        if state in _SETTLED:
            invoice_status, event = _SETTLED[state]
            if invoice_status is InvoiceStatus.REFUNDED and not job.is_terminal:
                self._runner.cancel(job.job_id)
                await self._fail(
                    job,
                    "REFUNDED",
                    "the buyer was refunded",
                    InvoiceChange(status=invoice_status, on_chain_state=state),
                )
                return
            await self._book.record_event(
                job.job_id,
                event,
                detail=state,
                invoice=InvoiceChange(status=invoice_status, on_chain_state=state),
            )
            return
        await self._note(job, invoice, payment)

    async def _note(self, job: Job, invoice: Invoice, payment: PaymentState) -> None:
        """A state worth recording that changes no money: ResultSubmitted, disputes,
        refund requests, errors waiting for an operator."""
        detail = payment.on_chain_state or payment.requested_action
        if payment.error_note:
            detail = f"{detail}: {payment.error_type}: {payment.error_note}"
            log.warning("payment %s needs attention: %s", payment.blockchain_identifier, detail)
        await self._book.record_event(
            job.job_id,
            EventType.PAYMENT_STATE_CHANGED,
            detail=detail,
            data={"requested_action": payment.requested_action},
            invoice=InvoiceChange(on_chain_state=payment.on_chain_state)
            if payment.on_chain_state
            else None,
        )

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
        moment (and not yet in the diff) is run, not expired."""
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
            try:
                if payment.on_chain_state is not None:
                    await self.apply(job, payment)
                    continue
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
                continue
