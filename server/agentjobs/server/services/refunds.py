"""Deciding the buyer's refund requests (the policy is described in monitor.py).

A request is decided when the job's outcome is known: a FAILED job cannot earn the
money, so its refund is authorized; a COMPLETED job's result makes the payment Disputed,
which is the operator's to settle. Until then the request waits here. The payment
monitor feeds this desk from the diff and, at start-up, from the open invoices, so a
restart loses no undecided request.
"""

from __future__ import annotations

import logging

from agentjobs.server.domain import DomainError, EventType, Job, JobStatus
from agentjobs.server.payments.gateway import NextAction, OnChainState, PaymentGateway
from agentjobs.server.repository.base import JobRepository
from agentjobs.server.services.book import JobBook

log = logging.getLogger(__name__)

_AUTHORIZING = frozenset(
    {NextAction.AUTHORIZE_REFUND_REQUESTED, NextAction.AUTHORIZE_REFUND_INITIATED}
)


class RefundDesk:
    def __init__(self, book: JobBook, gateway: PaymentGateway) -> None:
        self._book = book
        self._repository: JobRepository = book.repository
        self._gateway = gateway
        # blockchainIdentifiers whose buyer asked for a refund we have not decided yet.
        self._undecided: set[str] = set()

    @property
    def undecided(self) -> frozenset[str]:
        return frozenset(self._undecided)

    def requested(self, blockchain_identifier: str) -> None:
        self._undecided.add(blockchain_identifier)

    async def decide(self) -> None:
        """Decide every request whose job has an outcome; keep the rest (and those the
        payment service could not take now) for the next round."""
        if not self._undecided:
            return
        jobs = await self._repository.get_by_blockchain_identifiers(sorted(self._undecided))
        for blockchain_identifier in sorted(self._undecided):
            job = jobs.get(blockchain_identifier)
            if job is None or job.status is JobStatus.COMPLETED:
                self._undecided.discard(blockchain_identifier)
            elif job.status is JobStatus.FAILED:
                try:
                    decided = await self._authorize(job)
                except DomainError as exc:
                    log.warning(
                        "cannot authorize the refund of payment %s now (%s: %s); retrying",
                        blockchain_identifier,
                        exc.reason,
                        exc.message,
                    )
                    continue
                if decided:
                    self._undecided.discard(blockchain_identifier)

    async def _authorize(self, job: Job) -> bool:
        """True once nothing is left to do for this request."""
        # Read first: after a restart the refund may be authorized already, and the
        # service answers a second authorization with an error.
        payment = await self._gateway.get_payment(job.blockchain_identifier)
        if payment.on_chain_state != OnChainState.REFUND_REQUESTED:
            return True  # withdrawn, disputed ...: the diff brings that change
        if payment.requested_action in _AUTHORIZING:
            return True
        if payment.requested_action != NextAction.WAITING_FOR_EXTERNAL_ACTION:
            return False  # busy, or parked for an operator: look again next round
        await self._gateway.authorize_refund(job.blockchain_identifier)
        reason = job.error.reason if job.error is not None else "FAILED"
        log.info(
            "authorized the refund of payment %s: job %s failed (%s)",
            job.blockchain_identifier,
            job.job_id,
            reason,
        )
        await self._book.record_event(
            job.job_id,
            EventType.PAYMENT_STATE_CHANGED,
            detail=f"refund authorized: the job failed ({reason}) and cannot earn the money",
            data={"requested_action": NextAction.AUTHORIZE_REFUND_REQUESTED},
        )
        return True
