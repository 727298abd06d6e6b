"""Money that needs a person: the reasons, and what the person can do."""

from __future__ import annotations

from datetime import datetime

from agentjobs.server.domain.events import EventType
from agentjobs.server.domain.job import Attention, Job
from agentjobs.server.domain.lifecycle.decision import Decision, NewEvent


class AttentionReason:
    SUBMISSION_FAILED = "SUBMISSION_FAILED"
    SUBMISSION_NOT_PICKED_UP = "SUBMISSION_NOT_PICKED_UP"
    API_KEY_MISMATCH = "API_KEY_MISMATCH"
    DISPUTED = "DISPUTED"
    FUNDS_LOCKED_AFTER_FAILURE = "FUNDS_LOCKED_AFTER_FAILURE"
    FUNDS_OR_DATUM_INVALID = "FUNDS_OR_DATUM_INVALID"
    REFUND_FAILED = "REFUND_FAILED"
    PAYMENT_ERROR = "PAYMENT_ERROR"
    PAYMENT_UNKNOWN = "PAYMENT_UNKNOWN"
    PAYMENT_SOURCE = "PAYMENT_SOURCE"
    WITHDRAWAL_LATE = "WITHDRAWAL_LATE"


def needs_attention(job: Job, reason: str, message: str, action: str, now: datetime) -> Decision:
    """Set the job's attention (one event, unless the same reason is already set)."""
    if job.attention is not None and job.attention.reason == reason:
        if job.attention.message == message:
            return Decision()
        attention = job.attention.model_copy(update={"message": message, "action": action})
        return Decision(fields={"attention": attention})
    attention = Attention(reason=reason, message=message, action=action, since=now)
    return Decision(
        fields={"attention": attention},
        events=(NewEvent(EventType.ATTENTION_NEEDED, message, {"reason": reason}),),
        warnings=(f"needs attention ({reason}): {message}",),
    )


def attention_cleared(job: Job) -> Decision:
    return Decision(fields={"attention": None}) if job.attention is not None else Decision()
