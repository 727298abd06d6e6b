"""Payment intents: a job is stored before POST /payment and completed by its answer.

StartJob writes the job (with its request_id and input hash) holding the intent's lease,
asks the payment service, and attaches the answer. If the process dies in between, the
payment the first call created is found again in the diff by its input hash (and our job
id in its private metadata): by the monitor, by a StartJob retried with the same
request_id, or by the worker that takes the expired intent over. A payment is asked for
again only after a search found none. An intent that provably got no payment is deleted:
nothing is half-written.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from agentjobs.server.agent import Agent
from agentjobs.server.domain import (
    Amount,
    DomainError,
    FieldViolation,
    InvalidArgumentError,
    Invoice,
    InvoiceStatus,
    Job,
    JobNotFoundError,
    PaymentConfigurationError,
    PaymentNotFoundError,
    PaymentServiceFailedError,
    PaymentServiceRejectedError,
    PaymentServiceTimeoutError,
    PaymentServiceUnavailableError,
    PaymentServiceUnreachableError,
    PaymentTerms,
    StaleJobError,
)
from agentjobs.server.domain.lifecycle import Decision, on_payment, on_payment_requested, preview
from agentjobs.server.domain.payment import PaymentSourceType, PaymentState
from agentjobs.server.payments.gateway import PaymentRequest
from agentjobs.server.repository.base import Watermark
from agentjobs.server.repository.store import JobRepository
from agentjobs.server.services.core import Core, StepRun

log = logging.getLogger(__name__)

METADATA_PREFIX = "agentjobs:job="
# How far before the intent was written its payment's change stamps may lie (clocks).
SEARCH_LOOKBACK = timedelta(minutes=2)
# How long a payment whose POST lost its answer (dropped, a proxy's 502) may take to
# show in the diff before it is asked for anew.
UNSURE_SETTLE_S = 2.0


class PaymentRequestUnsettledError(PaymentServiceUnavailableError):
    """The payment service did not say whether it created the payment (timeout, 5xx):
    the intent stays, and is settled by whoever finds the payment (or proves there is
    none); a retry with the same request_id returns the job then."""


def metadata_for(job_id: str) -> str:
    return METADATA_PREFIX + job_id


@dataclass(frozen=True)
class IntentSettings:
    pay_window: timedelta
    result_window: timedelta
    # None: V1; set: the V2 supported_payment_sources index.
    source_index: int | None
    dynamic_pricing: bool
    # The payment client's timeout: how long a request it gave up on may still run.
    answer_timeout: timedelta


def provisional_invoice(job: Job, terms: PaymentTerms, now: datetime) -> Invoice:
    """The invoice attaching `terms` creates, for deciding in the same breath."""
    return Invoice(
        blockchain_identifier=terms.blockchain_identifier,
        job_id=job.job_id,
        status=InvoiceStatus.PENDING,
        amounts=terms.amounts,
        payment_source_type=terms.source_type,
        created_at=now,
        updated_at=now,
    )


def attach_and_apply(
    job: Job, terms: PaymentTerms, payment: PaymentState | None, now: datetime, core: Core
) -> Decision:
    """Attach the payment to its intent and, when its state is known, react to it."""
    attached = on_payment_requested(job, terms, now, core.policy)
    if payment is None or attached.writes_nothing:
        return attached
    after = preview(job, attached, now)
    return attached.then(
        on_payment(after, provisional_invoice(job, terms, now), payment, now, core.policy)
    )


class PaymentIntents:
    def __init__(self, core: Core, agent: Agent, settings: IntentSettings) -> None:
        self._core = core
        self._agent = agent
        self._settings = settings

    @property
    def source_type(self) -> PaymentSourceType:
        return PaymentSourceType.V1 if self._settings.source_index is None else PaymentSourceType.V2

    def price(self, input_data: dict[str, object]) -> tuple[Amount, ...] | None:
        """RequestedFunds for dynamic pricing (None: the agent's registered price)."""
        if not self._settings.dynamic_pricing:
            return None
        assert self._agent.price is not None
        try:
            priced = self._agent.price(dict(input_data))
            amounts = tuple(Amount(amount=int(a), unit=str(u)) for a, u in priced)
        except Exception as exc:
            log.exception("the agent's price() failed")
            raise InvalidArgumentError(
                f"the agent cannot price this input: {type(exc).__name__}: {exc}"[:300],
                [FieldViolation("input_data", "the agent cannot price this input")],
                reason="PRICING_FAILED",
            ) from None
        if not amounts or any(a.amount <= 0 for a in amounts):
            raise InvalidArgumentError(
                "the agent priced this input at nothing",
                [FieldViolation("input_data", "priced at nothing")],
                reason="PRICING_FAILED",
            )
        return amounts

    # -- StartJob ------------------------------------------------------------
    async def request(self, job: Job, requested_funds: tuple[Amount, ...] | None) -> Job:
        """POST /payment for the stored intent `job` (whose lease we hold) and attach it."""
        core = self._core
        now = core.clock.now()
        request = PaymentRequest(
            identifier_from_purchaser=job.identifier_from_purchaser,
            input_hash=job.input_hash,
            pay_by_time=now + self._settings.pay_window,
            submit_result_time=now + self._settings.result_window,
            metadata=metadata_for(job.job_id),
            source_index=self._settings.source_index,
            requested_funds=requested_funds,
        )
        try:
            terms = await core.gateway.create_payment_request(request)
        except PaymentRequestUnsettledError:
            raise
        except PaymentServiceUnavailableError as exc:
            return await self._unanswered(job, exc)
        except (
            PaymentServiceRejectedError,
            PaymentNotFoundError,
            PaymentConfigurationError,
        ) as exc:
            # The service refused it: no payment exists. These are our configuration's
            # faults far more often than the caller's: tell the operator.
            log.error(
                "POST /payment refused (%s: %s): check AGENT_IDENTIFIER, NETWORK, "
                "AGENTJOBS_PAYMENT_SOURCE_INDEX and AGENTJOBS_PRICING against the payment "
                "service",
                exc.reason,
                exc.message,
            )
            await self._forget(job)
            raise
        except DomainError:
            await self._forget(job)
            raise
        return await self.attach(job, terms, None)

    async def attach(self, job: Job, terms: PaymentTerms, payment: PaymentState | None) -> Job:
        """Attach `terms` to the intent (and react to `payment` if given)."""
        core = self._core
        try:
            return await core.settle(
                job, None, lambda j, _i, n: attach_and_apply(j, terms, payment, n, core)
            )
        except DomainError as mismatch:
            log.error("job %s: %s", job.job_id, mismatch.message)
            raise

    async def _unanswered(self, job: Job, exc: PaymentServiceUnavailableError) -> Job:
        """POST /payment got no success answer. A request that never left needs nothing
        more; otherwise the payment may exist: look for it once. Found, the call
        succeeds after all. Not found, a failure the service itself reported created
        nothing; a lost or late answer leaves the intent for a short while (the service
        may still be at it), then whoever is free then, a retry or a worker, looks again
        and asks anew only if there is still nothing."""
        if isinstance(exc, PaymentServiceUnreachableError):
            await self._forget(job)
            raise exc
        try:
            found = await self.find_payment(job)
        except DomainError as failed:
            log.warning("job %s: cannot look for its payment (%s)", job.job_id, failed.message)
            found = None
        if found is not None:
            return await self._attach_found(job, found)
        if isinstance(exc, PaymentServiceFailedError):
            await self._forget(job)
            raise exc
        settle_s = self._settings.answer_timeout.total_seconds()
        if not isinstance(exc, PaymentServiceTimeoutError):
            settle_s = min(settle_s, UNSURE_SETTLE_S)
        core = self._core
        await core.repository.defer(
            job, core.replica_id, run_at_ms=core.clock.now_ms() + int(settle_s * 1000)
        )
        log.warning(
            "job %s: the payment service did not answer POST /payment (%s) and no payment "
            "of it shows yet; looked for again in %gs",
            job.job_id,
            exc.message,
            settle_s,
        )
        raise PaymentRequestUnsettledError(exc.message) from None

    async def _forget(self, job: Job) -> None:
        try:
            await self._core.repository.delete_intent(job)
        except StaleJobError:
            log.info("job %s: its intent moved on before it could be removed", job.job_id)

    async def wait_for_payment(self, job: Job, timeout_s: float) -> Job | None:
        """A StartJob retried while another call for the same request_id is in flight:
        wait for that call's answer (or its lease to expire), then take over. None: the
        intent was removed meanwhile (it provably got no payment)."""
        core = self._core
        repository = core.repository
        with repository.changes.subscribe(job.job_id) as changed:
            async with asyncio.timeout(timeout_s):
                while True:
                    current = await _current(repository, job)
                    if current is None or current.has_payment or current.is_terminal:
                        return current
                    if _free_at(current) <= core.clock.now_ms():
                        taken = await self.take_over(current)
                        if taken is not None:
                            return taken
                        # Someone else (a worker) took it over first: wait for it.
                        current = await _current(repository, job)
                        if current is None:
                            return None
                    changed.clear()
                    wait = max(0.01, (_free_at(current) - core.clock.now_ms()) / 1000 + 0.01)
                    try:
                        async with asyncio.timeout(wait):
                            await changed.wait()
                    except TimeoutError:
                        pass

    async def take_over(self, job: Job) -> Job | None:
        """Settle an intent whose caller died: find its payment, or request it now
        (None: someone else took it over first)."""
        core = self._core
        now_ms = core.clock.now_ms()
        until = now_ms + self.intent_lease_ms
        claimed = await core.repository.take_over(
            job, core.replica_id, now_ms=now_ms, until_ms=until
        )
        if claimed is None:
            return None
        found = await self.find_payment(claimed)
        if found is not None:
            return await self._attach_found(claimed, found)
        return await self.request(claimed, self.price(claimed.input_data))

    @property
    def intent_lease_ms(self) -> int:
        """Long enough for POST /payment and one search after it even where no worker
        renews it (the api role)."""
        answers_ms = int(self._settings.answer_timeout.total_seconds() * 1000) * 3
        return max(self._core.lease_ms, answers_ms + 5000)

    def terms_of(self, payment: PaymentState) -> PaymentTerms | None:
        """The terms of a payment seen in the diff (None if the answer lacks them)."""
        return self._core.gateway.terms_of(payment, self._settings.source_index)

    async def _attach_found(self, job: Job, payment: PaymentState) -> Job:
        terms = self.terms_of(payment)
        if terms is None:
            raise PaymentServiceUnavailableError(
                f"payment {payment.blockchain_identifier} of job {job.job_id} was found "
                "without its terms"
            )
        log.info(
            "job %s: found its payment %s (the call that asked for it was interrupted)",
            job.job_id,
            payment.blockchain_identifier,
        )
        return await self.attach(job, terms, payment)

    async def find_payment(self, job: Job) -> PaymentState | None:
        """The payment created for this intent, searched in the diff from a little
        before the intent was written."""
        gateway = self._core.gateway
        watermark: Watermark | None = Watermark(last_update=job.created_at - SEARCH_LOOKBACK)
        while True:
            changes = await gateway.changes_since(watermark, source_type=self.source_type)
            for payment in changes.payments:
                if matches(job, payment):
                    return payment
            if not changes.more or changes.watermark is None:
                return None
            watermark = changes.watermark

    # -- the worker's REQUEST_PAYMENT step -----------------------------------
    async def settle_abandoned(self, run: StepRun) -> None:
        """An intent whose lease expired: its StartJob died (or gave up unsure)."""
        job = run.job
        try:
            found = await self.find_payment(job)
        except DomainError as exc:
            log.warning("job %s: cannot search for its payment (%s)", job.job_id, exc.message)
            policy = run.core.policy
            from agentjobs.server.domain.lifecycle import retry_later
            from agentjobs.server.domain.steps import Step

            await run.settle(lambda j, i, n: retry_later(j, Step.REQUEST_PAYMENT, n, policy))
            return
        if found is not None:
            await self._attach_found(job, found)
            return
        log.info(
            "job %s: its StartJob stopped before the payment service created a payment; "
            "the intent is removed (a retry with the same request_id starts afresh)",
            job.job_id,
        )
        await self._forget(job)


async def _current(repository: JobRepository, job: Job) -> Job | None:
    try:
        return await repository.get(job.job_id)
    except JobNotFoundError:
        return None


def _free_at(job: Job) -> int:
    """When a retry may take the intent over: its step due and its lease lapsed."""
    held = (job.lease_expires_at or 0) if job.lease_owner is not None else 0
    return max(held, job.run_at or 0)


def matches(job: Job, payment: PaymentState) -> bool:
    if payment.input_hash != job.input_hash:
        return False
    if payment.metadata and payment.metadata.startswith(METADATA_PREFIX):
        return payment.metadata == metadata_for(job.job_id)
    return True
