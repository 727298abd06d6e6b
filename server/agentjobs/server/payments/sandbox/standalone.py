"""`agentjobs-server sandbox`: the sandbox payment service on its own, until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from agentjobs.server.payments.sandbox.http_app import API_PREFIX, CONTROL_PREFIX
from agentjobs.server.payments.sandbox.service import SandboxPaymentService


def banner(sandbox: SandboxPaymentService) -> str:
    root = sandbox.url.removesuffix(API_PREFIX)
    key = sandbox.api_key
    timing = sandbox.timing
    buyer = (
        "only when told (see below)"
        if sandbox.lock_after is None
        else f"{sandbox.lock_after:g}s after each payment request"
    )
    return f"""
Sandbox Masumi payment service: payments are simulated, no real funds move.
  PAYMENT_SERVICE_URL={sandbox.url}
  PAYMENT_API_KEY={key}
The simulated buyer locks funds {buyer}; the chain jobs run every {timing.job_interval_s:g}s
and their transactions confirm {sandbox.settle_after:g}s later (docs/PAYMENT-SERVICE.md).
Play the buyer by hand (<bid> = a blockchainIdentifier):
  curl -X POST -H 'token: {key}' {root}{CONTROL_PREFIX}/payments/<bid>/lock
  curl -X POST -H 'token: {key}' {root}{CONTROL_PREFIX}/payments/<bid>/invalid
  curl -X POST -H 'token: {key}' {root}{CONTROL_PREFIX}/payments/<bid>/refund-request
  curl -H 'token: {key}' {root}{CONTROL_PREFIX}/payments/<bid>
  curl -H 'token: {key}' {root}{CONTROL_PREFIX}/requests
"""


async def run_sandbox(
    *,
    host: str = "127.0.0.1",
    port: int = 3001,
    api_key: str,
    lock_after: float | None = 2.0,
    settle_after: float = 1.0,
    job_interval: float = 15.0,
) -> None:
    sandbox = SandboxPaymentService(
        api_key=api_key,
        lock_after=lock_after,
        settle_after=settle_after,
        job_interval=job_interval,
        decision_interval=2 * job_interval,
        access_log=True,
    )
    await sandbox.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        print(banner(sandbox), flush=True)
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await sandbox.stop()
