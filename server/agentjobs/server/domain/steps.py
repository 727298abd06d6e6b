"""A job's next step: what the database schedules and a worker claims."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Step(StrEnum):
    # POST /payment for a stored intent: held by the StartJob call that wrote it; after a
    # crash the worker that takes it over finds the payment the call created, or none.
    REQUEST_PAYMENT = "request_payment"
    # payByTime + grace passed: look at the payment once more, then expire the job.
    EXPIRE = "expire"
    # Run (or resume) the agent.
    RUN = "run"
    # Submit the stored result's hash.
    SUBMIT = "submit"
    # Look at the payment: a submission on its way to the chain, a refund, a withdrawal.
    FOLLOW = "follow"
    # POST /payment/error-state-recovery for an action of ours the chain job parked.
    RECOVER = "recover"
    # POST /payment/authorize-refund.
    REFUND = "refund"
    # A person has until this time to answer the job's question.
    INPUT_DEADLINE = "input_deadline"


@dataclass(frozen=True)
class Scheduled:
    """Make `step` the job's next step, due at `run_at` (epoch ms)."""

    step: Step
    run_at: int


class _Keep:
    """Leave the job's step (and any lease on it) as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()
# None clears the step: nothing more to do for the job.
StepChange = Scheduled | _Keep | None
