"""Applying decisions: compare-and-set on the version, fences, invoices, events, the
next step, and pages of decisions in one transaction."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from agentjobs.server.domain import (
    Amount,
    EventType,
    InvalidStateTransitionError,
    InvoiceStatus,
    Job,
    JobError,
    JobNotFoundError,
    JobStatus,
    StaleJobError,
)
from agentjobs.server.domain.lifecycle import (
    NOTHING,
    Continue,
    Decision,
    InvoiceChange,
    NewEvent,
    on_input_requested,
    on_payment,
    on_payment_requested,
    on_result,
)
from agentjobs.server.domain.payment import OnChainState
from agentjobs.server.domain.steps import Scheduled, Step
from agentjobs.server.repository.base import Fence, JobRepository, Lease, Watermark
from tests.repository.builders import (
    BIG_LOVELACE,
    POLICY,
    T0,
    T0_MS,
    at,
    at_ms,
    created_events,
    event_only,
    funds_locked,
    insert,
    new_job,
    payment,
    running,
    terms,
    with_payment,
)
from tests.repository.conftest import Backend, sql_value


async def _affinity(repo: JobRepository, job: Job) -> str | None:
    value = await sql_value(repo, "SELECT affinity FROM jobs WHERE job_id = :id", id=job.job_id)
    return None if value is None else str(value)


async def _claimed(repo: JobRepository, owner: str = "w1", *, now_ms: int = T0_MS) -> Job:
    (job,) = await repo.claim(owner, now_ms=now_ms, lease_ms=30_000, limit=1, affinity_grace_ms=0)
    return job


# -- what the lifecycle decides, written --------------------------------------------
async def test_a_payment_request_attaches_the_payment_and_creates_the_invoice(
    repo: JobRepository,
) -> None:
    intent = new_job()
    intent = await repo.insert(intent, [], lease=Lease("api-1", T0_MS + 30_000))
    amounts = (Amount(amount=BIG_LOVELACE), Amount(amount=7, unit="usdm-policy"))
    later = at(2)
    paid_terms = terms(amounts=amounts, source_type="Web3CardanoV2", source_index=3)
    decision = on_payment_requested(intent, paid_terms, later, POLICY)
    job = await repo.apply(intent, decision, later)
    assert job == await repo.get(intent.job_id)
    assert job.blockchain_identifier == paid_terms.blockchain_identifier
    assert (job.pay_by_time, job.submit_result_time) == (
        paid_terms.pay_by_time,
        paid_terms.submit_result_time,
    )
    assert (job.payment_source_type, job.payment_source_index) == ("Web3CardanoV2", 3)
    assert job.deadline == POLICY.agent_deadline(paid_terms.submit_result_time)
    assert (job.version, job.event_count, job.updated_at) == (1, 1, later)
    # The intent's lease belonged to REQUEST_PAYMENT; the new step is free.
    assert (job.step, job.run_at, job.attempt) == (
        Step.EXPIRE,
        paid_terms.pay_by_time + POLICY.expiry_grace_ms,
        0,
    )
    assert (job.lease_owner, job.lease_expires_at) == (None, None)
    _, invoice = await repo.get_with_invoice(job.job_id)
    assert invoice is not None
    assert invoice == await repo.invoice_of(job)
    assert (invoice.blockchain_identifier, invoice.job_id) == (
        job.blockchain_identifier,
        job.job_id,
    )
    assert (invoice.status, invoice.on_chain_state, invoice.next_action) == (
        InvoiceStatus.PENDING,
        None,
        "",
    )
    assert invoice.amounts == amounts
    assert invoice.payment_source_type == "Web3CardanoV2"
    assert (invoice.created_at, invoice.updated_at, invoice.paid_at) == (later, later, None)
    (event,) = await repo.events(job.job_id)
    assert (event.sequence, event.type, event.status, event.created_at) == (
        1,
        EventType.PAYMENT_REQUESTED,
        JobStatus.AWAITING_PAYMENT,
        later,
    )


async def test_an_invoice_without_amounts(repo: JobRepository) -> None:
    job = await with_payment(repo, amounts=())
    _, invoice = await repo.get_with_invoice(job.job_id)
    assert invoice is not None
    assert invoice.amounts == ()


async def test_funds_locked_starts_the_job_and_pays_the_invoice(repo: JobRepository) -> None:
    job = await with_payment(repo)
    paid_at = at(10)
    locked = await funds_locked(repo, job, now=paid_at)
    assert locked.status is JobStatus.RUNNING
    assert locked.status_id != job.status_id
    assert (locked.step, locked.run_at, locked.attempt) == (Step.RUN, at_ms(10), 0)
    assert await repo.get(job.job_id) == locked
    _, invoice = await repo.get_with_invoice(job.job_id)
    assert invoice is not None
    assert (invoice.status, invoice.on_chain_state) == (InvoiceStatus.PAID, "FundsLocked")
    assert (invoice.paid_at, invoice.updated_at) == (paid_at, paid_at)
    events = await repo.events(job.job_id)
    assert [(e.sequence, e.type, e.status) for e in events] == [
        (1, EventType.CREATED, JobStatus.AWAITING_PAYMENT),
        (2, EventType.PAYMENT_REQUESTED, JobStatus.AWAITING_PAYMENT),
        (3, EventType.FUNDS_LOCKED, JobStatus.RUNNING),
    ]


async def test_paid_at_is_set_once_and_updated_at_never_goes_back(repo: JobRepository) -> None:
    job = await running(repo, now=at(10))
    again = Decision(
        invoice=InvoiceChange(status=InvoiceStatus.PAID, next_action="error: parked"),
        events=(NewEvent(EventType.PAYMENT_STATE_CHANGED, "paid again"),),
    )
    job = await repo.apply(job, again, at(20))
    _, invoice = await repo.get_with_invoice(job.job_id)
    assert invoice is not None
    assert (invoice.paid_at, invoice.updated_at) == (at(10), at(20))
    assert (invoice.status, invoice.on_chain_state, invoice.next_action) == (
        InvoiceStatus.PAID,
        "FundsLocked",  # None in the change leaves the field as it is
        "error: parked",
    )
    # A writer whose clock is behind: updated_at stays, "" clears the error.
    earlier = Decision(invoice=InvoiceChange(next_action=""), events=event_only().events)
    job = await repo.apply(job, earlier, at(15))
    _, invoice = await repo.get_with_invoice(job.job_id)
    assert invoice is not None
    assert (invoice.next_action, invoice.updated_at) == ("", at(20))
    assert job.updated_at == at(20) == (await repo.get(job.job_id)).updated_at


async def test_an_invoice_change_of_a_job_without_payment_is_ignored(repo: JobRepository) -> None:
    job = await insert(repo)
    decision = Decision(
        invoice=InvoiceChange(status=InvoiceStatus.PAID), events=event_only().events
    )
    after = await repo.apply(job, decision, at(1))
    assert after.event_count == 2
    assert await repo.get_with_invoice(job.job_id) == (after, None)
    assert (await repo.list_invoices()).items == []


async def test_events_continue_from_the_event_count(repo: JobRepository) -> None:
    job = await insert(repo)
    for n in range(3):
        two = Decision(
            events=(
                NewEvent(EventType.PAYMENT_STATE_CHANGED, f"{n}a", {"n": n}),
                NewEvent(EventType.PAYMENT_STATE_CHANGED, f"{n}b"),
            )
        )
        job = await repo.apply(job, two, at(n + 1))
        assert job.event_count == 1 + 2 * (n + 1)
    events = await repo.events(job.job_id)
    assert [e.sequence for e in events] == list(range(1, 8))
    assert [e.detail for e in events[1:]] == ["0a", "0b", "1a", "1b", "2a", "2b"]
    assert [e.created_at for e in events] == [T0, at(1), at(1), at(2), at(2), at(3), at(3)]
    assert events[1].data == {"n": 0}
    assert (await repo.get(job.job_id)).event_count == 7


async def test_events_carry_the_status_the_decision_leaves(repo: JobRepository) -> None:
    job = await running(repo)
    failed = Decision(
        status=JobStatus.FAILED,
        fields={"error": JobError(reason="AGENT_ERROR", message="boom")},
        events=(NewEvent(EventType.FAILED, "boom", {"reason": "AGENT_ERROR"}),),
        step=None,
    )
    job = await repo.apply(job, failed, at(1))
    last = (await repo.events(job.job_id))[-1]
    assert (last.type, last.status, last.data) == (
        EventType.FAILED,
        JobStatus.FAILED,
        {"reason": "AGENT_ERROR"},
    )
    assert (await repo.get(job.job_id)).error == JobError(reason="AGENT_ERROR", message="boom")


async def test_a_result_of_a_free_job_completes_it(repo: JobRepository) -> None:
    job = await insert(repo, free=True)
    claimed = await _claimed(repo)
    assert claimed.job_id == job.job_id
    decision = on_result(claimed, None, "the result", "ab" * 32, at(1))
    done = await repo.apply(claimed, decision, at(1), fence=Fence("w1", 1))
    assert done == await repo.get(job.job_id)
    assert (done.status, done.result, done.result_hash) == (
        JobStatus.COMPLETED,
        "the result",
        "ab" * 32,
    )
    assert (done.step, done.run_at, done.attempt, done.lease_owner) == (None, None, 0, None)
    assert await repo.get_with_invoice(job.job_id) == (done, None)


async def test_a_result_continues_with_the_submission_under_the_same_lease(
    repo: JobRepository,
) -> None:
    await running(repo)
    claimed = await _claimed(repo)
    decision = on_result(claimed, None, "the result", "cd" * 32, at(1))
    assert isinstance(decision.step, Continue)
    lease = Lease("w1", at_ms(31))
    stored = await repo.apply(claimed, decision, at(1), fence=Fence("w1", 1), lease=lease)
    assert stored == await repo.get(claimed.job_id)
    assert (stored.step, stored.run_at, stored.attempt) == (Step.SUBMIT, at_ms(1), 1)
    assert (stored.lease_owner, stored.lease_expires_at) == ("w1", at_ms(31))
    assert stored.result == "the result"
    # The lease still fences the next write: the submission's.
    submitted = Decision(events=event_only().events, step=Scheduled(Step.FOLLOW, at_ms(900)))
    assert (await repo.apply(stored, submitted, at(2), fence=Fence("w1", 1))).step is Step.FOLLOW


# -- compare-and-set and fences -------------------------------------------------------
async def test_a_stale_job_writes_nothing(repo: JobRepository) -> None:
    job = await running(repo)
    _, invoice = await repo.get_with_invoice(job.job_id)
    moved = await repo.apply(job, event_only("first writer"), at(1))
    stale = Decision(
        status=JobStatus.FAILED,
        fields={"error": JobError(reason="X", message="late")},
        invoice=InvoiceChange(status=InvoiceStatus.REFUNDED, on_chain_state="RefundWithdrawn"),
        events=(NewEvent(EventType.FAILED, "late"),),
        step=None,
    )
    with pytest.raises(StaleJobError) as refused:
        await repo.apply(job, stale, at(2))
    assert refused.value.job_id == job.job_id
    assert await repo.get_with_invoice(job.job_id) == (moved, invoice)
    assert [e.detail for e in await repo.events(job.job_id)][-1] == "first writer"
    assert len(await repo.events(job.job_id)) == moved.event_count


async def test_a_stale_payment_request_creates_no_invoice(repo: JobRepository) -> None:
    intent = await insert(repo)
    await repo.apply(intent, event_only(), at(1))
    with pytest.raises(StaleJobError):
        await repo.apply(intent, on_payment_requested(intent, terms(), at(2), POLICY), at(2))
    assert (await repo.get(intent.job_id)).blockchain_identifier == ""
    assert (await repo.list_invoices()).items == []
    assert await sql_value(repo, "SELECT COUNT(*) FROM invoice_amounts") == 0


async def test_racing_writers_on_one_version_have_one_winner(backend: Backend) -> None:
    """Ten writers (on the durable stores: five repositories, as five replicas) decide
    on the same version of a job: one write counts, the others are told it is stale."""
    writers = await backend.replicas(5)
    job = await running(writers[0])
    outcomes = await asyncio.gather(
        *(writers[i % 5].apply(job, event_only(str(i)), at(1)) for i in range(10)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, Job)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, StaleJobError) for o in outcomes if o is not winners[0])
    assert len(await writers[-1].events(job.job_id)) == job.event_count + 1
    assert await writers[-1].get(job.job_id) == winners[0]


async def test_a_fenced_write_needs_the_lease_owner_and_attempt(repo: JobRepository) -> None:
    await running(repo)
    claimed = await _claimed(repo, "w1")
    assert (claimed.lease_owner, claimed.attempt) == ("w1", 1)
    for fence in (Fence("w2", 1), Fence("w1", 0), Fence("w1", 2)):
        with pytest.raises(StaleJobError):
            await repo.apply(claimed, event_only(), at(1), fence=fence)
    assert (await repo.get(claimed.job_id)).event_count == claimed.event_count
    written = await repo.apply(claimed, event_only("mine"), at(1), fence=Fence("w1", 1))
    assert written.event_count == claimed.event_count + 1


async def test_a_write_with_a_lost_lease_fails(repo: JobRepository) -> None:
    """w1's lease expired and w2 took the step over: w1's late result is refused (the
    take-over of a run also wrote its STARTED event, so the version moved too)."""
    await running(repo)
    mine = await _claimed(repo, "w1")
    lease_end = mine.lease_expires_at
    assert lease_end is not None
    (theirs,) = await repo.claim(
        "w2", now_ms=lease_end + 1, lease_ms=30_000, limit=1, affinity_grace_ms=0
    )
    assert (theirs.job_id, theirs.attempt, theirs.version) == (mine.job_id, 2, mine.version + 1)
    late = on_result(mine, None, "late result", "ee" * 32, at(40))
    with pytest.raises(StaleJobError):
        await repo.apply(mine, late, at(40), fence=Fence("w1", 1), lease=Lease("w1", at_ms(70)))
    now = await repo.get(mine.job_id)
    assert (now.result, now.lease_owner, now.attempt, now.event_count) == (
        None,
        "w2",
        2,
        mine.event_count + 1,
    )
    assert await repo.apply(theirs, late, at(41), fence=Fence("w2", 2))


async def test_an_unfenced_write_ignores_the_lease(repo: JobRepository) -> None:
    """API calls and the monitor hold no lease: the version alone orders them."""
    await running(repo)
    claimed = await _claimed(repo, "w1")
    written = await repo.apply(claimed, event_only("monitor"), at(1))
    assert (written.lease_owner, written.step) == ("w1", Step.RUN)


async def test_nothing_to_write_writes_nothing(repo: JobRepository) -> None:
    job = await running(repo)
    await repo.apply(job, event_only(), at(1))
    # Even on a stale job: NOTHING is not a write (no CAS, no error).
    assert await repo.apply(job, NOTHING, at(2)) is job
    assert (await repo.get(job.job_id)).version == job.version + 1


async def test_an_illegal_transition_writes_nothing(repo: JobRepository) -> None:
    job = await with_payment(repo)
    with pytest.raises(InvalidStateTransitionError):
        await repo.apply(
            job, Decision(status=JobStatus.COMPLETED, events=event_only().events), at(1)
        )
    assert await repo.get(job.job_id) == job


async def test_warnings_are_logged_after_the_write(
    repo: JobRepository, caplog: pytest.LogCaptureFixture
) -> None:
    job = await running(repo)
    decision = Decision(events=event_only().events, warnings=("first warning", "second warning"))
    with caplog.at_level(logging.WARNING, logger="agentjobs.server.repository.store"):
        written = await repo.apply(job, decision, at(1))
    assert written.event_count == job.event_count + 1
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert logged == [f"job {job.job_id}: first warning", f"job {job.job_id}: second warning"]


# -- the next step -------------------------------------------------------------------
async def test_keep_leaves_step_attempt_lease_and_affinity(repo: JobRepository) -> None:
    await running(repo)
    claimed = await _claimed(repo, "w1")
    kept = await repo.apply(claimed, event_only(), at(1), fence=Fence("w1", 1), affinity="w9")
    read = await repo.get(claimed.job_id)
    assert read == kept
    assert (read.step, read.run_at, read.attempt) == (claimed.step, claimed.run_at, 1)
    assert (read.lease_owner, read.lease_expires_at) == ("w1", claimed.lease_expires_at)
    assert await _affinity(repo, read) is None


async def test_a_new_step_is_free_has_no_attempts_and_takes_the_affinity(
    repo: JobRepository,
) -> None:
    await running(repo)
    claimed = await _claimed(repo, "w1")
    decision = on_input_requested(claimed, {"input_data": []}, "Which colour?", at(1))
    assert decision.step == Scheduled(Step.INPUT_DEADLINE, claimed.deadline)
    waiting = await repo.apply(claimed, decision, at(1), fence=Fence("w1", 1), affinity="w1")
    read = await repo.get(claimed.job_id)
    assert read == waiting
    assert read.status is JobStatus.AWAITING_INPUT
    assert (read.step, read.run_at, read.attempt) == (Step.INPUT_DEADLINE, claimed.deadline, 0)
    assert (read.lease_owner, read.lease_expires_at) == (None, None)
    assert await _affinity(repo, read) == "w1"
    # An answer's step may keep it (it goes back to the handler that waits for it).
    answered = await repo.apply(
        read, Decision(step=Scheduled(Step.RUN, at_ms(2))), at(2), keep_affinity=True
    )
    assert await _affinity(repo, answered) == "w1"
    # A later new step without affinity clears it.
    again = await repo.apply(answered, Decision(step=Scheduled(Step.RUN, at_ms(3))), at(3))
    assert await _affinity(repo, again) is None


async def test_the_same_step_again_keeps_counting_attempts(repo: JobRepository) -> None:
    await running(repo)
    claimed = await _claimed(repo, "w1")
    retry = Decision(step=Scheduled(Step.RUN, at_ms(60)))
    later = await repo.apply(claimed, retry, at(1), fence=Fence("w1", 1))
    read = await repo.get(claimed.job_id)
    assert read == later
    assert (read.step, read.run_at, read.attempt) == (Step.RUN, at_ms(60), 1)
    assert (read.lease_owner, read.lease_expires_at) == (None, None)
    (again,) = await repo.claim("w2", now_ms=at_ms(60), lease_ms=1000, limit=1, affinity_grace_ms=0)
    assert again.attempt == 2


async def test_no_step_clears_the_schedule(repo: JobRepository) -> None:
    await running(repo)
    claimed = await _claimed(repo, "w1")
    await repo.apply(claimed, Decision(step=Scheduled(Step.RUN, at_ms(1))), at(1), affinity="w1")
    read = await repo.get(claimed.job_id)
    assert await _affinity(repo, read) == "w1"
    done = await repo.apply(read, Decision(step=None), at(2))
    read = await repo.get(claimed.job_id)
    assert read == done
    assert (read.step, read.run_at, read.attempt) == (None, None, 0)
    assert (read.lease_owner, read.lease_expires_at) == (None, None)
    assert await _affinity(repo, read) is None
    assert await repo.next_due() is None


async def test_continue_keeps_the_lease_and_counts_one_attempt(repo: JobRepository) -> None:
    await running(repo)
    claimed = await _claimed(repo, "w1")
    await repo.apply(claimed, Decision(step=Scheduled(Step.RUN, at_ms(0))), at(0), affinity="w1")
    # (affinity set by a previous wait; a Continue leaves it)
    claimed = await _claimed(repo, "w1")
    assert claimed.attempt == 2
    new_step = Decision(step=Continue(Scheduled(Step.SUBMIT, at_ms(1))))
    moved = await repo.apply(
        claimed, new_step, at(1), fence=Fence("w1", 2), lease=Lease("w1", at_ms(99))
    )
    read = await repo.get(claimed.job_id)
    assert read == moved
    assert (read.step, read.run_at, read.attempt) == (Step.SUBMIT, at_ms(1), 1)
    assert (read.lease_owner, read.lease_expires_at) == ("w1", at_ms(99))
    # The same step again: the attempt stays; no lease given: the lease stays.
    same = Decision(step=Continue(Scheduled(Step.SUBMIT, at_ms(5))))
    again = await repo.apply(read, same, at(2), fence=Fence("w1", 1))
    read = await repo.get(claimed.job_id)
    assert read == again
    assert (read.step, read.run_at, read.attempt) == (Step.SUBMIT, at_ms(5), 1)
    assert (read.lease_owner, read.lease_expires_at) == ("w1", at_ms(99))


async def test_a_kept_step_keeps_its_affinity(repo: JobRepository) -> None:
    await running(repo)
    claimed = await _claimed(repo, "w1")
    waiting = await repo.apply(
        claimed,
        on_input_requested(claimed, {}, None, at(1)),
        at(1),
        fence=Fence("w1", 1),
        affinity="w1",
    )
    await repo.apply(waiting, event_only(), at(2))  # KEEP
    assert await _affinity(repo, waiting) == "w1"


# -- pages of decisions (the monitor) ------------------------------------------------
async def test_a_page_is_written_in_one_transaction_without_its_stale_decisions(
    repo: JobRepository,
) -> None:
    first, second, third = [await with_payment(repo) for _ in range(3)]
    invoices = {
        j.job_id: (await repo.get_with_invoice(j.job_id))[1] for j in (first, second, third)
    }
    moved = await repo.apply(second, event_only("meanwhile"), at(1))
    decided = [
        (j, on_payment(j, invoices[j.job_id], payment(j, OnChainState.FUNDS_LOCKED), at(2), POLICY))
        for j in (first, second, third)
    ]
    mark = Watermark(last_update=at(2), cursor_id="cursor-9")
    outcomes = await repo.apply_page(decided, at(2), watermarks=[("payments:Preprod", mark)])
    assert isinstance(outcomes[1], StaleJobError)
    assert outcomes[1].job_id == second.job_id
    for job, outcome in ((first, outcomes[0]), (third, outcomes[2])):
        assert isinstance(outcome, Job)
        assert outcome == await repo.get(job.job_id)
        assert outcome.status is JobStatus.RUNNING
        _, invoice = await repo.get_with_invoice(job.job_id)
        assert invoice is not None and invoice.status is InvoiceStatus.PAID
        assert (await repo.events(job.job_id))[-1].type is EventType.FUNDS_LOCKED
    assert await repo.get(second.job_id) == moved
    _, untouched = await repo.get_with_invoice(second.job_id)
    assert untouched == invoices[second.job_id]
    assert [e.detail for e in await repo.events(second.job_id)][-1] == "meanwhile"
    assert await repo.get_watermark("payments:Preprod") == mark


# A decision that fails must not leave its savepoint open behind it (SQLAlchemy warns,
# and the SQLite writer rolls the caller's work back over it).
@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")
async def test_a_page_that_fails_writes_nothing(repo: JobRepository) -> None:
    good, bad = await with_payment(repo), await with_payment(repo)
    mark = Watermark(last_update=at(5))
    illegal = Decision(status=JobStatus.COMPLETED, events=event_only().events)
    with pytest.raises(InvalidStateTransitionError):
        await repo.apply_page(
            [(good, event_only("good")), (bad, illegal)], at(5), watermarks=[("w", mark)]
        )
    assert await repo.get(good.job_id) == good
    assert await repo.get_watermark("w") is None
    # The store goes on writing pages.
    assert await repo.apply_page([(good, event_only("again"))], at(6)) != []
    assert (await repo.get(good.job_id)).event_count == good.event_count + 1


async def test_a_page_of_watermarks_alone(repo: JobRepository) -> None:
    first = Watermark(last_update=at(1), cursor_id="a")
    second = Watermark(last_update=at(2), cursor_id=None)
    assert await repo.apply_page([], at(3), watermarks=[("one", first), ("two", second)]) == []
    assert await repo.get_watermark("one") == first
    assert await repo.get_watermark("two") == second


async def test_a_page_with_a_decision_that_writes_nothing(repo: JobRepository) -> None:
    job = await with_payment(repo)
    outcomes = await repo.apply_page([(job, NOTHING)], at(1))
    assert outcomes == [job]
    assert (await repo.get(job.job_id)).version == job.version


# -- payment intents -----------------------------------------------------------------
async def test_an_intent_without_payment_can_be_deleted(repo: JobRepository) -> None:
    intent = await insert(repo, request_id="req-gone")
    kept = await insert(repo)
    await repo.delete_intent(intent)
    with pytest.raises(JobNotFoundError):
        await repo.get(intent.job_id)
    with pytest.raises(JobNotFoundError):
        await repo.events(intent.job_id)
    assert await repo.get_by_request_id("req-gone") is None
    assert (
        await sql_value(
            repo, "SELECT COUNT(*) FROM job_events WHERE job_id = :id", id=intent.job_id
        )
        == 0
    )
    assert await repo.get(kept.job_id) == kept
    # The request id is free again.
    assert (await insert(repo, request_id="req-gone")).request_id == "req-gone"


async def test_delete_intent_is_a_compare_and_set(repo: JobRepository) -> None:
    intent = await insert(repo)
    moved = await repo.apply(intent, event_only(), at(1))
    with pytest.raises(StaleJobError):
        await repo.delete_intent(intent)
    assert await repo.get(intent.job_id) == moved
    assert len(await repo.events(intent.job_id)) == 2  # the events were not deleted either


async def test_a_job_with_a_payment_is_never_deleted(repo: JobRepository) -> None:
    job = await with_payment(repo)
    with pytest.raises(StaleJobError):
        await repo.delete_intent(job)
    assert await repo.get(job.job_id) == job
    assert len(await repo.events(job.job_id)) == 2
    assert (await repo.get_with_invoice(job.job_id))[1] is not None


async def test_the_clock_moving_back_keeps_updated_at(repo: JobRepository) -> None:
    job = await running(repo, now=at(100))
    written = await repo.apply(job, event_only(), at(100) - timedelta(seconds=50))
    assert written.updated_at == at(100)
    assert (await repo.get(job.job_id)).updated_at == at(100)


async def test_a_new_step_decided_on_a_job_read_before_its_claim_starts_at_no_attempts(
    repo: JobRepository,
) -> None:
    """The monitor read the job, a worker claimed its step (a claim of a step other than
    a run does not move the version), then the monitor's decision gave the job another
    step: that step has not been tried yet, whatever the claim counted for the old one."""
    ran = await running(repo)
    await repo.apply(ran, Decision(step=Scheduled(Step.SUBMIT, T0_MS)), at(0))
    (seen,) = await repo.claim("w0", now_ms=T0_MS, lease_ms=1, limit=1, affinity_grace_ms=0)
    await repo.release("w0", [seen.job_id])
    seen = await repo.get(seen.job_id)
    assert (seen.step, seen.attempt) == (Step.SUBMIT, 0)
    claimed = await _claimed(repo, "w1")
    assert (claimed.attempt, claimed.version) == (1, seen.version)
    follow = Decision(events=event_only().events, step=Scheduled(Step.FOLLOW, at_ms(60)))
    written = await repo.apply(seen, follow, at(1))
    read = await repo.get(seen.job_id)
    assert read == written
    assert (read.step, read.attempt, read.lease_owner) == (Step.FOLLOW, 0, None)
    (first_try,) = await repo.claim(
        "w2", now_ms=at_ms(60), lease_ms=1_000, limit=1, affinity_grace_ms=0
    )
    assert first_try.attempt == 1
    # The same for a decision that ends the schedule.
    await repo.release("w2", [first_try.job_id])
    seen = await repo.get(seen.job_id)
    await _claimed(repo, "w3", now_ms=at_ms(60))
    ended = await repo.apply(seen, Decision(step=None), at(2))
    assert await repo.get(seen.job_id) == ended
    assert (ended.step, ended.attempt) == (None, 0)


async def test_an_intent_taken_over_is_not_deleted_by_its_first_holder(repo: JobRepository) -> None:
    """StartJob on replica A holds the intent; its POST /payment outlives the lease and
    replica B takes the intent over (a take-over does not move the version) and asks
    for the payment itself. A's POST is then refused: A must not delete the intent
    under B, or B's payment would belong to no job."""
    intent = new_job()
    intent = await repo.insert(intent, created_events(intent), lease=Lease("a", T0_MS + 1_000))
    taken = await repo.take_over(intent, "b", now_ms=T0_MS + 1_001, until_ms=T0_MS + 31_000)
    assert taken is not None and taken.version == intent.version
    with pytest.raises(StaleJobError):
        await repo.delete_intent(intent)
    assert await repo.get(intent.job_id) == taken
    assert len(await repo.events(intent.job_id)) == 1
    # B, the holder now, may still give up on it.
    await repo.delete_intent(taken)
    with pytest.raises(JobNotFoundError):
        await repo.get(intent.job_id)


async def test_claiming_a_run_writes_its_started_event(repo: JobRepository) -> None:
    """A run's claim is the agent starting: its STARTED event comes with the claim (no
    transaction of its own), and so does a new version; a retry says which try it is."""
    job = await running(repo)
    first = await _claimed(repo, "w1")
    assert (first.version, first.event_count) == (job.version + 1, job.event_count + 1)
    started = (await repo.events(job.job_id))[-1]
    assert (started.type, started.status, started.detail) == (
        EventType.STARTED,
        JobStatus.RUNNING,
        "on w1",
    )
    (again,) = await repo.claim(
        "w2", now_ms=T0_MS + 30_001, lease_ms=30_000, limit=1, affinity_grace_ms=0
    )
    assert again.attempt == 2
    assert (await repo.events(job.job_id))[-1].detail == "run again (try 2) on w2"
