"""The numbers the lifecycle decides with: the chain's time windows and our retries."""

from __future__ import annotations

from dataclasses import dataclass

from agentjobs.server.domain.job import Job

MINUTE_MS = 60_000


@dataclass(frozen=True)
class Policy:
    # The payment service's chain job ignores submit-result requests whose
    # submitResultTime is less than 5 minutes away when it picks them up.
    chain_cutoff_ms: int = 5 * MINUTE_MS
    # How often that chain job runs (15 s by default upstream, 300 s in its shipped
    # .env.example): a request may wait this long before it is picked up.
    chain_pickup_ms: int = 5 * MINUTE_MS
    # Time kept between the agent's deadline and the last moment a submission can still
    # be picked up: room for the submit call and its retries.
    submit_margin_ms: int = MINUTE_MS
    # How long after payByTime an unpaid job is expired: a lock made in time can reach
    # the payment service late (chain confirmations, its tx-sync interval).
    expiry_grace_ms: int = 5 * MINUTE_MS
    # The seller's withdrawal comes ~10 min after unlockTime; look a little later.
    withdraw_lag_ms: int = 15 * MINUTE_MS
    # A run claimed this often without finishing (the process running it died each
    # time) is given up: the agent may be what kills the process.
    max_run_attempts: int = 3
    # error-state-recovery calls we make on our own for one payment.
    max_recoveries: int = 3
    retry_base_ms: int = 1_000
    retry_max_ms: int = MINUTE_MS
    # A payment whose key we do not hold (403) is tried again this rarely.
    key_retry_ms: int = 15 * MINUTE_MS
    # Free jobs: how long the agent may take.
    free_deadline_ms: int = 24 * 60 * MINUTE_MS

    def last_submit(self, job: Job) -> int:
        """The last moment (epoch ms) a submit-result can still reach the chain."""
        return job.submit_result_time - self.chain_cutoff_ms - self.chain_pickup_ms

    def agent_deadline(self, submit_result_time: int) -> int:
        return (
            submit_result_time - self.chain_cutoff_ms - self.chain_pickup_ms - self.submit_margin_ms
        )

    def backoff(self, attempt: int) -> int:
        """Delay before try number attempt + 1 (attempt >= 1)."""
        exponent = max(0, min(attempt - 1, 20))
        return int(min(self.retry_base_ms * 2**exponent, self.retry_max_ms))
