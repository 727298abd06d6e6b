"""RUN: the agent produces the result (or asks a person)."""

from __future__ import annotations

import logging
from typing import Any

from agentjobs.server.domain import EventType, Invoice, Job
from agentjobs.server.domain.hashing import UnhashableValueError, output_hash
from agentjobs.server.domain.lifecycle import (
    on_agent_failed,
    on_input_requested,
    on_result,
    on_run_claimed,
)
from agentjobs.server.domain.status import JobStatus
from agentjobs.server.services.agent_runner import (
    AgentRunner,
    Crashed,
    Finished,
    Question,
    TimedOut,
)
from agentjobs.server.services.core import StepRun

log = logging.getLogger(__name__)


def storable(text: str) -> str:
    """`text` as every store keeps it: no NUL, no lone surrogate (an agent's error
    message may carry anything)."""
    cleaned = text.replace("\x00", "\ufffd")
    return cleaned.encode("utf-8", "replace").decode("utf-8")


class RunAgent:
    def __init__(self, runner: AgentRunner) -> None:
        self._runner = runner

    async def __call__(self, run: StepRun) -> None:
        core = run.core
        policy = core.policy
        if not on_run_claimed(run.job, run.invoice, core.clock.now(), policy).writes_nothing:
            await run.settle(lambda j, i, n: on_run_claimed(j, i, n, policy))
            return
        job = run.job
        answers = [
            dict(event.data.get("input_data") or {})
            for event in await core.repository.events(job.job_id)
            if event.type is EventType.INPUT_PROVIDED
        ]
        if job.attempt > 1:
            log.info("job %s: running the agent again (try %d)", job.job_id, job.attempt)
        timeout_s = (job.deadline - core.clock.now_ms()) / 1000
        outcome = await self._runner.run(
            job.job_id, job.identifier_from_purchaser, dict(job.input_data), answers, timeout_s
        )
        if isinstance(outcome, Question):
            schema, message = outcome.schema, outcome.message
            job = await run.settle(
                lambda j, i, n: on_input_requested(j, schema, message, n), affinity=True
            )
            execution = self._runner.executions.get(job.job_id)
            if job.status is JobStatus.AWAITING_INPUT and execution is not None:
                execution.asked_in = job.status_id
            else:
                self._runner.drop(job.job_id)  # the job moved on meanwhile
            return
        if isinstance(outcome, Finished):
            await self._finished(run, outcome.result)
            return
        if isinstance(outcome, TimedOut):
            await self._failed(run, "DEADLINE_EXCEEDED", "the agent did not finish in time")
            return
        assert isinstance(outcome, Crashed)
        error = outcome.error
        log.info("job %s: the agent raised", job.job_id, exc_info=error)
        await self._failed(run, "AGENT_ERROR", storable(f"{type(error).__name__}: {error}")[:500])

    async def _finished(self, run: StepRun, result: Any) -> None:
        if not isinstance(result, str):
            await self._failed(
                run, "AGENT_ERROR", f"the agent returned {type(result).__name__}, not str"
            )
            return
        if not result:
            # MIP-003 consumers treat a completed job without a result as broken.
            await self._failed(run, "AGENT_ERROR", "the agent returned an empty result")
            return
        if "\x00" in result:
            # PostgreSQL cannot store it; the buyer's client could not be trusted with it.
            await self._failed(run, "AGENT_ERROR", "the agent returned text with a NUL character")
            return
        try:
            digest = output_hash(result, run.job.identifier_from_purchaser)
        except UnhashableValueError as refused:
            await self._failed(run, "AGENT_ERROR", f"the agent returned {refused.reason}")
            return
        await run.settle(lambda j, i, n: on_result(j, i, result, digest, n))

    async def _failed(self, run: StepRun, reason: str, message: str) -> None:
        policy = run.core.policy

        def decide(job: Job, invoice: Invoice | None, now: Any) -> Any:
            return on_agent_failed(job, invoice, reason, message, now, policy)

        await run.settle(decide)
