"""The MIP-003 use cases, shared by the gRPC servicers and the HTTP front."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from agentjobs.server.agent import Agent
from agentjobs.server.domain import (
    Amount,
    DomainError,
    EventType,
    FieldViolation,
    FundsAlreadyLockedError,
    IdempotencyConflictError,
    InvalidArgumentError,
    InvalidStateTransitionError,
    Job,
    JobEvent,
    JobStatus,
    PaymentNotFoundError,
    PaymentServiceUnavailableError,
    StatusIdMismatchError,
)
from agentjobs.server.domain.hashing import UnhashableValueError
from agentjobs.server.domain.hashing import input_hash as jcs_input_hash
from agentjobs.server.domain.identifiers import identifier_from_purchaser_violation
from agentjobs.server.domain.input_rules import check_id, check_input, check_optional_id, check_text
from agentjobs.server.domain.lifecycle import (
    Answer,
    NewEvent,
    free_job_started,
    on_cancel,
    on_input,
    on_payment,
)
from agentjobs.server.domain.payment import PaymentState, Pricing
from agentjobs.server.domain.steps import Step
from agentjobs.server.payments.signing import NoSigner, ResponseSigner
from agentjobs.server.repository.base import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Lease,
    Page,
    RequestIdTakenError,
)
from agentjobs.server.services.availability import PaymentServiceHealth
from agentjobs.server.services.core import Core
from agentjobs.server.services.input_validation import check_input_data
from agentjobs.server.services.intents import PaymentIntents

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Availability:
    available: bool
    agent_identifier: str
    message: str
    sandbox: bool
    draining: bool = False
    # The key /provide_input signatures verify with ("" without a signing key).
    verification_key: str = ""
    verification_key_hash: str = ""


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


def input_hash(input_data: dict[str, Any], identifier_from_purchaser: str) -> str:
    """The MIP-004 input hash as the buyer computes it; INVALID_ARGUMENT for a value a
    JavaScript buyer could not hash the same way."""
    try:
        return jcs_input_hash(input_data, identifier_from_purchaser)
    except UnhashableValueError as refused:
        field = f"input_data.{refused.path}" if refused.path else "input_data"
        raise InvalidArgumentError(
            f"{field} cannot be hashed as the buyer would: {refused.reason}",
            [FieldViolation(field, refused.reason)],
        ) from None


class JobsService:
    def __init__(
        self,
        core: Core,
        intents: PaymentIntents,
        agent: Agent,
        *,
        agent_identifier: str,
        sandbox: bool,
        max_input_bytes: int,
        pricing: Pricing = Pricing.FIXED,
        on_new_payment: Any = None,
        payment_health: PaymentServiceHealth | None = None,
        signer: ResponseSigner | None = None,
    ) -> None:
        self._core = core
        self._repository = core.repository
        self._intents = intents
        self._agent = agent
        self._agent_identifier = agent_identifier
        self._sandbox = sandbox
        self._max_input_bytes = max_input_bytes
        self._pricing = pricing
        # Called after a payment was requested: the monitor takes a quick first look.
        self._on_new_payment = on_new_payment
        self._payment_health = payment_health
        self._signer: ResponseSigner = signer or NoSigner()
        self.accepting = True

    # -- StartJob ------------------------------------------------------------
    async def start_job(
        self,
        identifier_from_purchaser: str,
        input_data: dict[str, Any],
        request_id: str | None = None,
    ) -> Job:
        free = self._pricing is Pricing.FREE
        if identifier_from_purchaser or not free:
            violation = identifier_from_purchaser_violation(identifier_from_purchaser)
            if violation is not None:
                raise InvalidArgumentError(
                    f"identifier_from_purchaser {violation.description}", [violation]
                )
        check_request_id(request_id)
        check_input_data(input_data, self._agent.input_schema, max_bytes=self._max_input_bytes)
        digest = input_hash(input_data, identifier_from_purchaser)
        funds = None if free else self._intents.price(input_data)
        # A retry whose first call's intent is removed while it looks (no payment came
        # of it) starts afresh; twice is enough for any honest race.
        for _ in range(3):
            job = await self._start(
                identifier_from_purchaser, input_data, digest, request_id, funds
            )
            if job is not None:
                return job
        raise PaymentServiceUnavailableError(
            f"request_id {request_id}: its earlier payment requests keep failing; retry later"
        )

    async def _start(
        self,
        identifier: str,
        input_data: dict[str, Any],
        digest: str,
        request_id: str | None,
        funds: tuple[Amount, ...] | None,
    ) -> Job | None:
        free = self._pricing is Pricing.FREE
        job = self._new_job(identifier, input_data, digest, request_id, free)
        core = self._core
        lease = None
        if not free:
            lease = Lease(core.replica_id, core.clock.now_ms() + self._intents.intent_lease_ms)
        try:
            stored = await self._repository.insert(
                job,
                [NewEvent(EventType.CREATED, "", _created_data(digest, request_id, free))],
                lease=lease,
            )
        except RequestIdTakenError:
            return await self._replayed_start(identifier, digest, request_id)
        if free:
            return stored
        # Shielded: a caller who gives up must not cut the request off between POST
        # /payment and attaching its answer (the intent would then wait for its lease).
        job = await asyncio.shield(self._intents.request(stored, funds))
        if self._on_new_payment is not None:
            self._on_new_payment()
        return job

    def _new_job(
        self,
        identifier: str,
        input_data: dict[str, Any],
        digest: str,
        request_id: str | None,
        free: bool,
    ) -> Job:
        core = self._core
        now = core.clock.now()
        fields: dict[str, Any] = {
            "job_id": str(uuid.uuid4()),
            "status_id": str(uuid.uuid4()),
            "identifier_from_purchaser": identifier,
            "input_data": input_data,
            "input_hash": digest,
            "request_id": request_id,
            "created_at": now,
            "updated_at": now,
            "agent_identifier": self._agent_identifier,
            "pricing": self._pricing.value,
        }
        if free:
            extra, step = free_job_started(now, core.policy)
            fields.update(extra, status=JobStatus.RUNNING, step=step.step, run_at=step.run_at)
        else:
            until = core.clock.now_ms() + self._intents.intent_lease_ms
            fields.update(
                status=JobStatus.AWAITING_PAYMENT, step=Step.REQUEST_PAYMENT, run_at=until
            )
        return Job(**fields)

    async def _replayed_start(
        self, identifier_from_purchaser: str, digest: str, request_id: str | None
    ) -> Job | None:
        """The job an earlier call with this request_id started (None: its intent is
        gone, so this call may start it)."""
        assert request_id is not None
        existing = await self._repository.get_by_request_id(request_id)
        if existing is None:
            return None
        if (existing.identifier_from_purchaser, existing.input_hash) != (
            identifier_from_purchaser,
            digest,
        ):
            raise IdempotencyConflictError(request_id)
        if existing.has_payment or existing.is_free or existing.is_terminal:
            return existing
        # The first call has not got its payment's answer (or died waiting for it).
        timeout = self._intents.intent_lease_ms / 1000 + 5
        return await self._intents.wait_for_payment(existing, timeout)

    # -- status --------------------------------------------------------------
    async def get_job(self, job_id: str) -> Job:
        check_id(job_id, "job_id")
        return await self._repository.get(job_id)

    async def list_jobs(
        self, page_size: int = 0, page_token: str | None = None, status: JobStatus | None = None
    ) -> Page:
        return await self._repository.list(
            page_size=check_page_size(page_size),
            page_token=page_token or None,
            status=status,
            intents=False,
        )

    async def watch(self, job_id: str) -> AsyncGenerator[tuple[Job, JobEvent | None], None]:
        """The job now, then (job, event) per lifecycle event until it is terminal.

        Woken by the change hub (this process's writes and, through the change feed,
        every other replica's); events are read from the database after each wake-up,
        so none is skipped when several land between two reads."""
        check_id(job_id, "job_id")
        with self._repository.changes.subscribe(job_id) as changed:
            job = await self._repository.get(job_id)
            last = job.event_count
            yield job, None
            while not job.is_terminal:
                await changed.wait()
                changed.clear()
                events = await self._repository.events(job_id, after_sequence=last)
                if not events:
                    continue
                job = await self._repository.get(job_id)
                for event in events:
                    last = event.sequence
                    yield job, event

    # -- ProvideInput --------------------------------------------------------
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
        job = await self._repository.get(job_id)
        digest = input_hash(input_data, job.identifier_from_purchaser)
        if request_id:
            earlier = await self._earlier_answer(job_id, request_id, status_id, digest)
            if earlier is not None:
                return earlier
        if job.status is JobStatus.AWAITING_INPUT and status_id == job.status_id:
            check_input_data(
                input_data,
                job.input_schema or {},
                max_bytes=self._max_input_bytes,
                schema_name="the schema of the input the job asks for",
            )
        answer = Answer(input_data=input_data, input_hash=digest, request_id=request_id)
        try:
            # The answer goes first to the replica whose handler waits for it.
            await self._core.settle(
                job,
                None,
                lambda j, _i, n: on_input(j, status_id, answer, n),
                keep_affinity=True,
            )
        except (InvalidStateTransitionError, StatusIdMismatchError):
            # Two deliveries of one answer may race: the loser finds the winner's.
            if request_id:
                earlier = await self._earlier_answer(job_id, request_id, status_id, digest)
                if earlier is not None:
                    return earlier
            raise
        return self._receipt(job_id, status_id, digest)

    def _receipt(self, job_id: str, status_id: str, digest: str) -> InputReceipt:
        """MIP-003's answer, signed with the agent's key when one is configured."""
        signature = self._signer.sign_provide_input(
            job_id=job_id, status_id=status_id, input_hash=digest
        )
        return InputReceipt(input_hash=digest, signature=signature)

    async def _earlier_answer(
        self, job_id: str, request_id: str, status_id: str, digest: str
    ) -> InputReceipt | None:
        """The receipt of an earlier answer with this request_id; a different body or
        status_id under the same request_id is a conflict, never the earlier receipt."""
        for event in await self._repository.events(job_id):
            if (
                event.type is EventType.INPUT_PROVIDED
                and event.data.get("request_id") == request_id
            ):
                if (event.data.get("status_id"), event.data.get("input_hash")) != (
                    status_id,
                    digest,
                ):
                    raise IdempotencyConflictError(request_id)
                return self._receipt(job_id, status_id, str(event.data["input_hash"]))
        return None

    # -- the rest of MIP-003 -------------------------------------------------
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
            verification_key=self._signer.verification_key,
            verification_key_hash=self._signer.verification_key_hash,
        )

    def input_schema(self) -> dict[str, Any]:
        return self._agent.input_schema

    def demo(self) -> tuple[dict[str, Any], str]:
        return self._agent.demo_input, self._agent.demo_output

    # -- operator ------------------------------------------------------------
    async def cancel_job(self, job_id: str, reason: str) -> Job:
        check_id(job_id, "job_id")
        check_text(reason, "reason")
        job, invoice = await self._repository.get_with_invoice(job_id)
        payment: PaymentState | None = None
        if job.status is JobStatus.AWAITING_PAYMENT and job.has_payment:
            # The monitor may not have seen a lock yet: a paid job must run, not be cancelled.
            try:
                payment = await self._core.gateway.get_payment(job.blockchain_identifier)
            except PaymentNotFoundError:
                payment = None
        policy = self._core.policy
        try:
            return await self._core.settle(
                job, invoice, lambda j, i, n: on_cancel(j, i, payment, reason, n, policy)
            )
        except FundsAlreadyLockedError:
            # The buyer has paid: what we just learned is the monitor's news early.
            assert payment is not None
            paid = payment
            await self._core.settle(job, invoice, lambda j, i, n: on_payment(j, i, paid, n, policy))
            raise


def _created_data(digest: str, request_id: str | None, free: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"input_hash": digest}
    if request_id is not None:
        data["request_id"] = request_id
    if free:
        data["pricing"] = "free"
    return data


__all__ = ["Availability", "DomainError", "InputReceipt", "JobsService"]
