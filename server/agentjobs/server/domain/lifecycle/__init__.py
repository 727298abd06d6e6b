"""Every rule of a job, pure: given the job, its invoice, a payment state and the time,
each function returns a Decision (the transition, the invoice change, the events and
the job's next step). The repository applies decisions; it decides nothing.

- payment_rules: the payment changed (diff, follow-up look, expiry check), the payment
  service answered StartJob;
- work_rules: the agent ran, the result was submitted, recovery, refunds, a person's
  answer, operator commands;
- failure: what a failure does with the buyer's money (V1 and V2 contracts);
- attention: money that needs a person.
"""

from agentjobs.server.domain.lifecycle.attention import AttentionReason
from agentjobs.server.domain.lifecycle.decision import (
    NOTHING,
    Continue,
    Decision,
    InvoiceChange,
    NewEvent,
    preview,
    scheduled_step,
)
from agentjobs.server.domain.lifecycle.failure import failure
from agentjobs.server.domain.lifecycle.payment_rules import (
    PaymentMismatchError,
    ms,
    on_expiry_check,
    on_follow,
    on_payment,
    on_payment_requested,
)
from agentjobs.server.domain.lifecycle.policy import Policy
from agentjobs.server.domain.lifecycle.work_rules import (
    Answer,
    free_job_started,
    on_agent_failed,
    on_cancel,
    on_input,
    on_input_deadline,
    on_input_requested,
    on_operator_recover,
    on_operator_refund,
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
    retry_later,
    submission_taken,
)

__all__ = [
    "NOTHING",
    "Answer",
    "AttentionReason",
    "Continue",
    "Decision",
    "InvoiceChange",
    "NewEvent",
    "PaymentMismatchError",
    "Policy",
    "failure",
    "free_job_started",
    "ms",
    "on_agent_failed",
    "on_cancel",
    "on_expiry_check",
    "on_follow",
    "on_input",
    "on_input_deadline",
    "on_input_requested",
    "on_operator_recover",
    "on_operator_refund",
    "on_payment",
    "on_payment_requested",
    "on_recover_claimed",
    "on_recover_refused",
    "on_recovered",
    "on_refund_authorized",
    "on_refund_claimed",
    "on_refund_refused_key",
    "on_result",
    "on_run_claimed",
    "on_submit_claimed",
    "on_submit_refused_key",
    "on_submit_rejected",
    "on_submitted",
    "preview",
    "retry_later",
    "scheduled_step",
    "submission_taken",
]
