"""Late commits in the diff (issue 11, item 3). The payment service stamps a change when
its writing transaction *starts* and the change becomes visible when it commits (up to
30 s later upstream), so a change can appear with a stamp older than rows the diff has
already returned. The sandbox reproduces it (`commit_lag`, TRANSACTION stamps): here the
buyer's lock of one payment is stamped before another payment's creation but commits
after the monitor has read past that creation.

With the default `diff_overlap_s` the monitor re-reads a window behind its watermark and
applies the lock: the job runs. With `diff_overlap_s=0` the same lock is missed, and the
paid job waits until its expiry check finds the funds."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agentjobs.server.domain import JobStatus
from agentjobs.server.domain.payment import OnChainState
from agentjobs.server.payments.sandbox import StampMode
from tests.services.agents import ScriptedAgent
from tests.services.money import SteppedClock, serve_clocked, stepped_sandbox
from tests.services.support import poll_round, start, watch_until

COMMIT_LAG_S = 5
GRACE_S = 60


def stamp(payment: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(payment["nextActionOrOnChainStateOrResultLastChangedAt"])


@pytest.mark.parametrize("overlap", [None, 0], ids=["default-overlap", "no-overlap"])
async def test_a_lock_committed_behind_the_watermark_is_applied(
    tmp_path: Path, scripted: ScriptedAgent, overlap: float | None
) -> None:
    settings: dict[str, Any] = {
        # Rounds only when the test asks (and after each StartJob).
        "monitor_interval_s": 3600,
        "pay_window_s": 600,
        "result_window_s": 3600,
        "expiry_grace_s": GRACE_S,
    }
    if overlap is not None:
        settings["diff_overlap_s"] = overlap
    clock = SteppedClock()
    async with (
        stepped_sandbox(commit_lag=COMMIT_LAG_S, stamp_mode=StampMode.TRANSACTION) as (
            payment_service,
            chain_clock,
        ),
        serve_clocked(tmp_path, payment_service, scripted.agent, clock, **settings) as server,
    ):
        paid = await start(server, text="late commit")
        bid = paid.blockchain_identifier
        assert await poll_round(server)
        # The buyer's lock: its transaction starts now and commits COMMIT_LAG_S later.
        await payment_service.lock_funds(bid)
        chain_clock.advance(1)
        other = await start(server, text="bystander")  # stamped 1 s after the lock began
        assert await poll_round(server)  # the watermark moves past the bystander
        chain_clock.advance(COMMIT_LAG_S)  # the lock commits, with its older stamp

        locked = payment_service.payment(bid)
        assert locked["onChainState"] == OnChainState.FUNDS_LOCKED
        assert stamp(locked) < stamp(payment_service.payment(other.blockchain_identifier))

        assert await poll_round(server)
        assert await poll_round(server)
        seen = await server.app.jobs.get_job(paid.job_id)
        if overlap is None:
            assert seen.status is not JobStatus.AWAITING_PAYMENT, "the late lock was missed"
            done = await watch_until(server, paid.job_id)
            assert (done.status, done.result) == (JobStatus.COMPLETED, "LATE COMMIT!")
            return

        # Without the overlap the lock is never seen in the diff...
        assert seen.status is JobStatus.AWAITING_PAYMENT
        # ... until the expiry check reads the payment itself.
        clock.advance_to(paid.pay_by_time + (GRACE_S + 1) * 1000)
        done = await watch_until(server, paid.job_id)
        assert (done.status, done.result) == (JobStatus.COMPLETED, "LATE COMMIT!")
