"""The MIP-003 job statuses and the only transitions between them."""

from __future__ import annotations

from enum import StrEnum

from agentjobs.server.domain.errors import InvalidStateTransitionError


class JobStatus(StrEnum):
    """Exactly the five MIP-003 statuses; the marketplace rejects anything else."""

    AWAITING_PAYMENT = "awaiting_payment"
    AWAITING_INPUT = "awaiting_input"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.COMPLETED, JobStatus.FAILED})

LEGAL_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.AWAITING_PAYMENT: frozenset({JobStatus.RUNNING, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.AWAITING_INPUT, JobStatus.COMPLETED, JobStatus.FAILED}),
    JobStatus.AWAITING_INPUT: frozenset({JobStatus.RUNNING, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
}


def validate_transition(job_id: str, current: JobStatus, target: JobStatus) -> None:
    """Raise InvalidStateTransitionError unless current -> target is in LEGAL_TRANSITIONS."""
    if target not in LEGAL_TRANSITIONS[current]:
        raise InvalidStateTransitionError(job_id, current.value, target.value)
