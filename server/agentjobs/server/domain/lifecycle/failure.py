"""A job fails: what becomes of the buyer's money, per the payment contract's rules.

V1 (Web3CardanoV1): no seller transaction can hand locked funds back (AuthorizeRefund
executes only from Disputed); a buyer whose job got no result withdraws them after
submitResultTime (WithdrawRefund from FundsLocked or RefundRequested).
V2 (Web3CardanoV2): once the buyer has asked for a refund (RefundRequested) the seller
may AuthorizeRefund, and the buyer can then withdraw at once: we do so. (The contract
would also allow it from FundsLocked; the payment service's 0.28.0 route refuses that.)
"""

from __future__ import annotations

from datetime import UTC, datetime

from agentjobs.server.domain.events import EventType
from agentjobs.server.domain.invoice import Invoice, InvoiceStatus
from agentjobs.server.domain.job import Amount, Job, JobError
from agentjobs.server.domain.lifecycle.decision import Decision, InvoiceChange, NewEvent
from agentjobs.server.domain.lifecycle.policy import MINUTE_MS, Policy
from agentjobs.server.domain.payment import OnChainState, PaymentSourceType
from agentjobs.server.domain.status import JobStatus
from agentjobs.server.domain.steps import Scheduled, Step, StepChange

# Funds in the contract with no result on chain: the buyer's to take back.
_REFUNDABLE = frozenset({OnChainState.FUNDS_LOCKED, OnChainState.REFUND_REQUESTED})


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def describe_amounts(amounts: tuple[Amount, ...]) -> str:
    if not amounts:
        return "funds"
    return ", ".join(
        f"{a.amount} lovelace" if not a.unit else f"{a.amount} {a.unit}" for a in amounts
    )


def is_v2(job: Job) -> bool:
    return job.payment_source_type == PaymentSourceType.V2


def money_after_failure(
    job: Job, invoice: Invoice | None, on_chain_state: str | None, now_ms: int, policy: Policy
) -> tuple[StepChange, str | None]:
    """The step that returns the buyer's money, and the sentence saying what happens to
    it (None when no money of the buyer's is involved)."""
    if job.is_free or invoice is None or on_chain_state is None:
        return None, None
    funds = describe_amounts(invoice.amounts)
    if on_chain_state in _REFUNDABLE:
        if is_v2(job) and on_chain_state == OnChainState.REFUND_REQUESTED:
            return Scheduled(Step.REFUND, now_ms), (
                f"the buyer's {funds} are locked for payment {job.blockchain_identifier}; "
                "a refund is being authorized (V2), so the buyer can withdraw them at once; "
                "nothing is earned"
            )
        how = (
            "a refund request from the buyer will be authorized at once (V2)"
            if is_v2(job)
            else "no seller action returns them on V1"
        )
        return Scheduled(Step.FOLLOW, max(now_ms, job.submit_result_time) + MINUTE_MS), (
            f"the buyer's {funds} stay locked for payment {job.blockchain_identifier} "
            f"until submitResultTime ({iso(job.submit_result_time)}); then the buyer can "
            f"withdraw them ({how}); nothing is earned"
        )
    return Scheduled(Step.FOLLOW, now_ms + policy.retry_max_ms), (
        f"payment {job.blockchain_identifier} is {on_chain_state}; its {funds} are "
        "followed until they settle"
    )


def failure(
    job: Job,
    invoice: Invoice | None,
    reason: str,
    message: str,
    now_ms: int,
    policy: Policy,
    *,
    event: EventType = EventType.FAILED,
    invoice_change: InvoiceChange | None = None,
) -> Decision:
    """The job fails with `reason`; exactly one WARNING line says why and what happens
    to the buyer's money (when the job was paid)."""
    if job.is_terminal:
        return Decision()
    on_chain = (
        invoice_change.on_chain_state
        if invoice_change is not None and invoice_change.on_chain_state
        else (invoice.on_chain_state if invoice is not None else None)
    )
    step, money = money_after_failure(job, invoice, on_chain, now_ms, policy)
    warnings: tuple[str, ...] = ()
    if money is not None:
        warnings = (f"paid job failed ({reason}: {message}): {money}",)
    change = invoice_change
    if change is None and invoice is not None and invoice.status is InvoiceStatus.PENDING:
        change = InvoiceChange(status=InvoiceStatus.EXPIRED)
    return Decision(
        status=JobStatus.FAILED,
        fields={"error": JobError(reason=reason, message=message)},
        invoice=change,
        events=(NewEvent(event, message, {"reason": reason}),),
        step=step,
        warnings=warnings,
    )
