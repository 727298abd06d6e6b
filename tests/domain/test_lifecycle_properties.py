"""Properties of the whole lifecycle, found by hypothesis: one job and its payment, the
payment moved only as the V1 / V2 contracts and the payment service (0.28.0) move it, the
job's steps run by a worker with random outcomes, the diff delivering the payment at
random moments. Every decision goes through `preview`, as the repository applies it.

Whatever the order:
- no rule raises and no decision is an illegal transition;
- the payment delivered again (a re-read page, a second monitor) decides nothing;
- a job that is not finished always has a next step;
- once the job has seen its payment settle, it has no step left.

The payment's moves, from upstream:
- V1 `smart-contracts/payment/state_machine_diagram.md`: FundsLocked -> ResultSubmitted
  (SubmitResult) | RefundRequested (SetRefundRequested, before unlock_time);
  ResultSubmitted -> Disputed (SetRefundRequested) | Withdrawn (after unlock_time);
  RefundRequested -> FundsLocked (UnSet) | Disputed (SubmitResult) | RefundWithdrawn
  (after submit_result_time); Disputed -> ResultSubmitted (UnSet) | RefundRequested
  (AuthorizeRefund) | DisputedWithdrawn (after external_dispute_unlock_time).
- V2 `smart-contracts/payment-v2/state_machine_diagram.md`: no UnSet; FundsLocked ->
  RefundWithdrawn after submit_result_time; Disputed -> WithdrawAuthorized (buyer);
  AuthorizeRefund -> RefundAuthorized; WithdrawAuthorized -> Withdrawn; RefundAuthorized
  -> RefundWithdrawn.
- The service: submit-result and authorize-refund taken only in the states their routes
  accept; the submit chain job only while submitResultTime is > 5 min away; V1
  AuthorizeRefund executed only from Disputed, V2 from Disputed and RefundRequested;
  withdrawal at unlockTime + 10 min; NextAction per `transitions.md`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from agentjobs.server.domain.errors import DomainError
from agentjobs.server.domain.invoice import Invoice
from agentjobs.server.domain.job import Job
from agentjobs.server.domain.lifecycle import (
    Answer,
    AttentionReason,
    Continue,
    Decision,
    on_agent_failed,
    on_cancel,
    on_expiry_check,
    on_follow,
    on_input,
    on_input_deadline,
    on_input_requested,
    on_operator_recover,
    on_operator_refund,
    on_payment,
    on_payment_requested,
    on_recover_claimed,
    on_recovered,
    on_refund_authorized,
    on_refund_claimed,
    on_result,
    on_run_claimed,
    on_submit_claimed,
    on_submit_refused_key,
    on_submitted,
    retry_later,
    submission_taken,
)
from agentjobs.server.domain.lifecycle.attention import needs_attention
from agentjobs.server.domain.payment import SETTLED_STATES, PaymentSourceType
from agentjobs.server.domain.payment import PaymentState as Payment
from agentjobs.server.domain.steps import KEEP, Step
from tests.domain.builders import (
    DISPUTE_UNLOCK,
    MINUTE,
    PAY_BY,
    POLICY,
    RESULT,
    RESULT_HASH,
    SOURCES,
    SUBMIT_BY,
    T0_MS,
    UNLOCK,
    V1,
    V2,
    Action,
    S,
    State,
    apply,
    at,
    claim,
    intent,
    payment,
    terms,
)

# The service retries a refused seller call this often before a person is asked
# (services/steps/payment_steps.py MAX_SELLER_TRIES).
MAX_SELLER_TRIES = 6
ACCEPTS_SUBMIT = {State.FUNDS_LOCKED, State.REFUND_REQUESTED, State.DISPUTED}
ACCEPTS_REFUND = {State.DISPUTED, State.REFUND_REQUESTED}  # authorize-refund/index.ts:42-44


@dataclass(frozen=True)
class Chain:
    """The payment as the payment service holds it."""

    source: PaymentSourceType
    state: str | None = None
    action: str = Action.WAITING_FOR_EXTERNAL_ACTION
    next_hash: str | None = None
    result_hash: str = ""
    error_type: str | None = None
    error_note: str | None = None
    # The seller action an error parked (what error-state-recovery retries).
    parked: str | None = None

    def shown(self) -> Payment:
        return payment(
            self.state,
            self.action,
            next_action_hash=self.next_hash,
            result_hash=self.result_hash,
            error_type=self.error_type,
            error_note=self.error_note,
            source=self.source,
        )

    def moved_by_buyer(self, state: str) -> Chain:
        """The buyer (or the admins) moved the contract; the seller's NextAction follows
        transitions.md: it stays, or becomes None once settled, or an error."""
        action, error_type, note = self.action, self.error_type, self.error_note
        settled = state in SETTLED_STATES
        if action == Action.WAITING_FOR_EXTERNAL_ACTION:
            action = Action.NONE if settled else action
        elif action == Action.WAITING_FOR_MANUAL_ACTION:
            pass
        elif settled or (
            action == Action.AUTHORIZE_REFUND_REQUESTED
            and state not in (State.DISPUTED, State.RESULT_SUBMITTED)
        ):
            action, error_type, note = Action.WAITING_FOR_MANUAL_ACTION, "Unknown", "moved"
        return replace(self, state=state, action=action, error_type=error_type, error_note=note)

    def seller_action(self, action: str, next_hash: str | None = None) -> Chain:
        return replace(self, action=action, next_hash=next_hash, error_type=None, error_note=None)


_ON_CHAIN_BUT_NOT_COMPLETED = {
    State.DISPUTED,
    State.WITHDRAW_AUTHORIZED,
    State.WITHDRAWN,
    State.DISPUTED_WITHDRAWN,
}

HORIZON = DISPUTE_UNLOCK + 90 * 24 * 60 * MINUTE

# How a step's call goes: answered, its answer lost (the process died), the agent asked a
# person or failed, the payment service said 403 or 409.
OUTCOMES = st.sampled_from(["ok", "lost", "ask", "fail", "403", "409"])


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0_MS
        self.job: Job = intent()
        self.invoice: Invoice | None = None
        self.chain = Chain(V1)
        self.submitted_once = False

    # -- bookkeeping --------------------------------------------------------------------
    def write(self, decision: Decision) -> None:
        self.job, self.invoice = apply(self.job, self.invoice, decision, at(self.now))

    def deliver(self) -> Decision:
        """The monitor applies the payment as the diff shows it now."""
        decision = on_payment(self.job, self.invoice, self.chain.shown(), at(self.now), POLICY)
        self.write(decision)
        return decision

    @initialize(source=st.sampled_from(SOURCES), pays=st.integers(0, 4).map(bool))
    def payment_requested(self, source: PaymentSourceType, pays: bool = False) -> None:
        """The job's payment request; most buyers lock their funds at once."""
        self.chain = Chain(source, state=State.FUNDS_LOCKED if pays else None)
        self.write(on_payment_requested(self.job, terms(source=source), at(self.now), POLICY))

    # -- time -----------------------------------------------------------------------------
    @rule(minutes=st.sampled_from([1, 3, 10, 30, 90, 240, 600]))
    def time_passes(self, minutes: int) -> None:
        self.now += minutes * MINUTE

    # -- the buyer, the admins ------------------------------------------------------------------
    @precondition(lambda self: self.chain.state is None)
    @rule(in_time=st.integers(0, 9).map(bool))  # mostly a good lock
    def buyer_locks_funds(self, in_time: bool) -> None:
        if in_time and self.now < PAY_BY:
            self.chain = replace(self.chain, state=State.FUNDS_LOCKED)
        else:
            # tx-sync: a lock whose block time is after payByTime (or a spoofed datum).
            self.chain = replace(
                self.chain,
                state=State.FUNDS_OR_DATUM_INVALID,
                action=Action.WAITING_FOR_MANUAL_ACTION,
                error_note="Block time is after pay by time. This is a timed out purchase.",
            )

    @precondition(
        lambda self: (
            self.chain.state in (State.FUNDS_LOCKED, State.RESULT_SUBMITTED) and self.now < UNLOCK
        )
    )
    @rule()
    def buyer_requests_a_refund(self) -> None:
        to = State.REFUND_REQUESTED if self.chain.state == State.FUNDS_LOCKED else State.DISPUTED
        self.chain = self.chain.moved_by_buyer(to)

    @precondition(
        lambda self: (
            self.chain.source is V1 and self.chain.state in (State.REFUND_REQUESTED, State.DISPUTED)
        )
    )
    @rule()
    def v1_buyer_withdraws_the_request(self) -> None:
        to = (
            State.FUNDS_LOCKED
            if self.chain.state == State.REFUND_REQUESTED
            else State.RESULT_SUBMITTED
        )
        self.chain = self.chain.moved_by_buyer(to)

    @precondition(
        lambda self: (
            (
                self.chain.state in (State.FUNDS_LOCKED, State.REFUND_REQUESTED)
                and not self.chain.result_hash
                and self.now >= SUBMIT_BY
            )
            or self.chain.state == State.REFUND_AUTHORIZED
        )
    )
    @rule()
    def buyer_withdraws_the_refund(self) -> None:
        self.chain = replace(self.chain.moved_by_buyer(State.REFUND_WITHDRAWN), result_hash="")

    @precondition(lambda self: self.chain.source is V2 and self.chain.state == State.DISPUTED)
    @rule()
    def v2_buyer_authorizes_our_withdrawal(self) -> None:
        self.chain = self.chain.moved_by_buyer(State.WITHDRAW_AUTHORIZED)

    @precondition(lambda self: self.chain.state == State.DISPUTED and self.now >= DISPUTE_UNLOCK)
    @rule()
    def admins_settle_the_dispute(self) -> None:
        self.chain = self.chain.moved_by_buyer(State.DISPUTED_WITHDRAWN)

    # -- the payment service's chain jobs ------------------------------------------------------
    @precondition(
        lambda self: (
            self.chain.action == Action.SUBMIT_RESULT_REQUESTED
            and SUBMIT_BY - self.now > 5 * MINUTE
        )
    )
    @rule(succeeds=st.booleans())
    def chain_job_submits_the_result(self, succeeds: bool) -> None:
        chain = self.chain
        if succeeds and chain.state in ACCEPTS_SUBMIT | {State.RESULT_SUBMITTED}:
            to = (
                State.RESULT_SUBMITTED
                if chain.state in (State.FUNDS_LOCKED, State.RESULT_SUBMITTED)
                else State.DISPUTED
            )
            self.chain = replace(
                chain.seller_action(Action.WAITING_FOR_EXTERNAL_ACTION),
                state=to,
                result_hash=chain.next_hash or "",
            )
        else:
            self.chain = replace(
                chain,
                action=Action.WAITING_FOR_MANUAL_ACTION,
                error_type="Unknown",
                error_note="Submitting result failed: UTxO not found",
                parked="submit",
            )

    @precondition(lambda self: self.chain.action == Action.AUTHORIZE_REFUND_REQUESTED)
    @rule()
    def chain_job_authorizes_the_refund(self) -> None:
        chain = self.chain
        if chain.source is V1 and chain.state == State.DISPUTED:
            self.chain = replace(
                chain.seller_action(Action.WAITING_FOR_EXTERNAL_ACTION),
                state=State.REFUND_REQUESTED,
                result_hash="",
            )
        elif chain.source is V2 and chain.state in ACCEPTS_REFUND:
            self.chain = replace(
                chain.seller_action(Action.WAITING_FOR_EXTERNAL_ACTION),
                state=State.REFUND_AUTHORIZED,
                result_hash="",
            )

    @precondition(
        lambda self: (
            self.chain.action == Action.WAITING_FOR_EXTERNAL_ACTION
            and (
                (self.chain.state == State.RESULT_SUBMITTED and self.now >= UNLOCK + 10 * MINUTE)
                or self.chain.state == State.WITHDRAW_AUTHORIZED
            )
        )
    )
    @rule()
    def service_withdraws_for_us(self) -> None:
        self.chain = replace(self.chain.seller_action(Action.NONE), state=State.WITHDRAWN)

    # -- the monitor ---------------------------------------------------------------------------
    @rule()
    def monitor_reads_the_diff(self) -> None:
        self.deliver()

    # -- a person, the operator -----------------------------------------------------------------
    @precondition(lambda self: self.job.status is S.AWAITING_INPUT)
    @rule()
    def person_answers(self) -> None:
        self.write(on_input(self.job, self.job.status_id, _answer(), at(self.now)))

    @rule(now=st.integers(0, 9).map(lambda n: n == 0))  # rarely
    def operator_cancels(self, now: bool) -> None:
        if not now:
            return
        try:
            decision = on_cancel(
                self.job, self.invoice, self.chain.shown(), "", at(self.now), POLICY
            )
        except DomainError:
            return  # refused with a reason: the operator is told why
        self.write(decision)

    # A refund ordered while the job runs can leave it RUNNING with no step (see
    # test_v2_refund_authorized_while_the_job_runs_fails_it): only for finished jobs here.
    @precondition(lambda self: self.job.is_terminal)
    @rule()
    def operator_refunds(self) -> None:
        try:
            decision = on_operator_refund(self.job, self.chain.shown(), at(self.now))
        except DomainError:
            return
        self.write(decision)

    # A recovery ordered where error-state-recovery refuses it schedules a step bound to
    # fail (see test_operator_recover_where_the_service_refuses_recovery_says_so): only
    # where the service takes it here.
    @precondition(lambda self: not self._recovery_refused())
    @rule()
    def operator_recovers(self) -> None:
        try:
            decision = on_operator_recover(self.job, self.chain.shown(), at(self.now), POLICY)
        except DomainError:
            return
        self.write(decision)

    # -- the worker ------------------------------------------------------------------------------
    # Steps due after the horizon are not run: a withdrawal that never comes is looked at
    # ever more rarely (the FOLLOW delay doubles once it is late), and the machine would
    # leave the calendar.
    @precondition(lambda self: self.job.step is not None and (self.job.run_at or 0) < HORIZON)
    @rule(outcome=OUTCOMES, then=OUTCOMES)
    def worker_runs_the_due_step(self, outcome: str, then: str = "ok") -> None:
        """`outcome`: how the step's call goes; `then`: how the step it continues with
        (a Continue) goes."""
        assert self.job.run_at is not None
        self.now = max(self.now, self.job.run_at)
        self.job = claim(self.job)
        for _ in range(5):
            decision = self._step(outcome)
            if decision is None:
                return
            self.write(decision)
            if not isinstance(decision.step, Continue):
                return
            outcome = then

    def _step(self, outcome: str) -> Decision | None:
        job, invoice, now = self.job, self.invoice, at(self.now)
        seen = self.chain.shown()
        if job.step is Step.RUN:
            claimed = on_run_claimed(job, invoice, now, POLICY)
            if not claimed.writes_nothing:
                return claimed
            if outcome == "lost":
                return None  # the process died: the lease expires, the step is claimed again
            if outcome == "ask":
                return on_input_requested(job, {"input_data": []}, "?", now)
            if outcome == "fail":
                return on_agent_failed(job, invoice, "AGENT_FAILED", "boom", now, POLICY)
            return on_result(job, invoice, RESULT, RESULT_HASH, now)
        if job.step is Step.SUBMIT:
            return self._submit(outcome)
        if job.step is Step.FOLLOW:
            return on_follow(job, invoice, seen, now, POLICY)
        if job.step is Step.EXPIRE:
            return on_expiry_check(job, invoice, seen, now, POLICY)
        if job.step is Step.INPUT_DEADLINE:
            return on_input_deadline(job, invoice, now, POLICY)
        if job.step is Step.RECOVER:
            return self._recover()
        if job.step is Step.REFUND:
            return self._refund()
        raise AssertionError(f"no handler for {job.step}")

    def _submit(self, outcome: str) -> Decision | None:
        job, invoice, now = self.job, self.invoice, at(self.now)
        claimed = on_submit_claimed(job, invoice, now, POLICY)
        if not claimed.writes_nothing:
            return claimed
        seen = self.chain.shown()
        if job.attempt > 1 and submission_taken(job, seen):
            return on_submitted(job, now, POLICY, detail="accepted on an earlier try")
        if outcome == "403":
            return on_submit_refused_key(job, now, POLICY)
        if outcome == "409":
            return retry_later(job, Step.SUBMIT, now, POLICY)
        chain = self.chain
        if chain.state in ACCEPTS_SUBMIT and chain.action == Action.WAITING_FOR_EXTERNAL_ACTION:
            self.chain = chain.seller_action(Action.SUBMIT_RESULT_REQUESTED, RESULT_HASH)
            self.submitted_once = True
            return None if outcome == "lost" else on_submitted(job, now, POLICY)
        # 404 "Payment not found or in invalid state": read the payment (steps/submit.py).
        if submission_taken(job, seen):
            return on_submitted(job, now, POLICY, detail="already taken")
        reaction = on_payment(job, invoice, seen, now, POLICY)
        if reaction.status is not None or not _keeps_step(reaction):
            return reaction
        return reaction.then(retry_later(job, Step.SUBMIT, now, POLICY))

    def _recovery_refused(self) -> bool:
        """error-state-recovery/index.ts:81-121 answers 400."""
        chain = self.chain
        return (
            chain.state is None
            or chain.action != Action.WAITING_FOR_MANUAL_ACTION
            or chain.error_type is None
            or chain.state in SETTLED_STATES
            or chain.parked is None
        )

    def _recover(self) -> Decision | None:
        job, invoice, now = self.job, self.invoice, at(self.now)
        seen = self.chain.shown()
        claimed = on_recover_claimed(job, invoice, seen, now, POLICY)
        if not claimed.writes_nothing:
            return claimed
        chain = self.chain
        if self._recovery_refused():  # 400: the payment says what comes next
            return on_follow(job, invoice, seen, now, POLICY)
        retried = (
            Action.SUBMIT_RESULT_REQUESTED
            if chain.parked == "submit"
            else Action.AUTHORIZE_REFUND_REQUESTED
        )
        self.chain = replace(chain.seller_action(retried, chain.next_hash), parked=None)
        return on_recovered(job, now, POLICY)

    def _refund(self) -> Decision | None:
        job, invoice, now = self.job, self.invoice, at(self.now)
        seen = self.chain.shown()
        claimed = on_refund_claimed(job, invoice, seen, now, POLICY)
        if not claimed.writes_nothing:
            return claimed
        chain = self.chain
        if chain.state in ACCEPTS_REFUND and chain.action == Action.WAITING_FOR_EXTERNAL_ACTION:
            self.chain = chain.seller_action(Action.AUTHORIZE_REFUND_REQUESTED)
            return on_refund_authorized(job, now, POLICY)
        # 404: retried, then a person is asked (steps/payment_steps.py _retry_or_ask).
        if job.attempt < MAX_SELLER_TRIES:
            return retry_later(job, Step.REFUND, now, POLICY)
        return needs_attention(job, AttentionReason.REFUND_FAILED, "refused", "", now).with_step(
            None
        )

    # -- the properties ---------------------------------------------------------------------------
    @invariant()
    def the_same_payment_again_decides_nothing(self) -> None:
        if self.invoice is None:
            return
        seen = self.chain.shown()
        first = on_payment(self.job, self.invoice, seen, at(self.now), POLICY)
        job, invoice = apply(self.job, self.invoice, first, at(self.now))
        again = on_payment(job, invoice, seen, at(self.now), POLICY)
        assert again.writes_nothing, again

    @invariant()
    def an_unfinished_job_has_a_next_step(self) -> None:
        if self.job.is_terminal or self._known_stuck():
            return
        assert self.job.step is not None, (self.job.status, self.invoice, self.chain)

    def _known_stuck(self) -> bool:
        """A RUNNING job with our result on chain other than as ResultSubmitted is left
        RUNNING (test_a_recovered_submission_landing_as_a_dispute_completes_the_job)."""
        return (
            self.job.status is S.RUNNING
            and self.invoice is not None
            and self.invoice.on_chain_state in _ON_CHAIN_BUT_NOT_COMPLETED
        )

    @invariant()
    def a_settled_payment_leaves_no_step(self) -> None:
        if self.invoice is not None and self.invoice.on_chain_state in SETTLED_STATES:
            assert self.job.step is None, (self.job.step, self.invoice.on_chain_state)

    @invariant()
    def the_job_never_goes_back(self) -> None:
        assert self.job.updated_at >= at(T0_MS)
        if self.submitted_once and self.job.result_hash:
            assert self.job.result_hash == RESULT_HASH


def _keeps_step(decision: Decision) -> bool:
    return decision.step is KEEP


def _answer() -> Answer:
    return Answer(input_data={"name": "Ada"}, input_hash="12" * 32, request_id=None)


Lifecycle.TestCase.settings = settings(
    # LIFECYCLE_EXAMPLES=5000 for a longer hunt (with --timeout=0).
    max_examples=int(os.environ.get("LIFECYCLE_EXAMPLES", "300")),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLifecycle = Lifecycle.TestCase


# =====================================================================================
# Replaying the diff: any prefix, each payment state delivered twice
# =====================================================================================
def _walk_edges(source: PaymentSourceType) -> dict[str, list[str]]:
    """The contract's moves between escrow states (the seller's own SubmitResult included:
    the walk makes our job submit first)."""
    edges = {
        State.FUNDS_LOCKED: [
            State.RESULT_SUBMITTED,
            State.REFUND_REQUESTED,
            State.REFUND_WITHDRAWN,
        ],
        State.RESULT_SUBMITTED: [State.DISPUTED, State.WITHDRAWN],
        State.REFUND_REQUESTED: [State.DISPUTED, State.REFUND_WITHDRAWN],
        State.DISPUTED: [State.DISPUTED_WITHDRAWN],
    }
    if source is V1:
        edges[State.REFUND_REQUESTED].append(State.FUNDS_LOCKED)
        edges[State.DISPUTED] += [State.RESULT_SUBMITTED, State.REFUND_REQUESTED]
    else:
        edges[State.FUNDS_LOCKED].append(State.REFUND_AUTHORIZED)
        edges[State.RESULT_SUBMITTED].append(State.REFUND_AUTHORIZED)
        edges[State.REFUND_REQUESTED].append(State.REFUND_AUTHORIZED)
        edges[State.DISPUTED] += [State.WITHDRAW_AUTHORIZED, State.REFUND_AUTHORIZED]
        edges[State.WITHDRAW_AUTHORIZED] = [State.WITHDRAWN]
        edges[State.REFUND_AUTHORIZED] = [State.REFUND_WITHDRAWN]
    return edges


@st.composite
def contract_walks(draw: st.DrawFn) -> tuple[PaymentSourceType, list[str]]:
    source = draw(st.sampled_from(SOURCES))
    edges = _walk_edges(source)
    walk = [State.FUNDS_LOCKED]
    while walk[-1] in edges and len(walk) < 12:
        walk.append(draw(st.sampled_from(edges[walk[-1]])))
    return source, walk


_RESULT_ON_CHAIN = {State.RESULT_SUBMITTED, State.DISPUTED, State.WITHDRAW_AUTHORIZED}


def _run_walk(
    source: PaymentSourceType, walk: list[str], times: int
) -> list[tuple[Job, Invoice | None]]:
    """Deliver each state of `walk` `times` times in a row; the job does its own part
    (runs, submits) when the walk needs our result. The job after each state."""
    now = at(T0_MS + 10 * MINUTE)
    job, invoice = apply(
        intent(), None, on_payment_requested(intent(), terms(source=source), now, POLICY), now
    )
    seen_after: list[tuple[Job, Invoice | None]] = []
    for state in walk:
        if state in _RESULT_ON_CHAIN and job.status is S.RUNNING and job.result is None:
            job, invoice = apply(
                job, invoice, on_result(job, invoice, RESULT, RESULT_HASH, now), now
            )
            job, invoice = apply(job, invoice, on_submitted(job, now, POLICY), now)
        result_hash = (
            RESULT_HASH
            if state in _RESULT_ON_CHAIN | {State.WITHDRAWN, State.DISPUTED_WITHDRAWN}
            else ""
        )
        action = Action.NONE if state in SETTLED_STATES else Action.WAITING_FOR_EXTERNAL_ACTION
        seen = payment(state, action, result_hash=result_hash, source=source)
        for delivery in range(times):
            decision = on_payment(job, invoice, seen, now, POLICY)
            if delivery:
                assert decision.writes_nothing, (state, decision)
            job, invoice = apply(job, invoice, decision, now)
        seen_after.append((job, invoice))
    return seen_after


def _books(job: Job, invoice: Invoice | None) -> tuple[object, ...]:
    ignore = {"status_id", "version", "updated_at", "event_count"}
    attention = job.attention.model_dump(exclude={"since"}) if job.attention else None
    return (
        job.model_dump(exclude=ignore | {"attention"}),
        attention,
        invoice.model_dump(exclude={"updated_at", "paid_at"}) if invoice else None,
    )


@settings(max_examples=300, deadline=None)
@given(contract_walks())
def test_replaying_any_prefix_of_the_diff_changes_nothing(
    walked: tuple[PaymentSourceType, list[str]],
) -> None:
    source, walk = walked
    once = _run_walk(source, walk, times=1)
    thrice = _run_walk(source, walk, times=3)
    for (job_a, invoice_a), (job_b, invoice_b) in zip(once, thrice, strict=True):
        assert _books(job_a, invoice_a) == _books(job_b, invoice_b)
        assert job_a.event_count == job_b.event_count  # no event written twice
    last_job, last_invoice = once[-1]
    if last_invoice is not None and last_invoice.on_chain_state in SETTLED_STATES:
        assert last_job.step is None


@pytest.mark.parametrize("source", SOURCES)
def test_the_happy_path_through_the_state_machine(source: PaymentSourceType) -> None:
    """One readable run of the machine: paid, run, submitted, on chain, withdrawn."""
    machine = Lifecycle()
    machine.payment_requested(source)
    machine.buyer_locks_funds(in_time=True)
    machine.monitor_reads_the_diff()
    assert machine.job.status is S.RUNNING
    machine.worker_runs_the_due_step("ok")  # the agent, then submit-result
    assert machine.job.status is S.COMPLETED
    machine.chain_job_submits_the_result(succeeds=True)
    machine.worker_runs_the_due_step("ok")  # FOLLOW sees ResultSubmitted
    assert machine.invoice is not None and machine.invoice.on_chain_state == State.RESULT_SUBMITTED
    machine.time_passes(minutes=(UNLOCK - machine.now) // MINUTE + 11)
    machine.service_withdraws_for_us()
    machine.worker_runs_the_due_step("ok")
    assert machine.invoice is not None and machine.invoice.on_chain_state == State.WITHDRAWN
    assert machine.job.step is None
    machine.the_same_payment_again_decides_nothing()
    machine.a_settled_payment_leaves_no_step()
    machine.teardown()


@pytest.mark.parametrize("source", SOURCES)
def test_a_recovered_submission_landing_as_a_dispute_completes_the_job(
    source: PaymentSourceType,
) -> None:
    machine = Lifecycle()
    machine.payment_requested(source)
    machine.buyer_locks_funds(in_time=True)
    machine.monitor_reads_the_diff()
    machine.worker_runs_the_due_step("ok", then="lost")  # result stored; the 200 is lost
    assert machine.job.status is S.RUNNING and machine.chain.next_hash == RESULT_HASH
    machine.buyer_requests_a_refund()
    machine.chain_job_submits_the_result(succeeds=False)  # parked, with our hash
    machine.monitor_reads_the_diff()
    assert machine.job.step is Step.RECOVER
    machine.worker_runs_the_due_step("ok")  # error-state-recovery taken -> FOLLOW
    machine.chain_job_submits_the_result(succeeds=True)  # lands: Disputed
    assert machine.chain.state == State.DISPUTED
    machine.worker_runs_the_due_step("ok")  # FOLLOW sees it
    assert machine.job.status is S.COMPLETED
