"""`agentjobs-server sandbox` (run_sandbox) in its own process: it prints where it serves
and with which key, answers, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

SCRIPT = (
    "import asyncio\n"
    "from agentjobs.server.payments.sandbox import run_sandbox\n"
    "asyncio.run(run_sandbox(host='127.0.0.1', port=0, api_key='standalone-key', lock_after=0))\n"
)


async def test_run_sandbox_serves_until_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        url = None
        printed = []
        async with asyncio.timeout(20):
            while url is None:
                line = (await process.stdout.readline()).decode()
                assert line, "the sandbox exited before printing its URL"
                printed.append(line)
                if line.strip().startswith("PAYMENT_SERVICE_URL="):
                    url = line.strip().split("=", 1)[1]
            while not any("PAYMENT_API_KEY=standalone-key" in seen for seen in printed):
                printed.append((await process.stdout.readline()).decode())
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api/v1")
        async with (
            aiohttp.ClientSession(headers={"token": "standalone-key"}) as session,
            session.get(url + "/payment/count", params={"network": "Preprod"}) as answer,
        ):
            assert answer.status == 200
            assert await answer.json() == {"status": "success", "data": {"total": 0}}
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
