"""FOLLOW, EXPIRE, RECOVER, REFUND and INPUT_DEADLINE: look at the payment, let the
lifecycle decide, make the seller call it asks for."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from agentjobs.server.domain import (
    DomainError,
    Invoice,
    Job,
    PaymentKeyMismatchError,
    PaymentNotFoundError,
    PaymentServiceRejectedError,
    PaymentServiceUnavailableError,
)
from agentjobs.server.domain.lifecycle import (
    Decision,
    Policy,
    on_expiry_check,
    on_follow,
    on_input_deadline,
    on_recover_claimed,
    on_recover_refused,
    on_recovered,
    on_refund_authorized,
    on_refund_claimed,
    on_refund_refused_key,
    retry_later,
)
from agentjobs.server.domain.lifecycle.attention import AttentionReason, needs_attention
from agentjobs.server.domain.payment import PaymentState
from agentjobs.server.domain.steps import Step
from agentjobs.server.services.core import StepRun

log = logging.getLogger(__name__)

# Seller calls refused for a reason we cannot see (404 "invalid state") retried this
# often before a person is asked to look.
MAX_SELLER_TRIES = 6

_NOT_KNOWN = object()

# on_recover_claimed, on_refund_claimed: what a seller-call step does before its call.
ClaimRule = Callable[[Job, Invoice | None, PaymentState | None, datetime, Policy], Decision]


async def _payment(run: StepRun) -> PaymentState | object | None:
    """The payment now; None if the service does not know it; _NOT_KNOWN (and the step
    backed off) if the service could not be asked."""
    try:
        return await run.core.gateway.get_payment(run.job.blockchain_identifier)
    except PaymentNotFoundError:
        return None
    except (PaymentServiceUnavailableError, DomainError) as exc:
        step = run.job.step or Step.FOLLOW
        log.warning(
            "job %s: cannot read payment %s for %s (%s); trying again later",
            run.job.job_id,
            run.job.blockchain_identifier,
            step.value,
            exc.reason,
        )
        policy = run.core.policy
        await run.settle(lambda j, i, n: retry_later(j, step, n, policy))
        return _NOT_KNOWN


async def follow(run: StepRun) -> None:
    payment = await _payment(run)
    if payment is _NOT_KNOWN:
        return
    assert payment is None or isinstance(payment, PaymentState)
    policy = run.core.policy
    await run.settle(lambda j, i, n: on_follow(j, i, payment, n, policy))


async def expire(run: StepRun) -> None:
    payment = await _payment(run)
    if payment is _NOT_KNOWN:
        return
    assert payment is None or isinstance(payment, PaymentState)
    policy = run.core.policy
    await run.settle(lambda j, i, n: on_expiry_check(j, i, payment, n, policy))


async def input_deadline(run: StepRun) -> None:
    policy = run.core.policy
    await run.settle(lambda j, i, n: on_input_deadline(j, i, n, policy))


async def _payment_to_act_on(run: StepRun, claimed: ClaimRule) -> PaymentState | None:
    """The payment, when the step's rule before its seller call (`claimed`) says to make
    the call now; None when the rule settled the step itself, or the payment could not
    be read (the step backed off)."""
    payment = await _payment(run)
    if payment is _NOT_KNOWN:
        return None
    assert payment is None or isinstance(payment, PaymentState)
    policy = run.core.policy
    if not claimed(run.job, run.invoice, payment, run.core.clock.now(), policy).writes_nothing:
        await run.settle(lambda j, i, n: claimed(j, i, payment, n, policy))
        return None
    assert isinstance(payment, PaymentState)
    return payment


async def recover(run: StepRun) -> None:
    payment = await _payment_to_act_on(run, on_recover_claimed)
    if payment is None:
        return
    core, policy = run.core, run.core.policy
    assert payment.updated_at is not None
    try:
        await core.gateway.recover_error_state(payment.blockchain_identifier, payment.updated_at)
    except PaymentKeyMismatchError as refused:
        note = refused.message
        await run.settle(lambda j, i, n: on_recover_refused(j, note, n))
    except PaymentServiceRejectedError as exc:
        # 400: not in an error state (any more), or its action cannot be retried: the
        # payment says which.
        fresh = await _payment(run)
        if fresh is _NOT_KNOWN:
            return
        assert fresh is None or isinstance(fresh, PaymentState)
        if fresh is not None and fresh.needs_manual_action:
            # Still parked, and the service will not retry it: following it would only
            # suggest the same recovery again.
            note = exc.message
            log.warning(
                "job %s: error-state-recovery refused (%s); payment %s stays parked "
                "until a person acts in the payment service",
                run.job.job_id,
                note,
                fresh.blockchain_identifier,
            )
            await run.settle(lambda j, i, n: on_recover_refused(j, note, n, retryable=False))
        else:
            log.info("job %s: error-state-recovery refused: %s", run.job.job_id, exc.message)
            await run.settle(lambda j, i, n: on_follow(j, i, fresh, n, policy))
    except (PaymentNotFoundError, DomainError) as exc:
        # 404: updatedAt moved (the payment changed since we read it): read it again.
        note = exc.message
        log.warning("job %s: error-state-recovery not taken (%s)", run.job.job_id, note)
        await run.settle(lambda j, i, n: _retry_or_ask(j, i, n, Step.RECOVER, note, run))
    else:
        await run.settle(lambda j, i, n: on_recovered(j, n, policy))


async def refund(run: StepRun) -> None:
    payment = await _payment_to_act_on(run, on_refund_claimed)
    if payment is None:
        return
    core, policy = run.core, run.core.policy
    try:
        await core.gateway.authorize_refund(payment.blockchain_identifier)
    except PaymentKeyMismatchError:
        await run.settle(lambda j, i, n: on_refund_refused_key(j, n))
    except DomainError as exc:
        note = exc.message
        log.warning("job %s: authorize-refund not taken (%s)", run.job.job_id, note)
        await run.settle(lambda j, i, n: _retry_or_ask(j, i, n, Step.REFUND, note, run))
    else:
        log.info(
            "job %s: authorized the refund of payment %s",
            run.job.job_id,
            payment.blockchain_identifier,
        )
        await run.settle(lambda j, i, n: on_refund_authorized(j, n, policy))


def _retry_or_ask(
    job: Job, invoice: Invoice | None, now: datetime, step: Step, message: str, run: StepRun
) -> Decision:
    policy = run.core.policy
    if job.attempt < MAX_SELLER_TRIES:
        return retry_later(job, step, now, policy)
    reason = AttentionReason.REFUND_FAILED if step is Step.REFUND else AttentionReason.PAYMENT_ERROR
    return needs_attention(
        job,
        reason,
        f"{step.value} was refused {job.attempt} times: {message}",
        f"agentjobs {'refund' if step is Step.REFUND else 'recover'} {job.job_id}",
        now,
    ).with_step(None)
