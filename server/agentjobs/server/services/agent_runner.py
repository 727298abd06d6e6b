"""Runs the agent's handler for one job: async handlers on the event loop, synchronous
ones on a worker thread; bounded concurrency; a person's questions; the deadline.

A handler that asks a person stays suspended here (its coroutine or thread waits) while
the job waits without a lease. When the answer's RUN step is claimed by this replica the
handler resumes where it stopped; if another replica claims it (or this one restarted),
the handler runs again there from the stored input, its earlier answers replayed. The
suspended one here is then dropped (see Worker's sweep). In-memory state is a cache of
work in progress, never the truth: the answers are in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agentjobs.server import telemetry
from agentjobs.server.agent import Agent, current_input_requester

log = logging.getLogger(__name__)

# Threads a synchronous handler may occupy while it waits for a person, beyond the
# ones computing (which the concurrency bounds).
MAX_WAITING_THREADS = 256


@dataclass(frozen=True)
class Question:
    schema: dict[str, Any]
    message: str | None


@dataclass(frozen=True)
class Finished:
    result: Any


@dataclass(frozen=True)
class Crashed:
    error: BaseException


@dataclass(frozen=True)
class TimedOut:
    pass


Outcome = Question | Finished | Crashed | TimedOut


@dataclass(eq=False)
class Execution:
    """One run of the handler for one job."""

    job_id: str
    replay: list[dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    questions: asyncio.Queue[Question] = field(default_factory=asyncio.Queue)
    task: asyncio.Future[Any] | None = None
    waiting: asyncio.Future[dict[str, Any]] | None = None
    # Answers the handler has received so far (replayed and live).
    answers_used: int = 0
    # The status id of the job when the handler asked (while suspended).
    asked_in: str | None = None
    abandoned: bool = False

    async def __call__(self, schema: dict[str, Any], message: str | None) -> dict[str, Any]:
        """request_input() inside the handler."""
        if self.abandoned:
            raise RuntimeError(f"job {self.job_id} is no longer run here")
        if self.replay:
            self.answers_used += 1
            return self.replay.pop(0)
        answer: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self.waiting = answer
        await self.questions.put(Question(schema, message))
        return await answer


class AgentRunner:
    def __init__(self, agent: Agent, *, concurrency: int) -> None:
        self.agent = agent
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._computing = 0
        self._threads = ThreadPoolExecutor(
            max_workers=concurrency + MAX_WAITING_THREADS, thread_name_prefix="agent"
        )
        handler = agent.handler
        self._is_sync = not (
            inspect.iscoroutinefunction(handler)
            or inspect.iscoroutinefunction(type(handler).__call__)
        )
        self.executions: dict[str, Execution] = {}

    @property
    def computing(self) -> int:
        """Handlers computing now (not those waiting for a person)."""
        return self._computing

    @property
    def concurrency(self) -> int:
        return self._concurrency

    @property
    def suspended(self) -> dict[str, Execution]:
        return {job_id: e for job_id, e in self.executions.items() if e.waiting is not None}

    async def run(
        self,
        job_id: str,
        identifier_from_purchaser: str,
        input_data: dict[str, Any],
        answers: list[dict[str, Any]],
        timeout_s: float,
    ) -> Outcome:
        """Run the handler, or resume the one suspended here with the newest answer,
        until it finishes, asks a person, fails or runs out of time."""
        execution = self.executions.get(job_id)
        resumable = (
            execution is not None
            and execution.waiting is not None
            and not execution.waiting.done()
            and len(answers) == execution.answers_used + 1
        )
        async with self._slot():
            if execution is not None and resumable:
                assert execution.waiting is not None
                execution.answers_used += 1
                execution.asked_in = None
                waiting, execution.waiting = execution.waiting, None
                waiting.set_result(answers[-1])
            else:
                if execution is not None:
                    self.drop(job_id)
                execution = self._start(job_id, identifier_from_purchaser, input_data, answers)
            return await self._drive(execution, timeout_s)

    @contextlib.asynccontextmanager
    async def _slot(self) -> Any:
        async with self._slots:
            self._computing += 1
            try:
                yield
            finally:
                self._computing -= 1

    def _start(
        self,
        job_id: str,
        identifier_from_purchaser: str,
        input_data: dict[str, Any],
        answers: list[dict[str, Any]],
    ) -> Execution:
        loop = asyncio.get_running_loop()
        execution = Execution(job_id=job_id, replay=list(answers), loop=loop)
        token = current_input_requester.set(execution)
        try:
            context = contextvars.copy_context()
        finally:
            current_input_requester.reset(token)
        handler = self.agent.handler
        if self._is_sync:
            call = functools.partial(
                context.run, _traced_call, job_id, handler, identifier_from_purchaser, input_data
            )
            execution.task = loop.run_in_executor(self._threads, call)
        else:
            # The task runs in the copied context, where request_input finds this run.
            execution.task = loop.create_task(
                _traced_run(job_id, handler, identifier_from_purchaser, input_data),
                context=context,
            )
        self.executions[job_id] = execution
        return execution

    async def _drive(self, execution: Execution, timeout_s: float) -> Outcome:
        assert execution.task is not None
        asked = asyncio.ensure_future(execution.questions.get())
        try:
            done, _ = await asyncio.wait(
                {execution.task, asked},
                timeout=max(0.0, timeout_s),
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            # The step was cancelled (lease lost, shutdown): the handler goes with it.
            self.drop(execution.job_id)
            raise
        finally:
            if not asked.done():
                asked.cancel()
        if asked in done and not asked.cancelled():
            return asked.result()
        if execution.task in done:
            self.executions.pop(execution.job_id, None)
            error = execution.task.exception()
            if error is not None:
                return Crashed(error)
            return Finished(execution.task.result())
        self.drop(execution.job_id)
        return TimedOut()

    def drop(self, job_id: str) -> None:
        """Stop the handler of this job (a thread cannot be stopped: it is abandoned and
        its result ignored; its next request_input raises)."""
        execution = self.executions.pop(job_id, None)
        if execution is None:
            return
        execution.abandoned = True
        if execution.waiting is not None and not execution.waiting.done():
            execution.waiting.cancel()
        if execution.task is not None and not execution.task.done():
            execution.task.cancel()

    async def drain(self, grace_s: float) -> bool:
        """Wait up to `grace_s` for handlers at work (not those waiting for a person)."""
        working = [
            e.task
            for e in self.executions.values()
            if e.task is not None and e.waiting is None and not e.task.done()
        ]
        if not working:
            return True
        _done, pending = await asyncio.wait(working, timeout=grace_s)
        return not pending

    def stop(self) -> None:
        for job_id in list(self.executions):
            self.drop(job_id)
        self._threads.shutdown(wait=False, cancel_futures=True)


def _traced_call(job_id: str, handler: Any, identifier: str, input_data: Any) -> Any:
    with telemetry.span("agent.run", job_id=job_id):
        return handler(identifier, input_data)


async def _traced_run(job_id: str, handler: Any, identifier: str, input_data: Any) -> Any:
    async with telemetry.span("agent.run", job_id=job_id):
        return await handler(identifier, input_data)
