"""What every use case works with, wired once: the repository, the payment gateway, the
lifecycle's policy, the clock and who this replica is. And `settle`: decide on a job as
it is stored, write the decision, and decide again if another writer got there first."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from agentjobs.server.domain import Invoice, Job, StaleJobError
from agentjobs.server.domain.lifecycle import Continue, Decision, Policy
from agentjobs.server.domain.steps import KEEP
from agentjobs.server.payments.gateway import PaymentGateway
from agentjobs.server.repository.base import Fence, JobRepository, Lease

log = logging.getLogger(__name__)

# How often one decision is retried when other writers keep moving its job.
SETTLE_ATTEMPTS = 8

Decide = Callable[[Job, Invoice | None, datetime], Decision]


class Clock:
    """Wall-clock time; tests replace it."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def now_ms(self) -> int:
        return int(time.time() * 1000)


class LeaseLostError(Exception):
    """The step's lease is no longer ours: another replica took it over. Stop quietly."""


@dataclass
class Core:
    repository: JobRepository
    gateway: PaymentGateway
    policy: Policy
    clock: Clock
    # Who this replica is, in leases and the replicas table.
    replica_id: str
    lease_ms: int = 30_000

    async def settle(
        self, job: Job, invoice: Invoice | None, decide: Decide, *, keep_affinity: bool = False
    ) -> Job:
        """Write what `decide` says about the job; on a conflict read it and decide again.
        For writers that hold no lease (API calls, the monitor)."""
        for _ in range(SETTLE_ATTEMPTS):
            now = self.clock.now()
            decision = decide(job, invoice, now)
            try:
                return await self.repository.apply(job, decision, now, keep_affinity=keep_affinity)
            except StaleJobError:
                job, invoice = await self.repository.get_with_invoice(job.job_id)
        raise StaleJobError(job.job_id)


class StepRun:
    """One claimed step: the job as claimed and the lease that fences every write."""

    def __init__(self, core: Core, job: Job, invoice: Invoice | None) -> None:
        self.core = core
        self.job = job
        self.invoice = invoice
        self.owner = core.replica_id
        # The last write kept the lease and named the next step: go on with it here.
        self.continued = False
        # The last write gave the lease up (the step is over): nothing here to stop.
        self.released = False
        # A write that gives the lease up is under way: its commit, seen through the
        # change feed before the write returns here, is ours, not another writer's.
        self.releasing = False

    @property
    def fence(self) -> Fence:
        return Fence(self.owner, self.job.attempt)

    async def reload(self) -> None:
        self.job, self.invoice = await self.core.repository.get_with_invoice(self.job.job_id)
        if self.job.lease_owner != self.owner:
            raise LeaseLostError(self.job.job_id)

    async def settle(self, decide: Decide, *, affinity: bool = False) -> Job:
        """Write what `decide` says, fenced by our lease; on a conflict read the job again
        and decide again (LeaseLostError if it is no longer ours)."""
        core = self.core
        for _ in range(SETTLE_ATTEMPTS):
            now = core.clock.now()
            decision = decide(self.job, self.invoice, now)
            lease = (
                Lease(self.owner, int(now.timestamp() * 1000) + core.lease_ms)
                if isinstance(decision.step, Continue)
                else None
            )
            self.releasing = not isinstance(decision.step, Continue) and decision.step is not KEEP
            try:
                job = await core.repository.apply(
                    self.job,
                    decision,
                    now,
                    fence=self.fence,
                    affinity=self.owner if affinity else None,
                    lease=lease,
                )
            except StaleJobError:
                self.releasing = False
                await self.reload()
                continue
            except BaseException:
                self.releasing = False
                raise
            self.job = job
            self.continued = isinstance(decision.step, Continue)
            self.released = not self.continued and decision.step is not KEEP
            self.releasing = False
            if decision.invoice is not None or decision.new_invoice is not None:
                self.invoice = await core.repository.invoice_of(job)
            return job
        raise StaleJobError(self.job.job_id)
