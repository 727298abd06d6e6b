"""`agentjobs-server` as a subprocess, the way `make run` starts it: one job from start
to completed over gRPC, then SIGTERM and a clean exit."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import grpc
from google.protobuf import struct_pb2

from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc

SERVER = Path(sys.executable).parent / "agentjobs-server"


async def test_server_subprocess_drives_a_job_to_completion(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AGENTJOBS_GRPC_ADDRESS": "127.0.0.1:0",
        "AGENTJOBS_HTTP_ADDRESS": "127.0.0.1:0",
        "AGENTJOBS_SANDBOX_LOCK_AFTER_S": "0.2",
        "AGENTJOBS_MONITOR_INTERVAL_S": "0.1",
        "AGENTJOBS_OPERATOR_TOKEN": "e2e-token",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("PAYMENT_SERVICE_URL", "AGENTJOBS_DATABASE_URL"):
        env.pop(name, None)
    process = await asyncio.create_subprocess_exec(
        str(SERVER),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any("HTTP  http://" in line for line in output):
                line = (await process.stdout.readline()).decode()
                assert line, "server exited early:\n" + "".join(output)
                output.append(line)
        text = "".join(output)
        assert "SANDBOX" in text
        target = re.search(r"gRPC  (127\.0\.0\.1:\d+)", text)
        assert target is not None, text
        async with grpc.aio.insecure_channel(target.group(1)) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            data = struct_pb2.Struct()
            data.update({"text": "end to end"})
            started = await stub.StartJob(
                jobs_pb2.StartJobRequest(
                    identifier_from_purchaser="aabbccddeeff0011", input_data=data
                )
            )
            final = None
            async with asyncio.timeout(30):
                async for update in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=started.job_id)):
                    final = update.job
            assert final is not None and final.status == jobs_pb2.JOB_STATUS_COMPLETED
            assert final.result == "END TO END!"
        assert (tmp_path / "agentjobs.db").exists()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(process.stdout.read(), 30)
        await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == 0, "".join(output) + rest.decode()
    assert "agentjobs stopped" in rest.decode()
