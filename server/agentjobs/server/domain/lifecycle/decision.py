"""What the lifecycle decides for one job, and how a decision changes the job.

A Decision is data: the repository applies it in one transaction (the job row by
compare-and-set on its version, the invoice, the events, the next step) and decides
nothing itself. `preview` is the one place that says what a decision does to a Job.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from agentjobs.server.domain.events import EventType
from agentjobs.server.domain.invoice import InvoiceStatus
from agentjobs.server.domain.job import Amount, Job
from agentjobs.server.domain.status import JobStatus, validate_transition
from agentjobs.server.domain.steps import KEEP, Scheduled, StepChange


@dataclass(frozen=True)
class NewEvent:
    type: EventType
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InvoiceChange:
    """Fields of the job's invoice to set; None leaves a field as it is."""

    status: InvoiceStatus | None = None
    on_chain_state: str | None = None
    # The payment's last error as text ("" clears it).
    next_action: str | None = None

    def merged(self, later: InvoiceChange | None) -> InvoiceChange:
        if later is None:
            return self
        return InvoiceChange(
            status=later.status or self.status,
            on_chain_state=later.on_chain_state or self.on_chain_state,
            next_action=self.next_action if later.next_action is None else later.next_action,
        )


@dataclass(frozen=True)
class Continue:
    """Like Scheduled, but the worker that holds the job's lease keeps it and goes on
    with the new step at once (no second claim: one transaction fewer per job)."""

    step: Scheduled


@dataclass(frozen=True)
class Decision:
    # The job's new status (validated against LEGAL_TRANSITIONS by preview).
    status: JobStatus | None = None
    # Other Job fields to set (result, error, attention, terms, ...).
    fields: Mapping[str, Any] = field(default_factory=dict)
    # Create the job's invoice with these amounts, in the same transaction.
    new_invoice: tuple[Amount, ...] | None = None
    invoice: InvoiceChange | None = None
    events: tuple[NewEvent, ...] = ()
    step: StepChange | Continue = KEEP
    # Lines the applier logs at WARNING once the decision is written (the job id first).
    warnings: tuple[str, ...] = ()

    @property
    def writes_nothing(self) -> bool:
        return (
            self.status is None
            and not self.fields
            and self.new_invoice is None
            and self.invoice is None
            and not self.events
            and self.step is KEEP
        )

    def then(self, later: Decision) -> Decision:
        """This decision followed by `later` (decided on the job as this one leaves it)."""
        invoice = later.invoice if self.invoice is None else self.invoice.merged(later.invoice)
        return Decision(
            status=later.status or self.status,
            fields={**self.fields, **later.fields},
            new_invoice=self.new_invoice if later.new_invoice is None else later.new_invoice,
            invoice=invoice,
            events=self.events + later.events,
            step=self.step if later.step is KEEP else later.step,
            warnings=self.warnings + later.warnings,
        )

    def with_step(self, step: StepChange | Continue) -> Decision:
        return replace(self, step=step)


NOTHING = Decision()


def scheduled_step(decision: Decision) -> Scheduled | object | None:
    """The step the decision leaves the job with: Scheduled, None, or KEEP."""
    step = decision.step
    return step.step if isinstance(step, Continue) else step


def preview(job: Job, decision: Decision, now: datetime) -> Job:
    """The job as it is once `decision` is applied. Raises InvalidStateTransitionError
    for a status change LEGAL_TRANSITIONS forbids. A new status gets a new status_id;
    leaving AWAITING_INPUT clears the question."""
    updates: dict[str, Any] = dict(decision.fields)
    if decision.status is not None and decision.status is not job.status:
        validate_transition(job.job_id, job.status, decision.status)
        updates["status"] = decision.status
        updates["status_id"] = str(uuid.uuid4())
        if job.status is JobStatus.AWAITING_INPUT:
            updates.setdefault("input_schema", None)
            updates.setdefault("input_request_message", None)
    step = scheduled_step(decision)
    if isinstance(step, Scheduled):
        if step.step is not job.step:
            updates["attempt"] = 1 if isinstance(decision.step, Continue) else 0
        elif isinstance(decision.step, Continue):
            updates["attempt"] = job.attempt
        updates["step"] = step.step
        updates["run_at"] = step.run_at
    elif step is None:
        updates.update(step=None, run_at=None, attempt=0)
    updates["version"] = job.version + 1
    updates["updated_at"] = max(now, job.updated_at)
    return job.model_copy(update=updates)
