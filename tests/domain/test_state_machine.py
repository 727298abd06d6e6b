"""The state machine as DESIGN.md draws it: every pair of statuses checked."""

from __future__ import annotations

import itertools

import pytest

from agentjobs.server.domain import (
    LEGAL_TRANSITIONS,
    InvalidStateTransitionError,
    JobStatus,
    validate_transition,
)
from agentjobs.server.domain.identifiers import identifier_from_purchaser_violation

S = JobStatus
DESIGN_EDGES = {
    (S.AWAITING_PAYMENT, S.RUNNING),
    (S.AWAITING_PAYMENT, S.FAILED),
    (S.RUNNING, S.AWAITING_INPUT),
    (S.AWAITING_INPUT, S.RUNNING),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.AWAITING_INPUT, S.FAILED),
}


def test_exactly_the_five_mip003_statuses() -> None:
    assert {s.value for s in JobStatus} == {
        "awaiting_payment",
        "awaiting_input",
        "running",
        "completed",
        "failed",
    }


@pytest.mark.parametrize(("current", "target"), list(itertools.product(JobStatus, JobStatus)))
def test_every_pair(current: JobStatus, target: JobStatus) -> None:
    if (current, target) in DESIGN_EDGES:
        validate_transition("j", current, target)
        assert target in LEGAL_TRANSITIONS[current]
    else:
        with pytest.raises(InvalidStateTransitionError) as caught:
            validate_transition("j", current, target)
        assert caught.value.metadata == {
            "job_id": "j",
            "current_status": current.value,
            "target_status": target.value,
        }


def test_terminal_statuses_have_no_way_out() -> None:
    assert {s for s in JobStatus if s.is_terminal} == {S.COMPLETED, S.FAILED}
    assert not LEGAL_TRANSITIONS[S.COMPLETED] and not LEGAL_TRANSITIONS[S.FAILED]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "required"),
        ("xyz0123456789a", "hexadecimal"),
        ("abcdef0123456", "14 to 26"),
        ("ab" * 14, "14 to 26"),
        ("a" * 27, "14 to 26"),
        ("abcdef012345678", "even"),
    ],
)
def test_identifier_from_purchaser_rules(value: str, problem: str) -> None:
    violation = identifier_from_purchaser_violation(value)
    assert violation is not None and problem in violation.description


@pytest.mark.parametrize("value", ["aabbccddeeff00", "AABBCCDDEEFF0011", "ab" * 13])
def test_identifier_from_purchaser_accepted(value: str) -> None:
    assert identifier_from_purchaser_violation(value) is None
