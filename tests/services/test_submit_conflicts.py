"""submit-result answered 409 is retried with backoff until the service takes it, and
the result is taken exactly once."""

from __future__ import annotations

from agentjobs.server.domain import JobStatus
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.testing import RunningServer
from tests.services.support import start, watch_until

SUBMIT_RESULT = ("POST", "/api/v1/payment/submit-result")
CONFLICTS = 3


async def test_409s_are_retried_until_accepted_once(
    server: RunningServer, payment_service: SandboxPaymentService
) -> None:
    payment_service.faults.conflict_next = CONFLICTS
    job = await start(server, text="persistent")
    await payment_service.lock_funds(job.blockchain_identifier)

    final = await watch_until(server, job.job_id)
    assert final.status is JobStatus.COMPLETED, final.error
    assert final.result == "PERSISTENT!"
    assert payment_service.faults.conflict_next == 0
    assert payment_service.request_counts[SUBMIT_RESULT] == CONFLICTS + 1
    assert payment_service.accepted_submissions(job.blockchain_identifier) == 1
