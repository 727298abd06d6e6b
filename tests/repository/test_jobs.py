"""The job half of the contract: create, read, transitions, results, events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import StatementError

from agentjobs.server.domain import (
    EventType,
    InvalidStateTransitionError,
    InvoiceStatus,
    JobError,
    JobNotFoundError,
    JobStatus,
    StatusIdMismatchError,
)
from agentjobs.server.repository.base import InvoiceChange, JobRepository, StatusChange
from tests.repository.builders import ManualClock, completed, funds_locked, new_job
from tests.repository.conftest import Backend


async def test_create_stores_an_unpaid_job(repo: JobRepository) -> None:
    new = new_job()
    job = await repo.create(new)
    assert job.status is JobStatus.AWAITING_PAYMENT
    assert job.input_hash == new.input_hash
    assert job.input_data == new.input_data
    assert job.result is None
    assert job.error is None
    assert job.blockchain_identifier == new.payment.blockchain_identifier
    assert job.pay_by_time == new.payment.pay_by_time
    assert job.created_at.tzinfo is not None
    assert job.updated_at == job.created_at


async def test_get_returns_the_created_job(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    assert await repo.get(job.job_id) == job


async def test_get_of_an_unknown_id_raises_job_not_found(repo: JobRepository) -> None:
    with pytest.raises(JobNotFoundError):
        await repo.get("00000000-0000-0000-0000-000000000000")


async def test_returned_jobs_do_not_share_state_with_the_store(repo: JobRepository) -> None:
    new = new_job(input_data={"list": [1, 2]})
    job = await repo.create(new)
    new.input_data["list"].append(3)
    job.input_data["list"].append(4)
    assert (await repo.get(job.job_id)).input_data == {"list": [1, 2]}


async def test_every_backend_returns_what_json_can_hold(repo: JobRepository) -> None:
    job = await repo.create(new_job(input_data={"pair": (1, 2)}))
    assert job.input_data == {"pair": [1, 2]}
    assert await repo.get(job.job_id) == job
    data = {"nested": {"k": ["v"]}}
    event = await repo.record_event(job.job_id, EventType.PAYMENT_STATE_CHANGED, data=data)
    data["nested"]["k"].append("changed by the caller")
    assert event.data == {"nested": {"k": ["v"]}}
    assert (await repo.events(job.job_id))[-1] == event


async def test_create_writes_created_and_payment_requested_events(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    events = await repo.events(job.job_id)
    assert [(e.sequence, e.type, e.status) for e in events] == [
        (1, EventType.CREATED, JobStatus.AWAITING_PAYMENT),
        (2, EventType.PAYMENT_REQUESTED, JobStatus.AWAITING_PAYMENT),
    ]


async def test_a_legal_transition_updates_status_and_advances_updated_at(
    backend: Backend,
) -> None:
    clock = ManualClock()
    repo = await backend.open(clock)
    job = await repo.create(new_job())
    clock.advance()
    running = await repo.update_status(job.job_id, funds_locked())
    assert running.status is JobStatus.RUNNING
    assert running.updated_at == clock.now
    assert running.status_id != job.status_id
    assert await repo.get(job.job_id) == running


async def test_updated_at_advances_even_when_the_clock_stands_still(backend: Backend) -> None:
    repo = await backend.open(ManualClock())
    job = await repo.create(new_job())
    running = await repo.update_status(job.job_id, funds_locked())
    stored = await repo.store_result(job.job_id, "r", "h" * 64)
    done = await repo.update_status(job.job_id, completed())
    assert job.updated_at < running.updated_at < stored.updated_at < done.updated_at
    assert (await repo.get(job.job_id)).updated_at == done.updated_at


async def test_updated_at_advances_when_the_clock_steps_back(backend: Backend) -> None:
    clock = ManualClock()
    repo = await backend.open(clock)
    job = await repo.create(new_job())
    clock.advance(-timedelta(hours=1))
    running = await repo.update_status(job.job_id, funds_locked())
    assert running.updated_at > job.updated_at


async def test_awaiting_payment_to_completed_is_rejected(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    with pytest.raises(InvalidStateTransitionError):
        await repo.update_status(job.job_id, completed())
    assert await repo.get(job.job_id) == job
    assert len(await repo.events(job.job_id)) == 2


async def test_an_expected_status_that_does_not_hold_is_rejected(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    change = StatusChange(to=JobStatus.FAILED, expected=JobStatus.RUNNING, event=EventType.FAILED)
    with pytest.raises(InvalidStateTransitionError):
        await repo.update_status(job.job_id, change)
    assert (await repo.get(job.job_id)).status is JobStatus.AWAITING_PAYMENT


async def test_transition_of_an_unknown_job_raises_job_not_found(repo: JobRepository) -> None:
    with pytest.raises(JobNotFoundError):
        await repo.update_status("no-such-job", funds_locked())


async def test_count_reflects_stored_jobs(repo: JobRepository) -> None:
    assert await repo.count() == 0
    jobs = [await repo.create(new_job()) for _ in range(3)]
    await repo.update_status(jobs[0].job_id, funds_locked())
    assert await repo.count() == 3
    assert await repo.count(JobStatus.AWAITING_PAYMENT) == 2
    assert await repo.count(JobStatus.RUNNING) == 1
    assert await repo.count(JobStatus.COMPLETED) == 0


async def test_running_to_completed_keeps_the_result_and_no_error(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    await repo.update_status(job.job_id, funds_locked())
    done = await repo.update_status(job.job_id, completed("the answer"))
    assert done.status is JobStatus.COMPLETED
    assert done.result == "the answer"
    assert done.error is None
    assert await repo.get(job.job_id) == done


async def test_a_failure_keeps_its_error(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    error = JobError(reason="PAYMENT_EXPIRED", message="not paid")
    failed = await repo.update_status(
        job.job_id, StatusChange(to=JobStatus.FAILED, event=EventType.PAYMENT_EXPIRED, error=error)
    )
    assert failed.error == error
    assert (await repo.get(job.job_id)).error == error


async def test_every_transition_leaves_exactly_one_event(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    schema = {"input_data": [{"id": "answer", "type": "string"}]}
    await repo.update_status(job.job_id, funds_locked())
    asking = await repo.update_status(
        job.job_id,
        StatusChange(
            to=JobStatus.AWAITING_INPUT,
            event=EventType.INPUT_REQUESTED,
            detail="which colour?",
            input_schema=schema,
            input_request_message="which colour?",
        ),
    )
    assert asking.input_schema == schema
    assert asking.input_request_message == "which colour?"
    answered = await repo.update_status(
        job.job_id,
        StatusChange(
            to=JobStatus.RUNNING,
            expected=JobStatus.AWAITING_INPUT,
            event=EventType.INPUT_PROVIDED,
            event_data={"request_id": "r-1", "input_hash": "ab" * 32},
        ),
    )
    # Leaving AWAITING_INPUT clears what was asked.
    assert answered.input_schema is None
    assert answered.input_request_message is None
    await repo.update_status(job.job_id, completed())
    events = await repo.events(job.job_id)
    assert [(e.sequence, e.type, e.status) for e in events] == [
        (1, EventType.CREATED, JobStatus.AWAITING_PAYMENT),
        (2, EventType.PAYMENT_REQUESTED, JobStatus.AWAITING_PAYMENT),
        (3, EventType.FUNDS_LOCKED, JobStatus.RUNNING),
        (4, EventType.INPUT_REQUESTED, JobStatus.AWAITING_INPUT),
        (5, EventType.INPUT_PROVIDED, JobStatus.RUNNING),
        (6, EventType.COMPLETED, JobStatus.COMPLETED),
    ]
    assert events[3].detail == "which colour?"
    assert events[4].data == {"request_id": "r-1", "input_hash": "ab" * 32}
    assert [e.sequence for e in await repo.events(job.job_id, after_sequence=4)] == [5, 6]


async def test_events_of_an_unknown_job_raise_job_not_found(repo: JobRepository) -> None:
    with pytest.raises(JobNotFoundError):
        await repo.events("no-such-job")


async def test_store_result_only_while_running(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    with pytest.raises(InvalidStateTransitionError):
        await repo.store_result(job.job_id, "too early", "h" * 64)
    running = await repo.update_status(job.job_id, funds_locked())
    stored = await repo.store_result(job.job_id, "kept", "ab" * 32)
    assert stored.result == "kept"
    assert stored.status is JobStatus.RUNNING
    assert stored.status_id == running.status_id
    last = (await repo.events(job.job_id))[-1]
    assert (last.type, last.status, last.data) == (
        EventType.RESULT_STORED,
        JobStatus.RUNNING,
        {"result_hash": "ab" * 32},
    )
    await repo.update_status(job.job_id, completed("kept"))
    with pytest.raises(InvalidStateTransitionError):
        await repo.store_result(job.job_id, "too late", "h" * 64)


async def test_record_event_keeps_the_status(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    event = await repo.record_event(
        job.job_id, EventType.PAYMENT_STATE_CHANGED, detail="Disputed", data={"k": [1]}
    )
    assert (event.sequence, event.status, event.detail, event.data) == (
        3,
        JobStatus.AWAITING_PAYMENT,
        "Disputed",
        {"k": [1]},
    )
    assert (await repo.events(job.job_id))[-1] == event
    assert (await repo.get(job.job_id)).status_id == job.status_id


async def test_record_event_of_an_unknown_job_raises_job_not_found(repo: JobRepository) -> None:
    with pytest.raises(JobNotFoundError):
        await repo.record_event("no-such-job", EventType.WITHDRAWN)


async def test_a_reused_request_id_returns_the_first_job(repo: JobRepository) -> None:
    first = await repo.create(new_job(request_id="req-1"))
    again = await repo.create(new_job(request_id="req-1"))
    assert again == first
    assert await repo.count() == 1
    assert len((await repo.list_invoices()).items) == 1
    assert await repo.get_by_request_id("req-1") == first
    assert await repo.get_by_request_id("req-2") is None


async def test_get_by_blockchain_identifiers_leaves_unknown_ids_out(repo: JobRepository) -> None:
    jobs = [await repo.create(new_job()) for _ in range(3)]
    ids = [j.blockchain_identifier for j in jobs[:2]] + ["not-ours"]
    found = await repo.get_by_blockchain_identifiers(ids)
    assert found == {j.blockchain_identifier: j for j in jobs[:2]}
    assert await repo.get_by_blockchain_identifiers([]) == {}


async def test_list_unpaid_expired(repo: JobRepository) -> None:
    late = await repo.create(new_job(pay_by_time=1_000))
    later = await repo.create(new_job(pay_by_time=2_000))
    await repo.create(new_job(pay_by_time=9_000))  # not yet due
    paid = await repo.create(new_job(pay_by_time=500))
    await repo.update_status(paid.job_id, funds_locked())
    due = await repo.list_unpaid_expired(now_ms=5_000)
    assert [j.job_id for j in due] == [late.job_id, later.job_id]
    assert [j.job_id for j in await repo.list_unpaid_expired(now_ms=5_000, limit=1)] == [
        late.job_id
    ]
    assert await repo.list_unpaid_expired(now_ms=1_000) == []


async def test_list_in_status_oldest_first(backend: Backend) -> None:
    clock = ManualClock()
    repo = await backend.open(clock)
    jobs = []
    for _ in range(4):
        jobs.append(await repo.create(new_job()))
        clock.advance()
    await repo.update_status(jobs[2].job_id, funds_locked())
    await repo.update_status(jobs[0].job_id, funds_locked())
    await repo.update_status(
        jobs[0].job_id,
        StatusChange(to=JobStatus.AWAITING_INPUT, event=EventType.INPUT_REQUESTED),
    )
    found = await repo.list_in_status([JobStatus.RUNNING, JobStatus.AWAITING_INPUT])
    assert [j.job_id for j in found] == [jobs[0].job_id, jobs[2].job_id]
    assert await repo.list_in_status([JobStatus.COMPLETED]) == []


async def test_a_change_that_cannot_be_stored_leaves_nothing_behind(repo: JobRepository) -> None:
    job = await repo.create(new_job())
    unstorable = StatusChange(
        to=JobStatus.RUNNING,
        event=EventType.FUNDS_LOCKED,
        event_data={"not json": object()},
        invoice=InvoiceChange(status=InvoiceStatus.PAID),
    )
    with pytest.raises((TypeError, StatementError)):
        await repo.update_status(job.job_id, unstorable)
    assert await repo.get(job.job_id) == job
    assert len(await repo.events(job.job_id)) == 2
    assert (await repo.get_invoice(job.blockchain_identifier)).status is InvoiceStatus.PENDING


async def test_a_stale_status_id_loses_the_compare_and_set(repo: JobRepository) -> None:
    """Two answers to one question (ProvideInput in two processes): the one holding the
    status_id the job no longer has is refused, and nothing is written for it."""
    job = await repo.create(new_job())
    running = await repo.update_status(job.job_id, funds_locked())
    asking = await repo.update_status(
        job.job_id,
        StatusChange(
            to=JobStatus.AWAITING_INPUT,
            event=EventType.INPUT_REQUESTED,
            input_schema={"input_data": []},
        ),
    )
    assert asking.status_id != running.status_id
    answer = StatusChange(
        to=JobStatus.RUNNING,
        expected=JobStatus.AWAITING_INPUT,
        expected_status_id=asking.status_id,
        event=EventType.INPUT_PROVIDED,
    )
    stale = StatusChange(
        to=JobStatus.RUNNING,
        expected=JobStatus.AWAITING_INPUT,
        expected_status_id=running.status_id,
        event=EventType.INPUT_PROVIDED,
    )
    with pytest.raises(StatusIdMismatchError):
        await repo.update_status(job.job_id, stale)
    answered = await repo.update_status(job.job_id, answer)
    assert answered.status is JobStatus.RUNNING
    with pytest.raises(InvalidStateTransitionError):
        await repo.update_status(job.job_id, answer)
    provided = [e for e in await repo.events(job.job_id) if e.type is EventType.INPUT_PROVIDED]
    assert len(provided) == 1
