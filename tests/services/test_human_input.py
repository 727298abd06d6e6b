"""Human input (HITL) through the service layer the gRPC servicer and the HTTP front
share: the status_id guards each question, and every refusal is FAILED_PRECONDITION."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from masumi.helper_functions import create_masumi_input_hash

from agentjobs.server.api.errors import mapping_for
from agentjobs.server.domain import (
    DomainError,
    EventType,
    InvalidArgumentError,
    InvalidStateTransitionError,
    JobStatus,
    StatusIdMismatchError,
)
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.testing import RunningServer
from tests.services.agents import APPROVAL_QUESTION, COLOUR_QUESTION, ScriptedAgent
from tests.services.support import event_types, start, watch_until


def assert_failed_precondition(error: DomainError) -> None:
    assert mapping_for(error).code is grpc.StatusCode.FAILED_PRECONDITION


async def test_questions_are_answered_by_status_id(
    server: RunningServer, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    jobs = server.app.jobs
    job = await start(server, text="tea", mode="ask")
    with pytest.raises(InvalidStateTransitionError) as not_asking:
        await jobs.provide_input(job.job_id, job.status_id, {"colour": "red"})
    assert_failed_precondition(not_asking.value)

    await payment_service.lock_funds(job.blockchain_identifier)
    first = await watch_until(server, job.job_id, lambda j: j.status is JobStatus.AWAITING_INPUT)
    assert (first.input_schema, first.input_request_message) == (COLOUR_QUESTION, "Which colour?")
    for stale in ("not-a-status-id", job.status_id):
        with pytest.raises(StatusIdMismatchError) as mismatch:
            await jobs.provide_input(job.job_id, stale, {"colour": "red"})
        assert_failed_precondition(mismatch.value)
    with pytest.raises(InvalidArgumentError):
        await jobs.provide_input(job.job_id, first.status_id, {})

    receipt = await jobs.provide_input(
        job.job_id, first.status_id, {"colour": "red"}, request_id="colour-answer"
    )
    assert receipt.input_hash == create_masumi_input_hash(
        {"colour": "red"}, job.identifier_from_purchaser
    )
    # A retry of the same answer (its request_id) is answered the same, not refused.
    retried = await jobs.provide_input(
        job.job_id, first.status_id, {"colour": "red"}, request_id="colour-answer"
    )
    assert retried == receipt

    second = await watch_until(
        server,
        job.job_id,
        lambda j: j.status is JobStatus.AWAITING_INPUT and j.status_id != first.status_id,
    )
    assert second.input_schema == APPROVAL_QUESTION
    with pytest.raises(StatusIdMismatchError):
        await jobs.provide_input(job.job_id, first.status_id, {"approve": True})
    await jobs.provide_input(job.job_id, second.status_id, {"approve": True})

    final = await watch_until(server, job.job_id)
    assert final.status is JobStatus.COMPLETED, final.error
    assert final.result == "tea in red, approved"
    assert final.input_schema is None
    with pytest.raises(InvalidStateTransitionError) as finished:
        await jobs.provide_input(job.job_id, final.status_id, {"approve": False})
    assert_failed_precondition(finished.value)

    types = await event_types(server, job.job_id)
    assert types.count(EventType.INPUT_REQUESTED) == 2
    assert types.count(EventType.INPUT_PROVIDED) == 2
    assert len(scripted.calls) == 1, "answers reached the handler that asked"


async def test_two_answers_to_one_question_one_wins(
    server: RunningServer, payment_service: SandboxPaymentService
) -> None:
    """The loser must not slip through as the answer to the handler's next question."""
    jobs = server.app.jobs
    job = await start(server, text="coffee", mode="ask")
    await payment_service.lock_funds(job.blockchain_identifier)
    asking = await watch_until(server, job.job_id, lambda j: j.status is JobStatus.AWAITING_INPUT)

    outcomes = await asyncio.gather(
        *(
            jobs.provide_input(job.job_id, asking.status_id, {"colour": colour}, request_id=colour)
            for colour in ("red", "blue")
        ),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 1, outcomes
    assert isinstance(refused[0], DomainError)
    assert_failed_precondition(refused[0])

    second = await watch_until(
        server,
        job.job_id,
        lambda j: j.status is JobStatus.AWAITING_INPUT and j.status_id != asking.status_id,
    )
    assert second.input_schema == APPROVAL_QUESTION
    await jobs.provide_input(job.job_id, second.status_id, {"approve": False})
    final = await watch_until(server, job.job_id)
    assert final.status is JobStatus.COMPLETED, final.error
    winner = "blue" if isinstance(outcomes[0], BaseException) else "red"
    assert final.result == f"coffee in {winner}, declined"
