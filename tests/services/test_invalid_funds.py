"""FundsOrDatumInvalid: the job fails without the agent ever running."""

from __future__ import annotations

from agentjobs.server.domain import InvoiceStatus, JobStatus
from agentjobs.server.payments.gateway import OnChainState
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.testing import RunningServer
from tests.services.agents import ScriptedAgent
from tests.services.support import invoice, poll_round, start, watch_until


async def test_invalid_funds_fail_the_job_unrun(
    server: RunningServer, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    job = await start(server, text="never")
    await payment_service.mark_funds_invalid(job.blockchain_identifier)

    failed = await watch_until(server, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.reason == "FUNDS_OR_DATUM_INVALID"
    for _ in range(2):
        assert await poll_round(server)
    bill = await invoice(server, job)
    assert (bill.status, bill.on_chain_state) == (
        InvoiceStatus.INVALID,
        OnChainState.FUNDS_OR_DATUM_INVALID,
    )
    assert scripted.calls == []
    assert payment_service.accepted_submissions(job.blockchain_identifier) == 0
