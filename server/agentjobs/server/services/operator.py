"""The operator's side: what needs a person, what a person can do about it, and who
serves (replicas)."""

from __future__ import annotations

from dataclasses import dataclass

from agentjobs.server.domain import Job, OperationNotPossibleError, PaymentNotFoundError
from agentjobs.server.domain.lifecycle import on_operator_recover, on_operator_refund
from agentjobs.server.domain.payment import PaymentState
from agentjobs.server.repository.base import Page
from agentjobs.server.services.core import Core
from agentjobs.server.services.jobs import check_page_size
from agentjobs.server.services.monitor import LEASE_NAME


@dataclass(frozen=True)
class Replica:
    replica_id: str
    role: str
    started_at_ms: int
    heartbeat_at_ms: int
    steps_held: int
    leads_monitor: bool
    # No heartbeat for three lease lengths: stopped, or cut off from the database.
    gone: bool


class OperatorService:
    def __init__(self, core: Core) -> None:
        self._core = core

    async def attention(self, page_size: int = 0, page_token: str | None = None) -> Page:
        return await self._core.repository.list_attention(
            page_size=check_page_size(page_size), page_token=page_token or None
        )

    async def recover(self, job_id: str) -> Job:
        """error-state-recovery (or a submission blocked by a key) as the next step now."""
        job, invoice = await self._core.repository.get_with_invoice(job_id)
        payment = await self._payment(job)
        policy = self._core.policy
        return await self._core.settle(
            job, invoice, lambda j, _i, n: on_operator_recover(j, payment, n, policy)
        )

    async def refund(self, job_id: str) -> Job:
        """authorize-refund as the next step now (where the contract allows it)."""
        job, invoice = await self._core.repository.get_with_invoice(job_id)
        payment = await self._payment(job)
        return await self._core.settle(
            job, invoice, lambda j, _i, n: on_operator_refund(j, payment, n)
        )

    async def _payment(self, job: Job) -> PaymentState:
        if not job.has_payment:
            raise OperationNotPossibleError(
                f"job {job.job_id} has no payment",
                reason="NO_PAYMENT",
                metadata={"job_id": job.job_id},
            )
        try:
            return await self._core.gateway.get_payment(job.blockchain_identifier)
        except PaymentNotFoundError:
            raise OperationNotPossibleError(
                f"the payment service does not know payment {job.blockchain_identifier}",
                reason="PAYMENT_UNKNOWN",
                metadata={"job_id": job.job_id},
            ) from None

    async def replicas(self) -> list[Replica]:
        core = self._core
        now_ms = core.clock.now_ms()
        rows = await core.repository.list_replicas(now_ms)
        leader = await core.repository.lease_holder(LEASE_NAME, now_ms)
        return [
            Replica(
                replica_id=row.replica_id,
                role=row.role,
                started_at_ms=row.started_at,
                heartbeat_at_ms=row.heartbeat_at,
                steps_held=row.steps_held,
                leads_monitor=row.replica_id == leader,
                gone=now_ms - row.heartbeat_at > 3 * core.lease_ms,
            )
            for row in rows
        ]


class ReplicaHeartbeat:
    """Keeps this replica's row fresh (every third of a lease)."""

    def __init__(self, core: Core, role: str) -> None:
        self._core = core
        self._role = role
        self._started_at = core.clock.now_ms()

    async def beat(self) -> None:
        core = self._core
        now_ms = core.clock.now_ms()
        await core.repository.heartbeat(
            core.replica_id, self._role, started_at=self._started_at, now_ms=now_ms
        )

    async def leave(self) -> None:
        await self._core.repository.remove_replica(self._core.replica_id)
