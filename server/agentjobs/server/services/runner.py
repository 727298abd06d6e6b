"""Runs the agent for paid jobs, stores the result, submits its hash, completes the job.

Crash safety: the result is stored before it is submitted; a job found RUNNING at
start-up with a stored result is submitted again only if the payment service has not
already taken its hash; one without a result is re-run from its stored input, replaying
the human input it had already been given. Handlers may therefore run more than once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from masumi.helper_functions import create_masumi_output_hash

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
        return len(self._tasks)

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
        """Wait up to `grace_s` for running handlers; True if all finished."""
        tasks = list(self._tasks.values())
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
        try:
            await self._run_job(job_id, recovering)
        except asyncio.CancelledError:
            raise
        except InvalidStateTransitionError as exc:
            # Someone else moved the job (refund, cancel, another process): not ours now.
            log.info("job %s changed under the runner: %s", job_id, exc.message)
        except Exception:
            log.exception("job %s: runner failed; it will be recovered at next start", job_id)

    async def _run_job(self, job_id: str, recovering: bool) -> None:
        async with self._slots:
            job = await self._book.repository.get(job_id)
            if job.status not in (JobStatus.RUNNING, JobStatus.AWAITING_INPUT):
                return
            if job.result is not None:
                await self._submit(job, check_first=recovering)
                return
            deadline_ms = job.submit_result_time - self._margin_ms
            if self._clock_ms() >= deadline_ms:
                await self._fail(
                    job, "DEADLINE_EXCEEDED", "no time left to run before submitResultTime"
                )
                return
            replay = await self._answers_given(job_id) if recovering else []
            if job.status is JobStatus.AWAITING_INPUT:
                job = await self._book.update_status(
                    job_id,
                    StatusChange(
                        to=JobStatus.RUNNING,
                        expected=JobStatus.AWAITING_INPUT,
                        event=EventType.STARTED,
                        detail="restarted after a server restart",
                    ),
                )
            else:
                await self._book.record_event(
                    job_id,
                    EventType.STARTED,
                    detail="restarted after a server restart" if recovering else "",
                )
            result = await self._call_handler(job, deadline_ms, replay)
            if result is None:
                return
            result_hash = create_masumi_output_hash(result, job.identifier_from_purchaser)
            job = await self._book.store_result(job_id, result, result_hash)
        await self._submit(job, check_first=False)

    async def _answers_given(self, job_id: str) -> list[dict[str, Any]]:
        events = await self._book.repository.events(job_id)
        return [
            dict(e.data.get("input_data") or {})
            for e in events
            if e.type is EventType.INPUT_PROVIDED
        ]

    async def _call_handler(
        self, job: Job, deadline_ms: int, replay: list[dict[str, Any]]
    ) -> str | None:
        async def requester(schema: dict[str, Any], message: str | None) -> dict[str, Any]:
            if replay:
                return replay.pop(0)
            return await self._wait_for_input(job.job_id, schema, message)

        token = current_input_requester.set(requester)
        timeout_s = max(0.0, (deadline_ms - self._clock_ms()) / 1000)
        try:
            result = await asyncio.wait_for(
                self._agent.handler(job.identifier_from_purchaser, dict(job.input_data)),
                timeout_s,
            )
        except TimeoutError:
            await self._fail(job, "DEADLINE_EXCEEDED", "the agent did not finish in time")
            return None
        except (asyncio.CancelledError, InvalidStateTransitionError, JobNotFoundError):
            raise
        except Exception as exc:
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
        return result

    async def _wait_for_input(
        self, job_id: str, schema: dict[str, Any], message: str | None
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
        self._slots.release()
        try:
            answer = await future
        finally:
            await self._slots.acquire()
        validate_input(answer, schema)
        return answer

    async def _submit(self, job: Job, *, check_first: bool) -> None:
        assert job.result is not None
        result_hash = create_masumi_output_hash(job.result, job.identifier_from_purchaser)
        last_chance_ms = job.submit_result_time - CHAIN_SUBMIT_CUTOFF_MS
        delay = self._retry_base_s
        if check_first and await self._already_accepted(job, result_hash):
            await self._complete(job, result_hash, "accepted before the restart")
            return
        while True:
            if self._clock_ms() >= last_chance_ms:
                await self._fail(
                    job, "SUBMIT_DEADLINE_PASSED", "the result could not be submitted in time"
                )
                return
            try:
                await self._gateway.submit_result(
                    job.blockchain_identifier, job.result, job.identifier_from_purchaser
                )
            except (PaymentServiceConflictError, PaymentServiceUnavailableError) as exc:
                log.warning(
                    "job %s: submit-result not accepted yet (%s); retrying", job.job_id, exc.reason
                )
                if await self._already_accepted(job, result_hash):
                    await self._complete(job, result_hash, "accepted on an earlier try")
                    return
            except PaymentConfigurationError:
                log.error("job %s: the payment service refuses our API key; retrying", job.job_id)
            except (PaymentServiceRejectedError, PaymentNotFoundError) as exc:
                await self._fail(job, "SUBMISSION_REJECTED", exc.message)
                return
            else:
                await self._complete(job, result_hash, "")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)

    async def _already_accepted(self, job: Job, result_hash: str) -> bool:
        try:
            state = await self._gateway.get_payment(job.blockchain_identifier)
        except DomainError as exc:
            log.warning("job %s: cannot read the payment (%s)", job.job_id, exc.reason)
            return False
        return result_already_accepted(state, result_hash)

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
