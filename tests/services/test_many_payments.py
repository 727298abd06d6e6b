"""Thousands of pending payments cost the monitor a handful of requests per round: one
diff request when nothing changed, about one per hundred changes otherwise."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentjobs.server.domain import Amount, EventType, Job, JobStatus, PaymentTerms
from agentjobs.server.domain.lifecycle import NewEvent, Policy, on_payment_requested
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.repository.base import JobRepository
from agentjobs.server.repository.factory import open_repository
from agentjobs.server.testing import RunningServer, settings_for_tests
from tests.services.agents import ScriptedAgent
from tests.services.conftest import serve
from tests.services.support import poll_round, watch_until

PENDING = 10_000
LOCKED = 150
DIFF_PAGE = 100
DIFF = ("GET", "/api/v1/payment/diff")


async def store_job(
    repository: JobRepository, payment_service: SandboxPaymentService, blockchain_identifier: str
) -> None:
    """Our job for a payment the sandbox booked in bulk, as StartJob would store it."""
    payment = payment_service.payment(blockchain_identifier)
    booked = payment_service.ledger.get(blockchain_identifier)
    assert booked is not None
    now = datetime.now(UTC)
    intent = Job(
        job_id=str(uuid.uuid4()),
        status=JobStatus.AWAITING_PAYMENT,
        status_id=str(uuid.uuid4()),
        identifier_from_purchaser=booked.identifier_from_purchaser,
        # Held until the test lets go: no submit-result runs during a measured round.
        input_data={"text": "bulk", "mode": "hold"},
        input_hash=payment["inputHash"],
        created_at=now,
        updated_at=now,
    )
    terms = PaymentTerms(
        blockchain_identifier=blockchain_identifier,
        seller_vkey=payment["SmartContractWallet"]["walletVkey"],
        agent_identifier=payment["agentIdentifier"],
        pay_by_time=int(payment["payByTime"]),
        submit_result_time=int(payment["submitResultTime"]),
        unlock_time=int(payment["unlockTime"]),
        external_dispute_unlock_time=int(payment["externalDisputeUnlockTime"]),
        amounts=tuple(
            Amount(amount=int(f["amount"]), unit=f["unit"]) for f in payment["RequestedFunds"]
        ),
        source_type="Web3CardanoV1",
    )
    stored = await repository.insert(intent, [NewEvent(EventType.CREATED)])
    await repository.apply(stored, on_payment_requested(stored, terms, now, Policy()), now)


async def requests_of_one_round(
    server: RunningServer, payment_service: SandboxPaymentService
) -> Counter[tuple[str, str]]:
    before = Counter(payment_service.request_counts)
    assert await poll_round(server, within_s=60)
    return Counter(payment_service.request_counts) - before


@pytest.mark.parametrize(
    "ours",
    [
        # 10,000 payments on the service, 1,000 of them ours: quick enough for every run.
        1_000,
        # All 10,000 ours: storing them one by one through the repository takes ~20 s.
        pytest.param(PENDING, marks=pytest.mark.slow),
    ],
)
async def test_thousands_of_pending_payments_cost_a_few_requests_per_round(
    tmp_path: Path, payment_service: SandboxPaymentService, scripted: ScriptedAgent, ours: int
) -> None:
    bids = payment_service.create_payments(PENDING)
    # Stored before the server starts, as if it restarted with them pending.
    repository = open_repository(settings_for_tests(tmp_path).database_url)
    await repository.open()
    try:
        mine = bids[:ours]
        for start in range(0, len(mine), 500):
            await asyncio.gather(
                *(store_job(repository, payment_service, bid) for bid in mine[start : start + 500])
            )
    finally:
        await repository.close()

    # No re-read window: this measures the head of the diff alone (the window's own cost
    # is bounded in test_diff_overlap.py).
    async with serve(
        tmp_path, payment_service, scripted.agent, monitor_interval_s=3600, diff_overlap_s=0
    ) as server:
        # The first round after start-up pages through everything once; wait for it.
        await requests_of_one_round(server, payment_service)
        assert payment_service.request_counts[DIFF] >= PENDING // DIFF_PAGE

        assert await requests_of_one_round(server, payment_service) == Counter({DIFF: 1})

        locked = bids[: ours : ours // LOCKED][:LOCKED]
        for bid in locked:
            await payment_service.lock_funds(bid)
        cost = await requests_of_one_round(server, payment_service)
        assert set(cost) == {DIFF}
        assert cost[DIFF] <= math.ceil(LOCKED / DIFF_PAGE) + 1
        assert await server.app.repository.count(JobStatus.RUNNING) == LOCKED
        assert await server.app.repository.count(JobStatus.AWAITING_PAYMENT) == ours - LOCKED

        scripted.gate.set()
        jobs, _intents = await server.app.repository.jobs_for_payments(locked, [])
        async with asyncio.timeout(60):
            for job, _invoice in jobs.values():
                final = await watch_until(server, job.job_id, within_s=60)
                assert final.status is JobStatus.COMPLETED, final.error
        assert all(payment_service.accepted_submissions(bid) == 1 for bid in locked)
