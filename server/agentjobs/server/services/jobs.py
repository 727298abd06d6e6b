"""The MIP-003 use cases, shared by the gRPC servicers and the HTTP front."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from masumi.helper_functions import create_masumi_input_hash

from agentjobs.server.agent import Agent
from agentjobs.server.domain import (
    DomainError,
    EventType,
    FieldViolation,
    FundsAlreadyLockedError,
    IdempotencyConflictError,
    InvalidArgumentError,
    InvalidStateTransitionError,
    InvoiceStatus,
    Job,
    JobError,
    JobEvent,
    JobStatus,
    NotAwaitingInputError,
    StatusIdMismatchError,
)
from agentjobs.server.domain.identifiers import identifier_from_purchaser_violation
from agentjobs.server.domain.input_rules import check_id, check_input, check_optional_id, check_text
from agentjobs.server.payments.gateway import PaymentGateway
from agentjobs.server.repository.base import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    InvoiceChange,
    NewJob,
    Page,
    StatusChange,
)
from agentjobs.server.services.availability import PaymentServiceHealth
from agentjobs.server.services.book import JobBook
from agentjobs.server.services.input_validation import check_input_data
from agentjobs.server.services.keyed_locks import KeyedLocks
from agentjobs.server.services.runner import JobRunner

log = logging.getLogger(__name__)

WATCH_REREAD_S = 5.0


@dataclass(frozen=True)
class Availability:
    available: bool
    agent_identifier: str
    message: str
    sandbox: bool
    # Shutting down: this replica takes no more work (the others may).
    draining: bool = False


@dataclass(frozen=True)
class InputReceipt:
    input_hash: str
    signature: str = ""


def check_request_id(request_id: str | None) -> None:
    check_optional_id(request_id, "request_id")


def check_page_size(page_size: int) -> int:
    if page_size < 0:
        raise InvalidArgumentError(
            "page_size must not be negative", [FieldViolation("page_size", "must be >= 0")]
        )
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


class JobsService:
    def __init__(
        self,
        book: JobBook,
        gateway: PaymentGateway,
        runner: JobRunner,
        agent: Agent,
        *,
        agent_identifier: str,
        sandbox: bool,
        max_input_bytes: int,
        pay_window: timedelta = timedelta(hours=12),
        result_window: timedelta = timedelta(hours=24),
        payment_health: PaymentServiceHealth | None = None,
    ) -> None:
        self._book = book
        self._repository = book.repository
        self._gateway = gateway
        self._runner = runner
        self._agent = agent
        self._agent_identifier = agent_identifier
        self._sandbox = sandbox
        self._max_input_bytes = max_input_bytes
        self._pay_window = pay_window
        self._result_window = result_window
        self._payment_health = payment_health
        # One payment request per request_id even when the retry arrives while the
        # first call is still waiting for the payment service.
        self._request_locks = KeyedLocks()
        # One answer per question: the status_id check and the transition it guards
        # happen under this job's lock, so two answers racing for one question cannot
        # both pass the check (the second would answer the handler's next question).
        self._input_locks = KeyedLocks()
        self.accepting = True

    # -- MIP-003 -------------------------------------------------------------
    async def start_job(
        self,
        identifier_from_purchaser: str,
        input_data: dict[str, Any],
        request_id: str | None = None,
    ) -> Job:
        violation = identifier_from_purchaser_violation(identifier_from_purchaser)
        if violation is not None:
            raise InvalidArgumentError(
                f"identifier_from_purchaser {violation.description}", [violation]
            )
        check_request_id(request_id)
        check_input_data(input_data, self._agent.input_schema, max_bytes=self._max_input_bytes)
        input_hash = create_masumi_input_hash(input_data, identifier_from_purchaser)
        # A caller that gives up (cancels, misses its deadline) must not cut this short:
        # cut after POST /payment it leaves a payment without a job, and the gateway's
        # diff holds back every payment behind one it asked for until its job is
        # followed (HOLD_BACK_S): any client could stall payment detection for everyone.
        return await asyncio.shield(
            self._start_once(identifier_from_purchaser, input_data, input_hash, request_id)
        )

    async def _start_once(
        self,
        identifier_from_purchaser: str,
        input_data: dict[str, Any],
        input_hash: str,
        request_id: str | None,
    ) -> Job:
        if not request_id:
            return await self._create(identifier_from_purchaser, input_data, input_hash, None)
        async with self._request_locks.hold(request_id):
            existing = await self._repository.get_by_request_id(request_id)
            if existing is not None:
                if (existing.identifier_from_purchaser, existing.input_hash) != (
                    identifier_from_purchaser,
                    input_hash,
                ):
                    raise IdempotencyConflictError(request_id)
                return existing
            return await self._create(identifier_from_purchaser, input_data, input_hash, request_id)

    async def _create(
        self,
        identifier_from_purchaser: str,
        input_data: dict[str, Any],
        input_hash: str,
        request_id: str | None,
    ) -> Job:
        # Nothing is stored until the payment service has answered: a failure there
        # leaves no half-made job behind.
        now = datetime.now(UTC)
        terms = await self._gateway.create_payment_request(
            identifier_from_purchaser=identifier_from_purchaser,
            input_hash=input_hash,
            pay_by_time=now + self._pay_window,
            submit_result_time=now + self._result_window,
        )
        try:
            job = await self._repository.create(
                NewJob(
                    identifier_from_purchaser=identifier_from_purchaser,
                    input_data=input_data,
                    input_hash=input_hash,
                    payment=terms,
                    request_id=request_id,
                )
            )
        except Exception:
            log.error(
                "payment %s was requested but its job could not be stored; "
                "nobody can pay it without the job's answer",
                terms.blockchain_identifier,
            )
            raise
        self._gateway.follow([job.blockchain_identifier])
        return job

    async def get_job(self, job_id: str) -> Job:
        check_id(job_id, "job_id")
        return await self._repository.get(job_id)

    async def provide_input(
        self,
        job_id: str,
        status_id: str,
        input_data: dict[str, Any],
        request_id: str | None = None,
    ) -> InputReceipt:
        check_id(job_id, "job_id")
        check_id(status_id, "status_id")
        check_request_id(request_id)
        check_input(input_data)
        async with self._input_locks.hold(job_id):
            return await self._answer(job_id, status_id, input_data, request_id)

    async def _answer(
        self, job_id: str, status_id: str, input_data: dict[str, Any], request_id: str | None
    ) -> InputReceipt:
        job = await self._repository.get(job_id)
        if request_id:
            earlier = await self._earlier_answer(job, status_id, input_data, request_id)
            if earlier is not None:
                return earlier
        if job.status is not JobStatus.AWAITING_INPUT:
            raise NotAwaitingInputError(job_id, job.status.value)
        if status_id != job.status_id:
            raise StatusIdMismatchError(job_id, status_id, job.status_id)
        check_input_data(
            input_data,
            job.input_schema or {},
            max_bytes=self._max_input_bytes,
            schema_name="the schema of the input the job asks for",
        )
        input_hash = create_masumi_input_hash(input_data, job.identifier_from_purchaser)
        await self._book.update_status(
            job_id,
            StatusChange(
                to=JobStatus.RUNNING,
                expected=JobStatus.AWAITING_INPUT,
                expected_status_id=status_id,
                event=EventType.INPUT_PROVIDED,
                event_data={
                    "request_id": request_id,
                    "input_hash": input_hash,
                    "input_data": input_data,
                    "status_id": status_id,
                },
            ),
        )
        if not self._runner.deliver_input(job_id, input_data):
            # The handler that asked is gone (restart): re-run it; it replays this answer.
            self._runner.enqueue(job_id, recovering=True)
        return InputReceipt(input_hash=input_hash)

    async def _earlier_answer(
        self, job: Job, status_id: str, input_data: dict[str, Any], request_id: str
    ) -> InputReceipt | None:
        """The receipt of an earlier answer with this request_id; a different body or
        status_id under the same request_id is a conflict, never the earlier receipt."""
        input_hash = create_masumi_input_hash(input_data, job.identifier_from_purchaser)
        for event in await self._repository.events(job.job_id):
            if (
                event.type is EventType.INPUT_PROVIDED
                and event.data.get("request_id") == request_id
            ):
                if (event.data.get("status_id"), event.data.get("input_hash")) != (
                    status_id,
                    input_hash,
                ):
                    raise IdempotencyConflictError(request_id)
                return InputReceipt(input_hash=str(event.data["input_hash"]))
        return None

    async def availability(self) -> Availability:
        if self._sandbox:
            message = (
                "SANDBOX: payments go to the built-in sandbox payment service, "
                "not to Masumi; no real funds move"
            )
        else:
            message = f"{self._agent.name} is ready to accept jobs"
        available = self.accepting
        if not self.accepting:
            message = "shutting down; not accepting jobs"
        elif self._payment_health is not None:
            # No job can start while the payment service refuses us or is gone.
            health = await self._payment_health.current()
            if not health.usable:
                available = False
                message = health.problem
        return Availability(
            available=available,
            draining=not self.accepting,
            agent_identifier=self._agent_identifier,
            message=message,
            sandbox=self._sandbox,
        )

    def input_schema(self) -> dict[str, Any]:
        return self._agent.input_schema

    def demo(self) -> tuple[dict[str, Any], str]:
        return self._agent.demo_input, self._agent.demo_output

    async def list_jobs(
        self, page_size: int = 0, page_token: str | None = None, status: JobStatus | None = None
    ) -> Page[Job]:
        return await self._repository.list(
            page_size=check_page_size(page_size), page_token=page_token or None, status=status
        )

    async def watch(self, job_id: str) -> AsyncGenerator[tuple[Job, JobEvent | None], None]:
        """The job now, then (job, event) per lifecycle event until it is terminal.

        Events are read from the repository after each wake-up, so none is skipped even
        when several land between two reads."""
        check_id(job_id, "job_id")
        with self._book.changes.subscribe(job_id) as changed:
            # Events first, then the job: an event written in between is then already in
            # the job read. (The other way round it would count as seen while the job
            # read predates it, and the stream would show a stale status.)
            history = await self._repository.events(job_id)
            last = history[-1].sequence if history else 0
            job = await self._repository.get(job_id)
            yield job, None
            while not job.is_terminal:
                # The timeout covers writers in other processes sharing the database.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), WATCH_REREAD_S)
                changed.clear()
                events = await self._repository.events(job_id, after_sequence=last)
                if not events:
                    continue
                job = await self._repository.get(job_id)
                for event in events:
                    last = event.sequence
                    yield job, event

    # -- operator ------------------------------------------------------------
    async def cancel_job(self, job_id: str, reason: str) -> Job:
        check_id(job_id, "job_id")
        check_text(reason, "reason")
        job = await self._repository.get(job_id)
        if job.status is not JobStatus.AWAITING_PAYMENT:
            raise InvalidStateTransitionError(job_id, job.status.value, JobStatus.FAILED.value)
        # The monitor may not have seen a lock yet: a paid job must run, not be cancelled.
        payment = await self._gateway.get_payment(job.blockchain_identifier)
        if payment.on_chain_state is not None:
            raise FundsAlreadyLockedError(job_id, payment.on_chain_state)
        message = reason or "cancelled by the operator"
        return await self._book.update_status(
            job_id,
            StatusChange(
                to=JobStatus.FAILED,
                expected=JobStatus.AWAITING_PAYMENT,
                event=EventType.FAILED,
                detail=message,
                error=JobError(reason="CANCELLED", message=message),
                invoice=InvoiceChange(status=InvoiceStatus.EXPIRED),
            ),
        )


__all__ = ["Availability", "DomainError", "InputReceipt", "JobsService"]
