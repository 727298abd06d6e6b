"""SUBMIT: the result's hash to the payment service (never twice: when a try's answer
was lost, the payment is read first)."""

from __future__ import annotations

import logging
from datetime import datetime

from agentjobs.server.domain import (
    Invoice,
    Job,
    PaymentConfigurationError,
    PaymentKeyMismatchError,
    PaymentNotFoundError,
    PaymentServiceConflictError,
    PaymentServiceRejectedError,
    PaymentServiceUnavailableError,
)
from agentjobs.server.domain.hashing import output_hash
from agentjobs.server.domain.lifecycle import (
    Decision,
    on_payment,
    on_submit_claimed,
    on_submit_refused_key,
    on_submit_rejected,
    on_submitted,
    retry_later,
    submission_taken,
)
from agentjobs.server.domain.payment import PaymentState
from agentjobs.server.domain.steps import KEEP, Step
from agentjobs.server.services.core import StepRun

log = logging.getLogger(__name__)


async def submit_result(run: StepRun) -> None:
    core = run.core
    policy = core.policy
    if not on_submit_claimed(run.job, run.invoice, core.clock.now(), policy).writes_nothing:
        await run.settle(lambda j, i, n: on_submit_claimed(j, i, n, policy))
        return
    job = run.job
    assert job.result is not None
    if not job.result_hash:
        # A job stored before result hashes were kept with the result.
        digest = output_hash(job.result, job.identifier_from_purchaser)
        job = job.model_copy(update={"result_hash": digest})
        run.job = job
    digest = job.result_hash or ""
    if job.attempt > 1:
        # An earlier try may have reached the service: look before submitting again.
        try:
            payment = await core.gateway.get_payment(job.blockchain_identifier)
        except PaymentServiceUnavailableError as exc:
            log.warning("job %s: cannot read the payment before submitting (%s)", job.job_id, exc)
            await run.settle(lambda j, i, n: retry_later(j, Step.SUBMIT, n, policy))
            return
        except PaymentNotFoundError as gone:
            note = gone.message
            await run.settle(lambda j, i, n: on_submit_rejected(j, i, note, n, policy))
            return
        if submission_taken(job, payment):
            await run.settle(
                lambda j, i, n: on_submitted(
                    j.model_copy(update={"result_hash": digest}),
                    n,
                    policy,
                    detail="accepted on an earlier try",
                )
            )
            return
    try:
        await core.gateway.submit_result(job.blockchain_identifier, digest)
    except PaymentKeyMismatchError:
        await run.settle(lambda j, i, n: on_submit_refused_key(j, n, policy))
    except (PaymentServiceConflictError, PaymentServiceUnavailableError) as exc:
        log.warning("job %s: submit-result not accepted yet (%s); retrying", job.job_id, exc.reason)
        await run.settle(lambda j, i, n: retry_later(j, Step.SUBMIT, n, policy))
    except PaymentConfigurationError:
        log.error("job %s: the payment service refuses our API key; retrying", job.job_id)
        await run.settle(lambda j, i, n: retry_later(j, Step.SUBMIT, n, policy))
    except PaymentServiceRejectedError as rejected:
        note = rejected.message
        await run.settle(lambda j, i, n: on_submit_rejected(j, i, note, n, policy))
    except PaymentNotFoundError as exc:
        await _not_found(run, exc.message)
    else:
        await run.settle(
            lambda j, i, n: on_submitted(j.model_copy(update={"result_hash": digest}), n, policy)
        )


async def _not_found(run: StepRun, message: str) -> None:
    """404 "Payment not found or in invalid state": read the payment to tell which."""
    core, policy, job = run.core, run.core.policy, run.job
    try:
        payment: PaymentState = await core.gateway.get_payment(job.blockchain_identifier)
    except PaymentNotFoundError:
        await run.settle(lambda j, i, n: on_submit_rejected(j, i, message, n, policy))
        return
    except PaymentServiceUnavailableError:
        await run.settle(lambda j, i, n: retry_later(j, Step.SUBMIT, n, policy))
        return
    if submission_taken(job, payment):
        await run.settle(lambda j, i, n: on_submitted(j, n, policy, detail="already taken"))
        return
    log.warning(
        "job %s: submit-result refused (%s) while the payment is %s",
        job.job_id,
        message,
        payment.describe,
    )

    def decide(j: Job, i: Invoice | None, n: datetime) -> Decision:
        reaction = on_payment(j, i, payment, n, policy)
        if reaction.status is not None or reaction.step is not KEEP:
            return reaction
        return reaction.then(retry_later(j, Step.SUBMIT, n, policy))

    await run.settle(decide)
