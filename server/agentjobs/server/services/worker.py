"""The worker: claims due steps from the database, runs them, keeps their leases.

Any number of workers (in any number of processes) share one database: a claim is one
statement, so no two hold one step; a worker that dies stops renewing, and its steps are
claimed again once their leases expire. Wake-ups come from the change hub (a step made
due here or, through the change feed, anywhere) and from the time the next step is due;
the poll interval only bounds how late an expired lease is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from agentjobs.server.domain import DomainError, Job, StorageUnavailableError
from agentjobs.server.domain.lifecycle import retry_later
from agentjobs.server.domain.status import JobStatus
from agentjobs.server.domain.steps import Step
from agentjobs.server.services.agent_runner import AgentRunner
from agentjobs.server.services.core import Core, LeaseLostError, StepRun
from agentjobs.server.services.steps import StepHandler

log = logging.getLogger(__name__)

ALL_BUT_RUN = [step.value for step in Step if step is not Step.RUN]


@dataclass
class _Held:
    task: asyncio.Task[None]
    claimed_at: float
    step: Step | None
    run: StepRun | None = None

    def stoppable(self, before: float) -> bool:
        """Claimed before `before`, still at work, and not already done with its lease
        (nor giving it up right now: its own final write is not another writer's)."""
        released = self.run is not None and (self.run.released or self.run.releasing)
        return self.claimed_at < before and not self.task.done() and not released


class Worker:
    def __init__(
        self,
        core: Core,
        handlers: Mapping[Step, StepHandler],
        runner: AgentRunner,
        *,
        max_in_flight: int = 64,
        poll_s: float = 1.0,
        affinity_grace_ms: int | None = None,
    ) -> None:
        self._core = core
        self._handlers = dict(handlers)
        self._runner = runner
        self._max_in_flight = max_in_flight
        self._poll_s = poll_s
        self._affinity_grace_ms = core.lease_ms if affinity_grace_ms is None else affinity_grace_ms
        self._held: dict[str, _Held] = {}
        self._wake = asyncio.Event()
        # A change anywhere: a step held here may have been ended by another writer (a
        # refund paid out under a running agent); look soon instead of at the renewal.
        self._look = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self.claimed = 0
        core.repository.changes.on_change(self._changed)

    @property
    def steps_held(self) -> int:
        return len(self._held)

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="worker-claims"),
            asyncio.create_task(self._lease_loop(), name="worker-leases"),
            asyncio.create_task(self._look_loop(), name="worker-looks"),
        ]

    def wake(self) -> None:
        self._wake.set()

    def _changed(self) -> None:
        self._wake.set()
        if self._held:
            self._look.set()

    # -- claiming ------------------------------------------------------------
    async def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            pause = self._poll_s
            try:
                pause = await self._claim_round()
            except DomainError as exc:
                log.warning("the worker could not claim steps: %s", exc.message)
            except Exception:
                log.exception("the worker could not claim steps")
            if self._stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, pause)):
                    await self._wake.wait()

    async def _claim_round(self) -> float:
        """Claim what is due; returns how long to wait before looking again."""
        core = self._core
        room = self._max_in_flight - len(self._held)
        if room <= 0:
            return self._poll_s
        now_ms = core.clock.now_ms()
        due = await core.repository.next_due()
        if due is None:
            return self._poll_s
        if due > now_ms:
            return min(self._poll_s, (due - now_ms) / 1000)
        jobs = await self._claim(now_ms, room, ALL_BUT_RUN)
        # The agent's concurrency bounds RUN steps: claim no more than can start now.
        runs = self._runner.concurrency - sum(1 for h in self._held.values() if h.step is Step.RUN)
        runs = min(runs, room - len(jobs))
        if runs > 0:
            jobs += await self._claim(now_ms, runs, [Step.RUN.value])
        return 0.0 if jobs else self._poll_s

    async def _claim(self, now_ms: int, limit: int, kinds: list[str]) -> list[Job]:
        core = self._core
        jobs = await core.repository.claim(
            core.replica_id,
            now_ms=now_ms,
            lease_ms=core.lease_ms,
            limit=limit,
            affinity_grace_ms=self._affinity_grace_ms,
            steps=kinds,
        )
        for job in jobs:
            self.claimed += 1
            task = asyncio.create_task(self._work(job), name=f"step-{job.step}-{job.job_id}")
            self._held[job.job_id] = _Held(task, time.monotonic(), job.step)
        return jobs

    async def _work(self, job: Job) -> None:
        core = self._core
        try:
            run = StepRun(core, job, await core.repository.invoice_of(job))
            held = self._held.get(job.job_id)
            if held is not None:
                held.run = run
            while True:
                step = run.job.step
                handler = self._handlers.get(step) if step is not None else None
                if handler is None:
                    log.error("job %s: no handler for step %s", run.job.job_id, step)
                    return
                run.continued = False
                await handler(run)
                if not run.continued:
                    return
        except LeaseLostError:
            log.info("job %s: its %s step was taken over by another worker", job.job_id, job.step)
        except StorageUnavailableError as exc:
            # The lease expires and the step is claimed again.
            log.warning("job %s: the database failed during %s: %s", job.job_id, job.step, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: step %s failed; it is retried", job.job_id, job.step)
            await self._retry(job)
        finally:
            self._held.pop(job.job_id, None)
            self._wake.set()

    async def _retry(self, job: Job) -> None:
        try:
            current = await self._core.repository.get(job.job_id)
            if current.lease_owner != self._core.replica_id or current.step is None:
                return
            run = StepRun(self._core, current, None)
            step, policy = current.step, self._core.policy
            await run.settle(lambda j, _i, n: retry_later(j, step, n, policy))
        except Exception:
            # The lease expires and the step is claimed again in any case.
            log.exception("job %s: could not schedule the retry of %s", job.job_id, job.step)

    # -- leases ----------------------------------------------------------------
    async def _lease_loop(self) -> None:
        interval = self._core.lease_ms / 3000
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            try:
                await self.renew()
                await self.sweep_suspended()
            except DomainError as exc:
                log.warning("could not renew the worker's leases: %s", exc.message)
            except Exception:
                log.exception("could not renew the worker's leases")

    async def _look_loop(self) -> None:
        while not self._stopping.is_set():
            await self._look.wait()
            self._look.clear()
            try:
                await self.drop_lost()
            except DomainError as exc:
                log.warning("could not look at the steps held here: %s", exc.message)
            except Exception:
                log.exception("could not look at the steps held here")

    async def drop_lost(self) -> None:
        """Stop the steps whose lease another writer ended (the job moved on)."""
        if not self._held:
            return
        began = time.monotonic()
        states = await self._core.repository.job_states(list(self._held))
        me = self._core.replica_id
        for job_id, entry in list(self._held.items()):
            state = states.get(job_id)
            lost = state is None or state.lease_owner != me
            if lost and entry.stoppable(began):
                log.info("job %s: its step ended elsewhere; stopping it here", job_id)
                entry.task.cancel()

    async def renew(self) -> None:
        core = self._core
        began = time.monotonic()
        held = await core.repository.renew(
            core.replica_id, until_ms=core.clock.now_ms() + core.lease_ms
        )
        for job_id, entry in list(self._held.items()):
            if job_id not in held and entry.stoppable(began):
                log.warning("job %s: its lease was lost; stopping its step here", job_id)
                entry.task.cancel()

    async def sweep_suspended(self) -> None:
        """Drop handlers waiting here for answers that another replica took over."""
        suspended = self._runner.suspended
        if not suspended:
            return
        states = await self._core.repository.job_states(list(suspended))
        me = self._core.replica_id
        for job_id, execution in suspended.items():
            state = states.get(job_id)
            waiting = (
                state is not None
                and state.status is JobStatus.AWAITING_INPUT
                and state.status_id == execution.asked_in
            )
            resuming_here = (
                state is not None
                and state.status is JobStatus.RUNNING
                and state.step == Step.RUN.value
                and state.lease_owner in (None, me)
            )
            if not (waiting or resuming_here):
                self._runner.drop(job_id)

    # -- shutdown --------------------------------------------------------------
    async def stop(self, grace_s: float) -> None:
        """Stop claiming; let steps at work finish within `grace_s`; give the rest back
        (due at once elsewhere, not counted as a failed try)."""
        self._stopping.set()
        self._wake.set()
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        tasks = [entry.task for entry in self._held.values()]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace_s)
        else:
            pending = set()
        unfinished = [job_id for job_id, entry in self._held.items() if entry.task in pending]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._runner.stop()
        if unfinished:
            log.warning(
                "shutdown: %d step(s) did not finish within %.1fs; they are given back",
                len(unfinished),
                grace_s,
            )
            try:
                await self._core.repository.release(self._core.replica_id, unfinished)
            except DomainError as exc:
                log.warning("could not give the steps back (%s): their leases expire", exc)
