"""Runs the agent for paid jobs, stores the result, submits its hash, completes the job.

Crash safety: the result is stored before it is submitted; a job found RUNNING at
start-up with a stored result is submitted again only if the payment service has not
already taken its hash; one without a result is re-run from its stored input, replaying
the human input it had already been given. A job found AWAITING_INPUT keeps waiting,
with the same status_id, and is re-run once the person answers. Handlers may therefore
run more than once.

A result is never submitted twice: after any submit-result whose outcome is unknown (a
409, a timeout, a lost connection, a restart) the payment is read first, and the result
is submitted again only if the service has not taken it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from masumi.helper_functions import create_masumi_output_hash

from agentjobs.server import telemetry
from agentjobs.server.agent import Agent, current_input_requester
from agentjobs.server.domain import (
    DomainError,
    EventType,
    InvalidStateTransitionError,
    Job,
    JobError,
    JobNotFoundError,
    JobStatus,
    PaymentConfigurationError,
    PaymentNotFoundError,
    PaymentServiceConflictError,
    PaymentServiceRejectedError,
    PaymentServiceUnavailableError,
)
from agentjobs.server.payments.gateway import OnChainState, PaymentGateway, PaymentState
from agentjobs.server.repository.base import StatusChange
from agentjobs.server.services.book import JobBook
from agentjobs.server.services.input_validation import validate_input
from agentjobs.server.services.slots import Slot

log = logging.getLogger(__name__)

# The chain job ignores submit-result requests made less than 5 minutes before
# submitResultTime: past this point, a submission cannot succeed.
CHAIN_SUBMIT_CUTOFF_MS = 5 * 60 * 1000

_ACCEPTED_STATES = frozenset(
    {
        OnChainState.RESULT_SUBMITTED,
        OnChainState.WITHDRAWN,
        OnChainState.WITHDRAW_AUTHORIZED,
        OnChainState.DISPUTED_WITHDRAWN,
    }
)


def result_already_accepted(state: PaymentState, result_hash: str) -> bool:
    return state.on_chain_state in _ACCEPTED_STATES or result_hash in (
        state.next_action_result_hash,
        state.result_hash,
    )


class JobRunner:
    def __init__(
        self,
        book: JobBook,
        gateway: PaymentGateway,
        agent: Agent,
        *,
        concurrency: int,
        submit_margin_s: float,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        retry_base_s: float = 0.2,
        retry_max_s: float = 30.0,
    ) -> None:
        self._book = book
        self._gateway = gateway
        self._agent = agent
        self._slots = asyncio.Semaphore(concurrency)
        self._margin_ms = int(submit_margin_s * 1000)
        self._clock_ms = clock_ms
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._waiting_input: dict[str, asyncio.Future[dict[str, Any]]] = {}

    @property
    def active(self) -> int:
        """Jobs being worked on here now (not those waiting for a person)."""
        return len(self._tasks) - len(self._waiting_input)

    def enqueue(self, job_id: str, *, recovering: bool = False) -> None:
        """Run the job unless it is already running in this process."""
        if job_id in self._tasks:
            return
        task = asyncio.create_task(self._run(job_id, recovering), name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _task: self._tasks.pop(job_id, None))

    async def recover(self) -> int:
        """Pick up, after a restart, every job that was running or awaiting input."""
        jobs = await self._book.repository.list_in_status(
            [JobStatus.RUNNING, JobStatus.AWAITING_INPUT]
        )
        for job in jobs:
            self.enqueue(job.job_id, recovering=True)
        return len(jobs)

    def deliver_input(self, job_id: str, input_data: dict[str, Any]) -> bool:
        """Hand provided input to the handler waiting for it. False if none waits here."""
        future = self._waiting_input.pop(job_id, None)
        if future is None or future.done():
            return False
        future.set_result(input_data)
        return True

    def cancel(self, job_id: str) -> None:
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()

    async def drain(self, grace_s: float) -> bool:
        """Wait up to `grace_s` for the handlers at work; True if all finished. Jobs
        waiting for a person are not waited for: after the restart they wait again,
        with the same status_id."""
        tasks = [task for job_id, task in self._tasks.items() if job_id not in self._waiting_input]
        if not tasks:
            return True
        _done, pending = await asyncio.wait(tasks, timeout=grace_s)
        return not pending

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- one job -------------------------------------------------------------
    async def _run(self, job_id: str, recovering: bool) -> None:
        """Drive the job until it is settled here. An unexpected failure (the database,
        a malformed answer) is logged and the job driven again from what is stored,
        instead of leaving it RUNNING until the next restart."""
        delay = self._retry_base_s
        while True:
            try:
                await self._run_job(job_id, recovering)
                return
            except asyncio.CancelledError:
                raise
            except InvalidStateTransitionError as exc:
                # Someone else moved the job (refund, cancel, another process): not ours now.
                log.info("job %s changed under the runner: %s", job_id, exc.message)
                return
            except JobNotFoundError:
                log.error("job %s vanished from the repository while it was run", job_id)
                return
            except Exception:
                log.exception("job %s: the runner failed; trying again in %.1fs", job_id, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)
            recovering = True

    async def _run_job(self, job_id: str, recovering: bool) -> None:
        job = await self._book.repository.get(job_id)
        if job.status is JobStatus.AWAITING_INPUT:
            # Enqueued with no handler alive to ask (a restart): wait for the person
            # without touching the job, so the status_id they were given stays valid.
            answered = await self._answer_for_gone_handler(job)
            if answered is None:
                return
            job, recovering = answered, True
        if job.status is not JobStatus.RUNNING:
            return
        if job.result is not None:
            # Stored before an interruption: it may have reached the service already.
            await self._submit(job, check_first=True)
            return
        slot = Slot(self._slots)
        await slot.take()
        try:
            produced = await self._produce_result(job_id, recovering, slot)
        finally:
            slot.give_back()
        if produced is not None:
            await self._submit(produced, check_first=False)

    async def _answer_for_gone_handler(self, job: Job) -> Job | None:
        """Wait until ProvideInput answers `job` (then the job as it is now) or its
        deadline passes (then None, the job failed)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        # Registered before the job is read again, so an answer arriving in between
        # finds a waiter (or is already visible in what is read).
        self._waiting_input[job.job_id] = future
        try:
            job = await self._book.repository.get(job.job_id)
            if job.status is JobStatus.AWAITING_INPUT:
                remaining_s = (job.submit_result_time - self._margin_ms - self._clock_ms()) / 1000
                try:
                    async with asyncio.timeout(max(0.0, remaining_s)):
                        await future
                except TimeoutError:
                    await self._fail(job, "DEADLINE_EXCEEDED", "no input arrived in time")
                    return None
                job = await self._book.repository.get(job.job_id)
        finally:
            if self._waiting_input.get(job.job_id) is future:
                del self._waiting_input[job.job_id]
        return job

    async def _produce_result(self, job_id: str, recovering: bool, slot: Slot) -> Job | None:
        """Run the handler (holding `slot`) and store its result; None if the job failed
        or moved on meanwhile."""
        # Read again: the job may have moved while it waited for a slot.
        job = await self._book.repository.get(job_id)
        if job.status is not JobStatus.RUNNING or job.result is not None:
            return None
        deadline_ms = job.submit_result_time - self._margin_ms
        if self._clock_ms() >= deadline_ms:
            await self._fail(
                job, "DEADLINE_EXCEEDED", "no time left to run before submitResultTime"
            )
            return None
        replay = await self._answers_given(job_id) if recovering else []
        await self._book.record_event(
            job_id,
            EventType.STARTED,
            detail="run again after an interruption" if recovering else "",
        )
        result = await self._call_handler(job, deadline_ms, replay, slot)
        if result is None:
            return None
        result_hash = create_masumi_output_hash(result, job.identifier_from_purchaser)
        return await self._book.store_result(job_id, result, result_hash)

    async def _answers_given(self, job_id: str) -> list[dict[str, Any]]:
        events = await self._book.repository.events(job_id)
        return [
            dict(e.data.get("input_data") or {})
            for e in events
            if e.type is EventType.INPUT_PROVIDED
        ]

    async def _call_handler(
        self, job: Job, deadline_ms: int, replay: list[dict[str, Any]], slot: Slot
    ) -> str | None:
        async def requester(schema: dict[str, Any], message: str | None) -> dict[str, Any]:
            if replay:
                return replay.pop(0)
            return await self._wait_for_input(job.job_id, schema, message, slot)

        token = current_input_requester.set(requester)
        deadline = asyncio.timeout(max(0.0, (deadline_ms - self._clock_ms()) / 1000))
        try:
            async with deadline, telemetry.span("agent.run", job_id=job.job_id):
                result = await self._agent.handler(
                    job.identifier_from_purchaser, dict(job.input_data)
                )
        except (asyncio.CancelledError, InvalidStateTransitionError, JobNotFoundError):
            raise
        except Exception as exc:
            # A TimeoutError the agent raised itself (its own HTTP call, say) is its
            # error, not our deadline.
            if isinstance(exc, TimeoutError) and deadline.expired():
                await self._fail(job, "DEADLINE_EXCEEDED", "the agent did not finish in time")
                return None
            log.exception("job %s: agent failed", job.job_id)
            await self._fail(job, "AGENT_ERROR", f"{type(exc).__name__}: {exc}"[:500])
            return None
        finally:
            current_input_requester.reset(token)
            self._waiting_input.pop(job.job_id, None)
        if not isinstance(result, str):
            await self._fail(
                job, "AGENT_ERROR", f"the agent returned {type(result).__name__}, not str"
            )
            return None
        if not result:
            # MIP-003 consumers treat a completed job without a result as broken.
            await self._fail(job, "AGENT_ERROR", "the agent returned an empty result")
            return None
        return result

    async def _wait_for_input(
        self, job_id: str, schema: dict[str, Any], message: str | None, slot: Slot
    ) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        # Registered before the status change, so an answer can never find no waiter.
        self._waiting_input[job_id] = future
        await self._book.update_status(
            job_id,
            StatusChange(
                to=JobStatus.AWAITING_INPUT,
                expected=JobStatus.RUNNING,
                event=EventType.INPUT_REQUESTED,
                detail=message or "",
                input_schema=schema,
                input_request_message=message,
            ),
        )
        # A person may take long: free the slot for other jobs meanwhile.
        slot.give_back()
        answer = await future
        await slot.take()
        validate_input(answer, schema)
        return answer

    async def _submit(self, job: Job, *, check_first: bool) -> None:
        """Submit the stored result's hash until the service takes it. `check_first`:
        an earlier try may have reached the service, so look before submitting."""
        assert job.result is not None
        result_hash = create_masumi_output_hash(job.result, job.identifier_from_purchaser)
        last_chance_ms = job.submit_result_time - CHAIN_SUBMIT_CUTOFF_MS
        delay = self._retry_base_s
        unsure = check_first
        while True:
            if unsure:
                state = await self._payment_state(job)
                if state is not None and result_already_accepted(state, result_hash):
                    await self._complete(job, result_hash, "accepted on an earlier try")
                    return
                # Not readable: still unsure, so do not submit blindly; ask again later.
                unsure = state is None
            if self._clock_ms() >= last_chance_ms:
                await self._fail(
                    job, "SUBMIT_DEADLINE_PASSED", "the result could not be submitted in time"
                )
                return
            if not unsure:
                try:
                    await self._gateway.submit_result(
                        job.blockchain_identifier, job.result, job.identifier_from_purchaser
                    )
                except (PaymentServiceConflictError, PaymentServiceUnavailableError) as exc:
                    log.warning(
                        "job %s: submit-result not accepted yet (%s); retrying",
                        job.job_id,
                        exc.reason,
                    )
                    # The request may have been taken even so (a lost answer).
                    unsure = True
                except PaymentConfigurationError:
                    log.error(
                        "job %s: the payment service refuses our API key; retrying", job.job_id
                    )
                except (PaymentServiceRejectedError, PaymentNotFoundError) as exc:
                    await self._fail(job, "SUBMISSION_REJECTED", exc.message)
                    return
                else:
                    await self._complete(job, result_hash, "")
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)

    async def _payment_state(self, job: Job) -> PaymentState | None:
        try:
            return await self._gateway.get_payment(job.blockchain_identifier)
        except DomainError as exc:
            log.warning("job %s: cannot read the payment (%s)", job.job_id, exc.reason)
            return None

    async def _complete(self, job: Job, result_hash: str, detail: str) -> None:
        await self._book.record_event(
            job.job_id,
            EventType.RESULT_SUBMITTED,
            detail=detail,
            data={"result_hash": result_hash},
        )
        await self._book.update_status(
            job.job_id,
            StatusChange(
                to=JobStatus.COMPLETED, expected=JobStatus.RUNNING, event=EventType.COMPLETED
            ),
        )

    async def _fail(self, job: Job, reason: str, message: str) -> None:
        current = await self._book.repository.get(job.job_id)
        if current.status.is_terminal:
            return
        await self._book.update_status(
            job.job_id,
            StatusChange(
                to=JobStatus.FAILED,
                expected=current.status,
                event=EventType.FAILED,
                detail=message,
                error=JobError(reason=reason, message=message),
            ),
        )
