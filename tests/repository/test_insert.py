"""Storing a new job and reading it back: get, get_with_invoice, events, request ids."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentjobs.server.domain import (
    Attention,
    EventType,
    JobError,
    JobNotFoundError,
    JobStatus,
)
from agentjobs.server.domain.lifecycle import NewEvent
from agentjobs.server.domain.steps import Step
from agentjobs.server.repository.base import JobRepository, Lease, RequestIdTakenError
from tests.repository.builders import (
    T0,
    T0_MS,
    at,
    created_events,
    insert,
    new_job,
)
from tests.repository.conftest import Backend, sql_rows, sql_value


async def test_insert_stores_the_job_and_its_first_events(repo: JobRepository) -> None:
    job = new_job(request_id="req-1")
    events = [
        NewEvent(EventType.CREATED, "", {"input_hash": job.input_hash, "n": 1}),
        NewEvent(EventType.PAYMENT_STATE_CHANGED, "second", {"list": [1, "two", None]}),
    ]
    stored = await repo.insert(job, events)
    assert stored == job.model_copy(update={"event_count": 2})
    assert await repo.get(job.job_id) == stored
    assert await repo.get_by_request_id("req-1") == stored
    assert await repo.get_by_request_id("req-unknown") is None
    assert await repo.get_with_invoice(job.job_id) == (stored, None)
    assert await repo.invoice_of(stored) is None
    written = await repo.events(job.job_id)
    assert [(e.sequence, e.type, e.status, e.detail, e.data) for e in written] == [
        (
            1,
            EventType.CREATED,
            JobStatus.AWAITING_PAYMENT,
            "",
            {"input_hash": job.input_hash, "n": 1},
        ),
        (
            2,
            EventType.PAYMENT_STATE_CHANGED,
            JobStatus.AWAITING_PAYMENT,
            "second",
            {"list": [1, "two", None]},
        ),
    ]
    assert all(e.job_id == job.job_id and e.created_at == T0 for e in written)
    assert [e.sequence for e in await repo.events(job.job_id, after_sequence=1)] == [2]
    assert await repo.events(job.job_id, after_sequence=2) == []
    assert await repo.count() == 1


async def test_insert_with_a_lease_holds_the_step(repo: JobRepository) -> None:
    job = new_job()
    stored = await repo.insert(job, created_events(job), lease=Lease("api-1", T0_MS + 30_000))
    assert (stored.lease_owner, stored.lease_expires_at) == ("api-1", T0_MS + 30_000)
    read = await repo.get(job.job_id)
    assert read == stored
    assert (read.step, read.run_at, read.attempt) == (Step.REQUEST_PAYMENT, job.run_at, 0)


async def test_a_job_without_events(repo: JobRepository) -> None:
    job = new_job()
    stored = await repo.insert(job, [])
    assert stored.event_count == 0
    assert await repo.events(job.job_id) == []


async def test_unknown_jobs_raise_job_not_found(repo: JobRepository) -> None:
    with pytest.raises(JobNotFoundError):
        await repo.get("no-such-job")
    with pytest.raises(JobNotFoundError):
        await repo.get_with_invoice("no-such-job")
    with pytest.raises(JobNotFoundError):
        await repo.events("no-such-job")


async def test_a_taken_request_id_raises_and_writes_nothing(repo: JobRepository) -> None:
    first = await insert(repo, request_id="req-same")
    second = new_job(request_id="req-same")
    with pytest.raises(RequestIdTakenError) as taken:
        await repo.insert(second, created_events(second))
    assert taken.value.args == ("req-same",)
    assert await repo.get_by_request_id("req-same") == first
    with pytest.raises(JobNotFoundError):
        await repo.get(second.job_id)
    with pytest.raises(JobNotFoundError):
        await repo.events(second.job_id)
    assert await repo.count() == 1
    # The store keeps working after the refusal.
    assert (await insert(repo, request_id="req-other")).request_id == "req-other"


async def test_concurrent_inserts_with_one_request_id_make_one_job(backend: Backend) -> None:
    """As StartJob retried on several replicas at once: one wins, the others are told."""
    repositories = await backend.replicas(4)
    jobs = [new_job(request_id="req-race") for _ in range(12)]
    outcomes = await asyncio.gather(
        *(
            repositories[i % len(repositories)].insert(job, created_events(job))
            for i, job in enumerate(jobs)
        ),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, RequestIdTakenError) for o in outcomes if o is not winners[0])
    assert await repositories[0].count() == 1
    assert await repositories[-1].get_by_request_id("req-race") == winners[0]


async def test_jobs_without_request_id_or_payment_do_not_collide(repo: JobRepository) -> None:
    """NULL request ids and NULL blockchain identifiers (intents, free jobs) are many."""
    stored = [await insert(repo) for _ in range(3)] + [await insert(repo, free=True)]
    assert await repo.count() == 4
    for job in stored:
        assert (await repo.get(job.job_id)).blockchain_identifier == ""
    assert (
        await sql_value(repo, "SELECT COUNT(*) FROM jobs WHERE blockchain_identifier IS NULL") == 4
    )


AWKWARD_INPUT: dict[str, Any] = {
    "nul": "before\x00after",
    "key\x00with nul": "\x00",
    "unicode": "Grüße, 日本語, emoji 🎉, rtl עברית",
    "escapes": 'quote " backslash \\ newline \n tab \t',
    "big": 2**70,
    "negative": -(2**63),
    "float": 0.1,
    "tiny": 5e-324,
    "bool": True,
    "none": None,
    "nested": {"list": [1, [2, [3, {"deep": []}]]], "empty": {}},
}


async def test_input_data_round_trips_and_is_stored_without_nul(repo: JobRepository) -> None:
    """PostgreSQL text cannot hold NUL: the JSON escapes it, and reads give it back."""
    job = await insert(repo, input_data=AWKWARD_INPUT)
    read = await repo.get(job.job_id)
    assert read.input_data == AWKWARD_INPUT
    assert type(read.input_data["big"]) is int
    stored_text = await sql_value(
        repo, "SELECT input_data FROM jobs WHERE job_id = :id", id=job.job_id
    )
    assert isinstance(stored_text, str)
    assert "\x00" not in stored_text
    assert "\\u0000" in stored_text
    (listed,) = (await repo.list()).items
    assert listed.input_data == AWKWARD_INPUT


async def test_every_field_round_trips(repo: JobRepository) -> None:
    job = new_job(
        request_id="req-all",
        status=JobStatus.AWAITING_INPUT,
        blockchain_identifier="bid-all-fields",
        seller_vkey="vkey",
        pay_by_time=T0_MS + 1,
        submit_result_time=T0_MS + 2,
        unlock_time=T0_MS + 3,
        external_dispute_unlock_time=T0_MS + 4,
        pricing="dynamic",
        payment_source_type="Web3CardanoV2",
        payment_source_index=24,
        deadline=T0_MS + 5,
        input_schema={"input_data": [{"id": "colour", "type": "string"}]},
        input_request_message="Which colour?",
        result="a result",
        result_hash="ab" * 32,
        error=JobError(reason="SOMETHING", message="went wrong"),
        attention=Attention(reason="DISPUTED", message="look", action="agentjobs x", since=at(7)),
        recoveries=2,
        step=Step.INPUT_DEADLINE,
        run_at=T0_MS + 5,
        attempt=3,
        version=9,
        event_count=0,
        updated_at=at(8),
    )
    stored = await repo.insert(job, [])
    assert stored == job
    assert await repo.get(job.job_id) == job
    assert (await repo.list()).items == [job]
    assert (await repo.list_attention()).items == [job]
    rows = await sql_rows(repo, "SELECT affinity FROM jobs WHERE job_id = :id", id=job.job_id)
    assert [tuple(row) for row in rows] == [(None,)]
