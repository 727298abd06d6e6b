"""work_rules: what a job does when its steps run (the agent, the submission, recovery,
refunds), when a person answers, and when the operator commands.

Upstream facts these rules answer to (masumi-payment-service 0.28.0):
- submit-result (`src/routes/api/payments/submit-result/index.ts:37-67`): only from
  FundsLocked / RefundRequested / Disputed with NextAction WaitingForExternalAction, else
  404; 403 for any API key but the one that created the payment.
- authorize-refund (`src/routes/api/payments/authorize-refund/index.ts:30-61`): only from
  Disputed / RefundRequested with WaitingForExternalAction, else 404; 403 likewise. The V1
  chain job executes it only from Disputed
  (`packages/payment-source-v1/src/services/payments/authorize-refund/service.ts:55-58`).
- error-state-recovery (`src/routes/api/payments/error-state-recovery/index.ts:81-121`):
  400 for a payment with no onChainState, not in WaitingForManualAction, with no
  errorType, or (retryPreviousAction) already Withdrawn / RefundWithdrawn /
  DisputedWithdrawn.
"""

from __future__ import annotations

import pytest

from agentjobs.server.domain.errors import (
    FundsAlreadyLockedError,
    NotAwaitingInputError,
    OperationNotPossibleError,
    StatusIdMismatchError,
)
from agentjobs.server.domain.events import EventType
from agentjobs.server.domain.invoice import Invoice, InvoiceStatus
from agentjobs.server.domain.job import Job
from agentjobs.server.domain.lifecycle import (
    NOTHING,
    Answer,
    AttentionReason,
    Continue,
    Decision,
    InvoiceChange,
    free_job_started,
    on_agent_failed,
    on_cancel,
    on_input,
    on_input_deadline,
    on_input_requested,
    on_operator_recover,
    on_operator_refund,
    on_payment,
    on_recover_claimed,
    on_recover_refused,
    on_recovered,
    on_refund_authorized,
    on_refund_claimed,
    on_refund_refused_key,
    on_result,
    on_run_claimed,
    on_submit_claimed,
    on_submit_refused_key,
    on_submit_rejected,
    on_submitted,
    preview,
    retry_later,
    submission_taken,
)
from agentjobs.server.domain.lifecycle.work_rules import refund_possible
from agentjobs.server.domain.payment import (
    SETTLED_STATES,
    NextAction,
    OnChainState,
    PaymentSourceType,
)
from agentjobs.server.domain.payment import PaymentState as Payment
from agentjobs.server.domain.status import JobStatus
from agentjobs.server.domain.steps import Scheduled, Step
from tests.domain.builders import (
    DEADLINE,
    LAST_SUBMIT,
    MINUTE,
    OTHER_HASH,
    POLICY,
    RESULT,
    RESULT_HASH,
    SOURCES,
    SUBMIT_BY,
    T0_MS,
    V1,
    V2,
    Action,
    S,
    State,
    a_job,
    an_invoice,
    apply,
    at,
    attention,
    free_job,
    minutes,
    payment,
    running_with_result,
    submission_failed,
)

NOW_MS = T0_MS + minutes(40)
NOW = at(NOW_MS)
PAID = an_invoice(InvoiceStatus.PAID, State.FUNDS_LOCKED)


def attention_reason(job: Job, decision: Decision) -> str | None:
    after = preview(job, decision, NOW)
    return after.attention.reason if after.attention is not None else None


# =====================================================================================
# The agent
# =====================================================================================
def test_a_free_job_runs_at_once_with_a_deadline_of_its_own() -> None:
    fields, step = free_job_started(NOW, POLICY)
    assert fields == {"deadline": NOW_MS + POLICY.free_deadline_ms, "pricing": "free"}
    assert step == Scheduled(Step.RUN, NOW_MS)


def test_run_claimed_runs_the_agent() -> None:
    assert on_run_claimed(a_job(S.RUNNING, attempt=1), PAID, NOW, POLICY) is NOTHING


@pytest.mark.parametrize("status", [S.AWAITING_PAYMENT, S.AWAITING_INPUT, S.COMPLETED, S.FAILED])
def test_run_claimed_for_a_job_not_running_has_nothing_to_do(status: JobStatus) -> None:
    assert on_run_claimed(a_job(status), PAID, NOW, POLICY) == Decision(step=None)


def test_run_claimed_with_the_result_stored_goes_on_to_submit_it() -> None:
    """The agent finished before the process stopped: never run it twice."""
    job = a_job(S.RUNNING, result=RESULT, result_hash=RESULT_HASH, attempt=2)
    decision = on_run_claimed(job, PAID, NOW, POLICY)
    assert decision == Decision(step=Continue(Scheduled(Step.SUBMIT, NOW_MS)))
    assert preview(job, decision, NOW).attempt == 1


def test_run_claimed_past_the_deadline_fails_the_job() -> None:
    decision = on_run_claimed(a_job(S.RUNNING, attempt=1), PAID, at(DEADLINE), POLICY)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "DEADLINE_EXCEEDED"
    assert len(decision.warnings) == 1  # paid: what becomes of the money


def test_run_claimed_once_more_than_allowed_gives_the_agent_up() -> None:
    job = a_job(S.RUNNING, attempt=POLICY.max_run_attempts + 1)
    decision = on_run_claimed(job, PAID, NOW, POLICY)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "AGENT_INTERRUPTED"
    assert f"started {POLICY.max_run_attempts} times" in decision.fields["error"].message


def test_run_claimed_for_the_last_allowed_time_runs_the_agent() -> None:
    job = a_job(S.RUNNING, attempt=POLICY.max_run_attempts)
    assert on_run_claimed(job, PAID, NOW, POLICY) is NOTHING


@pytest.mark.parametrize("source", SOURCES)
def test_a_paid_result_is_stored_then_submitted(source: PaymentSourceType) -> None:
    job = a_job(S.RUNNING, source)
    decision = on_result(job, PAID, RESULT, RESULT_HASH, NOW)
    assert decision.status is None  # completed only once submit-result took it
    assert decision.fields == {"result": RESULT, "result_hash": RESULT_HASH}
    assert [e.type for e in decision.events] == [EventType.RESULT_STORED]
    assert decision.step == Continue(Scheduled(Step.SUBMIT, NOW_MS))


def test_a_free_result_completes_the_job() -> None:
    job = free_job(S.RUNNING)
    decision = on_result(job, None, RESULT, RESULT_HASH, NOW)
    assert decision.status is S.COMPLETED
    assert decision.fields == {"result": RESULT, "result_hash": RESULT_HASH}
    assert [e.type for e in decision.events] == [EventType.COMPLETED]
    assert decision.step is None
    assert decision.invoice is None


@pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED, S.AWAITING_INPUT])
def test_a_result_for_a_job_not_running_is_ignored(status: JobStatus) -> None:
    assert on_result(a_job(status), PAID, RESULT, RESULT_HASH, NOW) is NOTHING


def test_an_agent_failure_fails_the_job() -> None:
    decision = on_agent_failed(a_job(S.RUNNING), PAID, "AGENT_FAILED", "boom", NOW, POLICY)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "AGENT_FAILED"


# -- a person's answer ------------------------------------------------------------------
SCHEMA = {"input_data": [{"id": "name", "type": "string"}]}


def test_the_agent_asking_a_person_waits_until_the_deadline() -> None:
    job = a_job(S.RUNNING)
    decision = on_input_requested(job, SCHEMA, "your name?", NOW)
    assert decision.status is S.AWAITING_INPUT
    assert decision.fields == {"input_schema": SCHEMA, "input_request_message": "your name?"}
    assert [e.type for e in decision.events] == [EventType.INPUT_REQUESTED]
    assert decision.step == Scheduled(Step.INPUT_DEADLINE, DEADLINE)
    assert preview(job, decision, NOW).status_id != job.status_id


def test_the_agent_asking_when_not_running_is_ignored() -> None:
    assert on_input_requested(a_job(S.COMPLETED), SCHEMA, None, NOW) is NOTHING


ANSWER = Answer(input_data={"name": "Ada"}, input_hash="12" * 32, request_id="req-1")


def test_an_answer_to_the_current_question_resumes_the_job() -> None:
    job = a_job(S.AWAITING_INPUT)
    decision = on_input(job, job.status_id, ANSWER, NOW)
    assert decision.status is S.RUNNING
    assert decision.step == Scheduled(Step.RUN, NOW_MS)
    assert [(e.type, dict(e.data)) for e in decision.events] == [
        (
            EventType.INPUT_PROVIDED,
            {
                "request_id": "req-1",
                "input_hash": "12" * 32,
                "input_data": {"name": "Ada"},
                "status_id": job.status_id,
            },
        )
    ]
    after = preview(job, decision, NOW)
    assert after.input_schema is None and after.status_id != job.status_id


@pytest.mark.parametrize("status", [S.RUNNING, S.AWAITING_PAYMENT, S.COMPLETED, S.FAILED])
def test_an_answer_when_nothing_is_asked_is_refused(status: JobStatus) -> None:
    job = a_job(status)
    with pytest.raises(NotAwaitingInputError) as raised:
        on_input(job, job.status_id, ANSWER, NOW)
    assert raised.value.reason == "JOB_NOT_AWAITING_INPUT"


def test_an_answer_to_an_older_question_is_refused() -> None:
    job = a_job(S.AWAITING_INPUT)
    with pytest.raises(StatusIdMismatchError) as raised:
        on_input(job, "status-from-before", ANSWER, NOW)
    assert raised.value.metadata == {
        "job_id": job.job_id,
        "status_id": "status-from-before",
        "current_status_id": job.status_id,
    }


def test_no_answer_by_the_deadline_fails_the_job() -> None:
    decision = on_input_deadline(a_job(S.AWAITING_INPUT), PAID, at(DEADLINE), POLICY)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "DEADLINE_EXCEEDED"
    after = preview(a_job(S.AWAITING_INPUT), decision, at(DEADLINE))
    assert after.input_schema is None


def test_the_input_deadline_claimed_early_waits_for_the_deadline() -> None:
    decision = on_input_deadline(a_job(S.AWAITING_INPUT), PAID, NOW, POLICY)
    assert decision == Decision(step=Scheduled(Step.INPUT_DEADLINE, DEADLINE))


def test_the_input_deadline_of_a_job_answered_meanwhile_has_nothing_to_do() -> None:
    assert on_input_deadline(a_job(S.RUNNING), PAID, at(DEADLINE), POLICY) == Decision(step=None)


# =====================================================================================
# Submitting the result
# =====================================================================================
def test_the_last_submit_moment_leaves_the_chain_job_time_to_pick_it_up() -> None:
    """submitResultTime - 5 min (the chain job's cutoff) - its pickup interval."""
    job = running_with_result()
    assert POLICY.last_submit(job) == SUBMIT_BY - 5 * MINUTE - POLICY.chain_pickup_ms
    assert POLICY.last_submit(job) == LAST_SUBMIT
    assert job.deadline == LAST_SUBMIT - POLICY.submit_margin_ms


def test_submit_claimed_before_the_last_moment_submits() -> None:
    job = running_with_result()
    assert on_submit_claimed(job, PAID, at(LAST_SUBMIT - 1), POLICY) is NOTHING


@pytest.mark.parametrize("source", SOURCES)
def test_submit_claimed_at_the_last_moment_fails_the_job(source: PaymentSourceType) -> None:
    decision = on_submit_claimed(running_with_result(source), PAID, at(LAST_SUBMIT), POLICY)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "SUBMIT_DEADLINE_PASSED"
    assert len(decision.warnings) == 1


@pytest.mark.parametrize(
    "job",
    [a_job(S.RUNNING), a_job(S.COMPLETED), a_job(S.FAILED)],
    ids=["no-result", "done", "failed"],
)
def test_submit_claimed_with_nothing_to_submit_has_nothing_to_do(job: Job) -> None:
    assert on_submit_claimed(job, PAID, NOW, POLICY) == Decision(step=None)


@pytest.mark.parametrize(
    ("seen", "taken"),
    [
        (payment(State.RESULT_SUBMITTED, result_hash=RESULT_HASH), True),
        (
            payment(
                State.FUNDS_LOCKED, Action.SUBMIT_RESULT_REQUESTED, next_action_hash=RESULT_HASH
            ),
            True,
        ),
        (
            payment(
                State.FUNDS_LOCKED, Action.SUBMIT_RESULT_INITIATED, next_action_hash=RESULT_HASH
            ),
            True,
        ),
        (submission_failed(), False),  # parked: recovery, not a resubmission
        (
            payment(
                State.FUNDS_LOCKED, Action.SUBMIT_RESULT_REQUESTED, next_action_hash=OTHER_HASH
            ),
            False,
        ),
        (payment(State.RESULT_SUBMITTED, result_hash=OTHER_HASH), False),
        (payment(State.FUNDS_LOCKED), False),
    ],
    ids=["on-chain", "requested", "initiated", "parked", "other-request", "other-on-chain", "none"],
)
def test_submission_taken_tells_a_try_whose_answer_was_lost(seen: Payment, taken: bool) -> None:
    assert submission_taken(running_with_result(), seen) is taken


def test_submission_taken_needs_a_hash_of_ours() -> None:
    seen = payment(State.RESULT_SUBMITTED, result_hash=RESULT_HASH)
    assert not submission_taken(a_job(S.RUNNING), seen)


@pytest.mark.parametrize("source", SOURCES)
def test_submitted_completes_the_job_and_follows_the_submission(source: PaymentSourceType) -> None:
    job = running_with_result(source, attention=attention(AttentionReason.API_KEY_MISMATCH))
    decision = on_submitted(job, NOW, POLICY, detail="accepted")
    assert decision.status is S.COMPLETED
    assert decision.invoice == InvoiceChange(status=InvoiceStatus.SUBMITTED)
    assert [(e.type, e.detail, dict(e.data)) for e in decision.events] == [
        (EventType.RESULT_SUBMITTED, "accepted", {"result_hash": RESULT_HASH}),
        (EventType.COMPLETED, "", {}),
    ]
    # A 200 only queues SubmitResultRequested: follow it to the chain.
    assert decision.step == Scheduled(
        Step.FOLLOW, NOW_MS + POLICY.chain_pickup_ms + POLICY.retry_max_ms
    )
    assert decision.fields["attention"] is None


def test_submitted_for_a_job_no_longer_running_is_ignored() -> None:
    assert on_submitted(a_job(S.COMPLETED), NOW, POLICY) is NOTHING


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(0, 1_000), (1, 1_000), (2, 2_000), (3, 4_000), (6, 32_000), (7, 60_000), (50, 60_000)],
)
def test_retry_later_backs_off_exponentially_up_to_a_cap(attempt: int, delay: int) -> None:
    job = running_with_result(attempt=attempt)
    decision = retry_later(job, Step.SUBMIT, NOW, POLICY)
    assert decision == Decision(step=Scheduled(Step.SUBMIT, NOW_MS + delay))
    # The same step: its attempts go on counting.
    assert preview(job, decision, NOW).attempt == attempt


def test_retry_later_delays_grow_and_stop_at_the_cap() -> None:
    delays = [POLICY.backoff(attempt) for attempt in range(1, 40)]
    assert delays == sorted(delays)
    assert max(delays) == POLICY.retry_max_ms
    assert delays[0] == POLICY.retry_base_ms


# -- 403: the payment was created with another API key ------------------------------------
def test_a_403_on_submit_needs_attention_and_is_retried_rarely() -> None:
    job = running_with_result()
    decision = on_submit_refused_key(job, NOW, POLICY)
    after = preview(job, decision, NOW)
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.API_KEY_MISMATCH
    assert after.attention.action == "agentjobs recover job-1"
    assert "another API key" in after.attention.message
    assert decision.step == Scheduled(Step.SUBMIT, NOW_MS + POLICY.key_retry_ms)
    assert [e.type for e in decision.events] == [EventType.ATTENTION_NEEDED]


def test_a_403_retry_is_never_after_the_last_submit_moment() -> None:
    now = LAST_SUBMIT - 10 * MINUTE
    decision = on_submit_refused_key(running_with_result(), at(now), POLICY)
    assert isinstance(decision.step, Scheduled)
    assert now < decision.step.run_at < LAST_SUBMIT


def test_a_second_403_adds_no_second_event() -> None:
    job = running_with_result()
    first = on_submit_refused_key(job, NOW, POLICY)
    after = preview(job, first, NOW)
    again = on_submit_refused_key(after, at(NOW_MS + POLICY.key_retry_ms), POLICY)
    assert again.events == ()


def test_a_403_in_the_last_minute_is_not_retried_at_once() -> None:
    now = LAST_SUBMIT - 30_000
    decision = on_submit_refused_key(running_with_result(), at(now), POLICY)
    assert isinstance(decision.step, Scheduled)
    assert now < decision.step.run_at <= LAST_SUBMIT


def test_a_rejected_submission_fails_the_job() -> None:
    decision = on_submit_rejected(running_with_result(), PAID, "400 bad hash", NOW, POLICY)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "SUBMISSION_REJECTED"
    assert decision.fields["error"].message == "400 bad hash"
    assert len(decision.warnings) == 1


# =====================================================================================
# Recovery: error-state-recovery for a submission the chain job parked
# =====================================================================================
SUBMITTED = an_invoice(InvoiceStatus.SUBMITTED, State.FUNDS_LOCKED)


def test_recover_claimed_while_the_payment_is_parked_recovers() -> None:
    assert on_recover_claimed(a_job(S.COMPLETED), SUBMITTED, submission_failed(), NOW, POLICY) is (
        NOTHING
    )


def test_recover_claimed_once_the_payment_moved_on_follows_it_instead() -> None:
    moving = payment(
        State.FUNDS_LOCKED, Action.SUBMIT_RESULT_REQUESTED, next_action_hash=RESULT_HASH
    )
    decision = on_recover_claimed(a_job(S.COMPLETED, attempt=1), SUBMITTED, moving, NOW, POLICY)
    assert isinstance(decision.step, Scheduled) and decision.step.step is Step.FOLLOW


def test_recover_claimed_for_a_payment_the_service_forgot_needs_attention() -> None:
    job = a_job(S.COMPLETED)
    decision = on_recover_claimed(job, SUBMITTED, None, NOW, POLICY)
    assert attention_reason(job, decision) == AttentionReason.PAYMENT_UNKNOWN
    assert decision.step is None


def test_recovered_counts_the_recovery_and_follows_the_retried_submission() -> None:
    job = a_job(S.COMPLETED, recoveries=1, attention=attention(AttentionReason.SUBMISSION_FAILED))
    decision = on_recovered(job, NOW, POLICY)
    assert decision.fields == {"recoveries": 2, "attention": None}
    # Forget the error seen, so that the same error coming back is seen as new.
    assert decision.invoice == InvoiceChange(next_action="")
    assert [e.type for e in decision.events] == [EventType.RECOVERY_REQUESTED]
    assert decision.step == Scheduled(
        Step.FOLLOW, NOW_MS + POLICY.chain_pickup_ms + POLICY.retry_base_ms
    )


@pytest.mark.parametrize(
    ("status", "reason"),
    [(S.COMPLETED, AttentionReason.SUBMISSION_FAILED), (S.FAILED, AttentionReason.PAYMENT_ERROR)],
)
def test_recovery_refused_for_good_needs_a_person(status: JobStatus, reason: str) -> None:
    job = a_job(status)
    decision = on_recover_refused(job, "403 another key", NOW)
    after = preview(job, decision, NOW)
    assert after.attention is not None and after.attention.reason == reason
    assert "403 another key" in after.attention.message
    assert after.attention.action == "agentjobs recover job-1"
    assert decision.step is None


def test_a_recovery_the_service_cannot_retry_suggests_no_command() -> None:
    job = a_job(S.COMPLETED)
    decision = on_recover_refused(job, "not retryable", NOW, retryable=False)
    after = preview(job, decision, NOW)
    assert after.attention is not None
    assert after.attention.reason == AttentionReason.SUBMISSION_FAILED
    assert "not retryable" in after.attention.message
    assert "admin interface" in after.attention.message
    assert after.attention.action == ""
    assert decision.step is None


def test_a_parked_submission_is_recovered_at_most_max_recoveries_times() -> None:
    """The whole loop: parked -> RECOVER -> recovered -> parked again ... -> a person."""
    job, invoice = a_job(S.COMPLETED), SUBMITTED
    now = NOW_MS
    recoveries = 0
    for _ in range(POLICY.max_recoveries + 1):
        decision = on_payment(job, invoice, submission_failed(), at(now), POLICY)
        job, invoice2 = apply(job, invoice, decision, at(now))
        assert invoice2 is not None
        invoice = invoice2
        if job.step is not Step.RECOVER:
            break
        assert on_recover_claimed(job, invoice, submission_failed(), at(now), POLICY) is NOTHING
        job, invoice2 = apply(job, invoice, on_recovered(job, at(now), POLICY), at(now))
        assert invoice2 is not None
        invoice = invoice2
        recoveries += 1
        now += 10 * MINUTE
    assert recoveries == POLICY.max_recoveries
    assert job.attention is not None
    assert job.attention.reason == AttentionReason.SUBMISSION_FAILED


# =====================================================================================
# Refunds
# =====================================================================================
ALL_STATES = [
    None,
    State.FUNDS_LOCKED,
    State.FUNDS_OR_DATUM_INVALID,
    State.RESULT_SUBMITTED,
    State.REFUND_REQUESTED,
    State.DISPUTED,
    State.WITHDRAW_AUTHORIZED,
    State.REFUND_AUTHORIZED,
    State.WITHDRAWN,
    State.REFUND_WITHDRAWN,
    State.DISPUTED_WITHDRAWN,
]
ALL_ACTIONS = [
    v for k, v in vars(NextAction).items() if not k.startswith("_") and isinstance(v, str)
]
SELLER_REFUNDS = {V1: {State.DISPUTED}, V2: {State.REFUND_REQUESTED, State.DISPUTED}}


# V2 FundsLocked / ResultSubmitted are tested apart below (a finding).
REFUND_CASES = [
    pytest.param(source, state, action, id=f"{source.name}-{state}-{action}")
    for source in SOURCES
    for state in ALL_STATES
    for action in ALL_ACTIONS
    if not (source is V2 and state in (State.FUNDS_LOCKED, State.RESULT_SUBMITTED))
]


@pytest.mark.parametrize(("source", "state", "action"), REFUND_CASES)
def test_refund_possible_only_where_the_service_executes_it(
    source: PaymentSourceType, state: str | None, action: str
) -> None:
    """V1: only Disputed (the V1 chain job picks AuthorizeRefundRequested only there).
    V2: RefundRequested and Disputed (route and chain job). Always with no other action
    in progress (NextAction WaitingForExternalAction)."""
    expected = state in SELLER_REFUNDS[source] and action == Action.WAITING_FOR_EXTERNAL_ACTION
    seen = payment(state, action, source=source)
    assert refund_possible(a_job(S.COMPLETED, source), seen) is expected


V2_REFUND_REASON = (
    "REFUNDABLE_BY_SELLER[V2] includes FundsLocked and ResultSubmitted (the V2 contract "
    "allows them), but masumi-payment-service 0.28.0 takes authorize-refund only from "
    "Disputed or RefundRequested: src/routes/api/payments/authorize-refund/index.ts:42-44 "
    "(`onChainState: { in: [Disputed, RefundRequested] }`, else 404 'Payment not found or "
    "in invalid state'), and the V2 chain job picks only those "
    "(packages/payment-source-v2/src/services/payments/authorize-refund/service.ts:981-983)."
    " A REFUND step there always fails; the operator is told a refund is possible when "
    "it is not."
)


@pytest.mark.parametrize("state", [State.FUNDS_LOCKED, State.RESULT_SUBMITTED])
def test_v2_refund_from_a_state_the_service_refuses_is_not_possible(state: str) -> None:
    assert not refund_possible(a_job(S.COMPLETED, V2), payment(state, source=V2))


def test_v2_operator_refund_of_locked_funds_is_refused() -> None:
    with pytest.raises(OperationNotPossibleError):
        on_operator_refund(a_job(S.COMPLETED, V2), payment(State.FUNDS_LOCKED, source=V2), NOW)


def refund_claimed(job: Job, seen: Payment | None, invoice: Invoice = PAID) -> Decision:
    return on_refund_claimed(job, invoice, seen, NOW, POLICY)


@pytest.mark.parametrize(
    ("source", "seen"),
    [
        (V1, payment(State.DISPUTED, result_hash=RESULT_HASH)),
        (V2, payment(State.DISPUTED, result_hash=RESULT_HASH, source=V2)),
        (V2, payment(State.REFUND_REQUESTED, source=V2)),
    ],
    ids=["v1-disputed", "v2-disputed", "v2-refund-requested"],
)
def test_refund_claimed_where_possible_authorizes_it(
    source: PaymentSourceType, seen: Payment
) -> None:
    assert refund_claimed(a_job(S.FAILED, source, step=Step.REFUND), seen) is NOTHING


@pytest.mark.parametrize(
    "action", [Action.AUTHORIZE_REFUND_REQUESTED, Action.AUTHORIZE_REFUND_INITIATED]
)
def test_refund_claimed_while_our_refund_is_on_its_way_follows_it(action: str) -> None:
    seen = payment(State.DISPUTED, action, source=V2)
    decision = refund_claimed(a_job(S.FAILED, V2, step=Step.REFUND), seen)
    assert decision == Decision(step=Scheduled(Step.FOLLOW, NOW_MS + POLICY.chain_pickup_ms))


def test_refund_claimed_while_another_action_is_in_progress_waits() -> None:
    seen = payment(State.DISPUTED, Action.WITHDRAW_REQUESTED, source=V2)
    job = a_job(S.FAILED, V2, step=Step.REFUND, attempt=2)
    assert refund_claimed(job, seen) == retry_later(job, Step.REFUND, NOW, POLICY)


def test_refund_claimed_where_no_refund_is_possible_follows_the_money() -> None:
    """V1 RefundRequested: the buyer withdraws after submitResultTime."""
    job = a_job(S.FAILED, V1, step=Step.REFUND)
    invoice = an_invoice(InvoiceStatus.PAID, State.REFUND_REQUESTED)
    decision = refund_claimed(job, payment(State.REFUND_REQUESTED), invoice)
    assert isinstance(decision.step, Scheduled) and decision.step.step is Step.FOLLOW


def test_refund_claimed_for_a_payment_the_service_forgot_needs_attention() -> None:
    job = a_job(S.FAILED, V2, step=Step.REFUND)
    decision = refund_claimed(job, None)
    assert attention_reason(job, decision) == AttentionReason.PAYMENT_UNKNOWN


def test_refund_authorized_is_recorded_and_followed() -> None:
    job = a_job(S.COMPLETED, attention=attention(AttentionReason.DISPUTED))
    decision = on_refund_authorized(job, NOW, POLICY)
    assert [e.type for e in decision.events] == [EventType.REFUND_AUTHORIZED]
    assert decision.step == Scheduled(
        Step.FOLLOW, NOW_MS + POLICY.chain_pickup_ms + POLICY.retry_base_ms
    )
    assert decision.fields["attention"] is None
    # Asked, not done: the books move only when the chain shows it.
    assert decision.invoice is None and decision.status is None


def test_a_403_on_authorize_refund_needs_attention_and_stops() -> None:
    job = a_job(S.COMPLETED)
    decision = on_refund_refused_key(job, NOW)
    assert attention_reason(job, decision) == AttentionReason.API_KEY_MISMATCH
    assert decision.step is None


# =====================================================================================
# Operator commands
# =====================================================================================
def test_cancel_an_unpaid_job() -> None:
    job = a_job(S.AWAITING_PAYMENT)
    pending = an_invoice(for_status=S.AWAITING_PAYMENT)
    decision = on_cancel(job, pending, payment(None), "", NOW, POLICY)
    assert decision.status is S.FAILED
    assert decision.fields["error"].reason == "CANCELLED"
    assert decision.fields["error"].message == "cancelled by the operator"
    assert decision.invoice == InvoiceChange(status=InvoiceStatus.EXPIRED)
    assert decision.warnings == ()
    assert decision.step is None


def test_cancel_a_job_whose_payment_the_service_forgot() -> None:
    job = a_job(S.AWAITING_PAYMENT)
    decision = on_cancel(job, an_invoice(for_status=S.AWAITING_PAYMENT), None, "dup", NOW, POLICY)
    assert decision.status is S.FAILED
    assert decision.fields["error"].message == "dup"


@pytest.mark.parametrize(
    "state", [State.FUNDS_LOCKED, State.REFUND_REQUESTED, State.FUNDS_OR_DATUM_INVALID]
)
def test_cancel_once_funds_are_locked_is_refused(state: str) -> None:
    job = a_job(S.AWAITING_PAYMENT)
    with pytest.raises(FundsAlreadyLockedError) as raised:
        on_cancel(job, an_invoice(for_status=S.AWAITING_PAYMENT), payment(state), "", NOW, POLICY)
    assert raised.value.metadata == {"job_id": job.job_id, "on_chain_state": state}


@pytest.mark.parametrize("status", [S.RUNNING, S.AWAITING_INPUT, S.COMPLETED, S.FAILED])
def test_cancel_only_while_awaiting_payment(status: JobStatus) -> None:
    with pytest.raises(OperationNotPossibleError) as raised:
        on_cancel(a_job(status), PAID, payment(State.FUNDS_LOCKED), "", NOW, POLICY)
    assert raised.value.reason == "NOT_CANCELLABLE"
    assert raised.value.metadata["current_status"] == status.value


def test_operator_refund_where_possible_schedules_it() -> None:
    seen = payment(State.DISPUTED, result_hash=RESULT_HASH)
    assert on_operator_refund(a_job(S.COMPLETED), seen, NOW) == Decision(
        step=Scheduled(Step.REFUND, NOW_MS)
    )


def test_operator_refund_without_a_payment_is_refused() -> None:
    with pytest.raises(OperationNotPossibleError) as raised:
        on_operator_refund(free_job(S.COMPLETED), payment(None), NOW)
    assert raised.value.reason == "REFUND_NOT_POSSIBLE"


@pytest.mark.parametrize(
    ("source", "seen"),
    [
        (V1, payment(State.FUNDS_LOCKED)),
        (V1, payment(State.REFUND_REQUESTED)),
        (V1, payment(State.RESULT_SUBMITTED, result_hash=RESULT_HASH)),
        (V1, payment(State.DISPUTED, Action.AUTHORIZE_REFUND_REQUESTED)),
        (V2, payment(State.WITHDRAWN, Action.NONE, source=V2)),
        (V2, payment(State.REFUND_AUTHORIZED, source=V2)),
    ],
    ids=["v1-locked", "v1-refund-requested", "v1-result", "v1-busy", "v2-settled", "v2-done"],
)
def test_operator_refund_where_the_contract_forbids_it_says_why(
    source: PaymentSourceType, seen: Payment
) -> None:
    with pytest.raises(OperationNotPossibleError) as raised:
        on_operator_refund(a_job(S.COMPLETED, source), seen, NOW)
    assert raised.value.reason == "REFUND_NOT_POSSIBLE"
    assert f"on {source.name}" in raised.value.message
    assert raised.value.metadata["on_chain_state"] == (seen.on_chain_state or "")


def test_operator_recover_of_a_parked_payment_schedules_it() -> None:
    assert on_operator_recover(a_job(S.COMPLETED), submission_failed(), NOW, POLICY) == Decision(
        step=Scheduled(Step.RECOVER, NOW_MS)
    )


def test_operator_recover_after_a_403_submits_again() -> None:
    """The operator restored the API key that created the payment."""
    job = running_with_result(attention=attention(AttentionReason.API_KEY_MISMATCH))
    decision = on_operator_recover(job, payment(State.FUNDS_LOCKED), NOW, POLICY)
    assert decision == Decision(step=Scheduled(Step.SUBMIT, NOW_MS))


@pytest.mark.parametrize(
    "job",
    [
        a_job(S.COMPLETED),
        a_job(S.COMPLETED, attention=attention(AttentionReason.API_KEY_MISMATCH)),
        a_job(S.RUNNING, attention=attention(AttentionReason.API_KEY_MISMATCH)),
    ],
    ids=["nothing-parked", "403-but-completed", "403-but-no-result"],
)
def test_operator_recover_with_nothing_to_recover_says_so(job: Job) -> None:
    with pytest.raises(OperationNotPossibleError) as raised:
        on_operator_recover(job, payment(State.FUNDS_LOCKED), NOW, POLICY)
    assert raised.value.reason == "NOTHING_TO_RECOVER"
    assert raised.value.metadata == {"job_id": job.job_id}


@pytest.mark.parametrize(
    "parked",
    [
        payment(None, Action.WAITING_FOR_MANUAL_ACTION, error_type="Unknown", error_note="x"),
        payment(
            State.FUNDS_OR_DATUM_INVALID,
            Action.WAITING_FOR_MANUAL_ACTION,
            error_note="Seller does not match seller in db.",
        ),
        *[
            payment(state, Action.WAITING_FOR_MANUAL_ACTION, error_type="Unknown", error_note="x")
            for state in sorted(SETTLED_STATES - {OnChainState.FUNDS_OR_DATUM_INVALID})
        ],
    ],
    ids=["unpaid", "no-error-type", "disputed-withdrawn", "refund-withdrawn", "withdrawn"],
)
def test_operator_recover_where_the_service_refuses_recovery_says_so(parked: Payment) -> None:
    with pytest.raises(OperationNotPossibleError):
        on_operator_recover(a_job(S.COMPLETED), parked, NOW, POLICY)
