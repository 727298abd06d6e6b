"""submit-result retried until the service takes it, and taken exactly once: 409s are
retried with backoff; an answer lost on the way back is never followed by a blind
second submit-result."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agentjobs.server.domain import JobStatus
from agentjobs.server.payments.sandbox import SandboxPaymentService, add_request_observer
from agentjobs.server.testing import RunningServer
from tests.services.agents import ScriptedAgent
from tests.services.conftest import serve
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


async def test_no_second_submit_result_while_the_first_ones_fate_is_unknown(
    tmp_path: Path, payment_service: SandboxPaymentService, scripted: ScriptedAgent
) -> None:
    """A submit-result that timed out may have been taken: the runner reads the payment
    before it submits again, and while the service cannot even be read it only reads."""
    reads = 0
    read_thrice = asyncio.Event()

    def count_reads(_method: str, path: str, _body: Any) -> None:
        nonlocal reads
        if path == "/payment/resolve-blockchain-identifier":
            reads += 1
            if reads >= 3:
                read_thrice.set()

    async with serve(tmp_path, payment_service, scripted.agent, payment_timeout_s=0.2) as server:
        job = await start(server, text="unsure", mode="hold")
        bid = job.blockchain_identifier
        await payment_service.lock_funds(bid)
        async with asyncio.timeout(10):
            await scripted.wait_for_calls(1)

        payment_service.faults.latency_s = 0.5  # every call times out, its answer lost
        remove = add_request_observer(count_reads)
        try:
            scripted.gate.set()
            await asyncio.wait_for(read_thrice.wait(), 10)
        finally:
            remove()
        assert payment_service.request_counts[SUBMIT_RESULT] == 1
        payment_service.faults.latency_s = 0

        final = await watch_until(server, job.job_id)
        assert final.status is JobStatus.COMPLETED, final.error
    # One if the service took the first despite the lost answer (a read then showed
    # it), two if the request died with it (a read showed nothing taken first).
    assert payment_service.request_counts[SUBMIT_RESULT] in (1, 2)
    assert payment_service.accepted_submissions(bid) == 1
