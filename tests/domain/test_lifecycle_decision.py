"""decision.py: what a Decision does to a Job (`preview`) and how two decisions chain
(`Decision.then`). The repository writes exactly what `preview` returns."""

from __future__ import annotations

import itertools

import pytest

from agentjobs.server.domain.errors import InvalidStateTransitionError
from agentjobs.server.domain.events import EventType
from agentjobs.server.domain.invoice import InvoiceStatus
from agentjobs.server.domain.job import JobError
from agentjobs.server.domain.lifecycle import (
    NOTHING,
    Continue,
    Decision,
    InvoiceChange,
    NewEvent,
    preview,
    scheduled_step,
)
from agentjobs.server.domain.status import LEGAL_TRANSITIONS, JobStatus
from agentjobs.server.domain.steps import KEEP, Scheduled, Step
from tests.domain.builders import PRICE, T0, T0_MS, S, a_job, at, later, minutes

NOW = later(T0, minutes(10))
NOW_MS = T0_MS + minutes(10)


# -- status ----------------------------------------------------------------------------
def test_a_status_change_gives_the_job_a_new_status_id() -> None:
    job = a_job(S.AWAITING_PAYMENT)
    after = preview(job, Decision(status=S.RUNNING), NOW)
    assert after.status is S.RUNNING
    assert after.status_id != job.status_id


def test_no_status_change_keeps_the_status_id() -> None:
    job = a_job(S.RUNNING)
    assert preview(job, Decision(fields={"result": "r"}), NOW).status_id == job.status_id
    # Naming the status the job already has is not a change either.
    assert preview(job, Decision(status=S.RUNNING), NOW).status_id == job.status_id


def test_every_status_change_gets_a_status_id_of_its_own() -> None:
    job = a_job(S.RUNNING)
    asking = preview(job, Decision(status=S.AWAITING_INPUT), NOW)
    answered = preview(asking, Decision(status=S.RUNNING), NOW)
    assert len({job.status_id, asking.status_id, answered.status_id}) == 3


@pytest.mark.parametrize("target", [S.RUNNING, S.FAILED])
def test_leaving_awaiting_input_clears_the_question(target: JobStatus) -> None:
    job = a_job(S.AWAITING_INPUT)
    assert job.input_schema is not None and job.input_request_message is not None
    after = preview(job, Decision(status=target), NOW)
    assert after.input_schema is None
    assert after.input_request_message is None


def test_entering_awaiting_input_keeps_the_question_the_decision_sets() -> None:
    schema = {"input_data": [{"id": "x", "type": "string"}]}
    after = preview(
        a_job(S.RUNNING),
        Decision(
            status=S.AWAITING_INPUT,
            fields={"input_schema": schema, "input_request_message": "x?"},
        ),
        NOW,
    )
    assert (after.input_schema, after.input_request_message) == (schema, "x?")


ILLEGAL = [
    (current, target)
    for current, target in itertools.product(JobStatus, JobStatus)
    if current is not target and target not in LEGAL_TRANSITIONS[current]
]


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_an_illegal_transition_raises(current: JobStatus, target: JobStatus) -> None:
    with pytest.raises(InvalidStateTransitionError) as raised:
        preview(a_job(current), Decision(status=target), NOW)
    assert raised.value.metadata["current_status"] == current.value
    assert raised.value.metadata["target_status"] == target.value


def test_a_terminal_job_can_still_take_fields_events_and_steps() -> None:
    """A settled invoice, an attention flag, a FOLLOW step: no status change needed."""
    job = a_job(S.COMPLETED)
    after = preview(
        job,
        Decision(
            fields={"recoveries": 1},
            events=(NewEvent(EventType.WITHDRAWN),),
            step=Scheduled(Step.FOLLOW, NOW_MS),
        ),
        NOW,
    )
    assert after.status is S.COMPLETED
    assert after.recoveries == 1
    assert after.step is Step.FOLLOW


# -- the step and its attempts -----------------------------------------------------------
def test_a_new_step_starts_with_no_attempt() -> None:
    job = a_job(S.RUNNING, step=Step.RUN, attempt=2)
    after = preview(job, Decision(step=Scheduled(Step.SUBMIT, NOW_MS + 5)), NOW)
    assert (after.step, after.run_at, after.attempt) == (Step.SUBMIT, NOW_MS + 5, 0)


def test_continuing_with_a_new_step_counts_the_attempt_the_worker_is_making() -> None:
    job = a_job(S.RUNNING, step=Step.RUN, attempt=2)
    after = preview(job, Decision(step=Continue(Scheduled(Step.SUBMIT, NOW_MS))), NOW)
    assert (after.step, after.run_at, after.attempt) == (Step.SUBMIT, NOW_MS, 1)


def test_continuing_with_the_same_step_keeps_the_attempt() -> None:
    job = a_job(S.RUNNING, step=Step.SUBMIT, attempt=3)
    after = preview(job, Decision(step=Continue(Scheduled(Step.SUBMIT, NOW_MS))), NOW)
    assert after.attempt == 3


def test_rescheduling_the_same_step_keeps_counting_its_attempts() -> None:
    """A retry is the same step later: its attempts go on counting (the backoff grows)."""
    job = a_job(S.RUNNING, step=Step.SUBMIT, attempt=3)
    after = preview(job, Decision(step=Scheduled(Step.SUBMIT, NOW_MS + 4_000)), NOW)
    assert (after.step, after.run_at, after.attempt) == (Step.SUBMIT, NOW_MS + 4_000, 3)


def test_no_step_left_clears_the_schedule() -> None:
    job = a_job(S.COMPLETED, step=Step.FOLLOW, run_at=NOW_MS, attempt=4)
    after = preview(job, Decision(step=None), NOW)
    assert (after.step, after.run_at, after.attempt) == (None, None, 0)


def test_keep_leaves_the_step_as_it_is() -> None:
    job = a_job(S.RUNNING, step=Step.RUN, run_at=T0_MS, attempt=2)
    after = preview(job, Decision(fields={"recoveries": 1}), NOW)
    assert (after.step, after.run_at, after.attempt) == (Step.RUN, T0_MS, 2)


def test_scheduled_step_reads_through_continue() -> None:
    scheduled = Scheduled(Step.SUBMIT, NOW_MS)
    assert scheduled_step(Decision(step=Continue(scheduled))) == scheduled
    assert scheduled_step(Decision(step=scheduled)) == scheduled
    assert scheduled_step(Decision(step=None)) is None
    assert scheduled_step(NOTHING) is KEEP


# -- version and time ----------------------------------------------------------------------
def test_every_write_bumps_the_version() -> None:
    job = a_job(S.RUNNING, version=7)
    once = preview(job, Decision(fields={"recoveries": 1}), NOW)
    twice = preview(once, Decision(fields={"recoveries": 2}), NOW)
    assert (once.version, twice.version) == (8, 9)


def test_updated_at_moves_forward() -> None:
    assert preview(a_job(S.RUNNING), Decision(fields={"recoveries": 1}), NOW).updated_at == NOW


def test_updated_at_never_goes_back() -> None:
    """A replica whose clock is behind does not move the job back in time."""
    job = a_job(S.RUNNING, updated_at=NOW)
    assert preview(job, Decision(fields={"recoveries": 1}), T0).updated_at == NOW


def test_fields_are_set_as_decided() -> None:
    error = JobError(reason="X", message="y")
    after = preview(a_job(S.RUNNING), Decision(status=S.FAILED, fields={"error": error}), NOW)
    assert after.error == error


# -- writes_nothing --------------------------------------------------------------------------
def test_nothing_writes_nothing() -> None:
    assert NOTHING.writes_nothing
    assert Decision().writes_nothing


@pytest.mark.parametrize(
    "decision",
    [
        Decision(status=S.RUNNING),
        Decision(fields={"recoveries": 1}),
        Decision(new_invoice=PRICE),
        Decision(invoice=InvoiceChange(next_action="")),
        Decision(events=(NewEvent(EventType.STARTED),)),
        Decision(step=None),
        Decision(step=Scheduled(Step.RUN, 0)),
        Decision(step=Continue(Scheduled(Step.RUN, 0))),
    ],
)
def test_anything_decided_is_written(decision: Decision) -> None:
    assert not decision.writes_nothing


# -- Decision.then -----------------------------------------------------------------------------
def test_then_keeps_both_decisions_events_and_warnings_in_order() -> None:
    first = Decision(events=(NewEvent(EventType.FUNDS_LOCKED),), warnings=("a",))
    second = Decision(events=(NewEvent(EventType.STARTED),), warnings=("b",))
    both = first.then(second)
    assert [e.type for e in both.events] == [EventType.FUNDS_LOCKED, EventType.STARTED]
    assert both.warnings == ("a", "b")


def test_then_the_later_status_and_fields_win() -> None:
    first = Decision(status=S.RUNNING, fields={"recoveries": 1, "result": "r"})
    second = Decision(status=S.COMPLETED, fields={"recoveries": 2})
    both = first.then(second)
    assert both.status is S.COMPLETED
    assert both.fields == {"recoveries": 2, "result": "r"}


def test_then_keeps_the_earlier_status_when_the_later_names_none() -> None:
    assert Decision(status=S.FAILED).then(Decision(fields={"x": 1})).status is S.FAILED


def test_then_keep_does_not_undo_an_earlier_step() -> None:
    follow = Scheduled(Step.FOLLOW, 5)
    assert Decision(step=follow).then(NOTHING).step == follow


def test_then_a_later_step_wins_even_when_it_is_none() -> None:
    assert Decision(step=Scheduled(Step.FOLLOW, 5)).then(Decision(step=None)).step is None
    assert Decision(step=None).then(Decision(step=Scheduled(Step.RUN, 1))).step == Scheduled(
        Step.RUN, 1
    )


def test_then_merges_invoice_changes_field_by_field() -> None:
    first = Decision(invoice=InvoiceChange(status=InvoiceStatus.PAID, on_chain_state="FundsLocked"))
    second = Decision(invoice=InvoiceChange(next_action="error: x"))
    merged = first.then(second).invoice
    assert merged == InvoiceChange(
        status=InvoiceStatus.PAID, on_chain_state="FundsLocked", next_action="error: x"
    )
    # A later status wins; an empty next_action ("" = cleared) is a value, not "unset".
    later_change = first.then(
        Decision(invoice=InvoiceChange(status=InvoiceStatus.CONFIRMED, next_action=""))
    ).invoice
    assert later_change is not None
    assert later_change.status is InvoiceStatus.CONFIRMED
    assert later_change.next_action == ""
    assert later_change.on_chain_state == "FundsLocked"


def test_then_without_invoice_changes_has_none() -> None:
    assert Decision(status=S.RUNNING).then(Decision()).invoice is None
    only_later = Decision().then(Decision(invoice=InvoiceChange(next_action="")))
    assert only_later.invoice == InvoiceChange(next_action="")


def test_then_keeps_a_new_invoice() -> None:
    assert Decision(new_invoice=PRICE).then(Decision(status=S.RUNNING)).new_invoice == PRICE


def test_then_with_nothing_is_the_same_decision() -> None:
    decision = Decision(
        status=S.RUNNING,
        fields={"recoveries": 1},
        invoice=InvoiceChange(status=InvoiceStatus.PAID),
        events=(NewEvent(EventType.FUNDS_LOCKED),),
        step=Scheduled(Step.RUN, 1),
        warnings=("w",),
    )
    assert decision.then(NOTHING) == decision
    assert NOTHING.then(decision) == decision


def test_with_step_replaces_only_the_step() -> None:
    decision = Decision(status=S.FAILED, events=(NewEvent(EventType.FAILED),))
    replaced = decision.with_step(None)
    assert replaced.step is None
    assert (replaced.status, replaced.events) == (decision.status, decision.events)


def test_preview_of_a_chained_decision_is_the_two_applied_one_after_the_other() -> None:
    job = a_job(S.AWAITING_PAYMENT)
    first = Decision(status=S.RUNNING, step=Scheduled(Step.RUN, T0_MS))
    second = Decision(fields={"recoveries": 1})
    chained = preview(job, first.then(second), at(T0_MS))
    stepwise = preview(preview(job, first, at(T0_MS)), second, at(T0_MS))
    ignore = {"status_id", "version"}
    assert chained.model_dump(exclude=ignore) == stepwise.model_dump(exclude=ignore)
