"""The Python gRPC ceiling: a bare grpc.aio server (no interceptor, no database, no
health or reflection services) that answers GetJobStatus from a dict of ready-made
responses. What agentjobs' read path costs beyond this is ours to look at.

    .venv/bin/python -m bench.grpc_ceiling JOB_ID [JOB_ID ...]

Prints "gRPC  127.0.0.1:PORT" once serving; unknown ids get NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc

from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc


class StatusFromDict(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, job_ids: list[str]) -> None:
        self._answers = {
            job_id: jobs_pb2.GetJobStatusResponse(
                job_id=job_id,
                status_id=f"{job_id}-1",
                status=jobs_pb2.JOB_STATUS_AWAITING_PAYMENT,
            )
            for job_id in job_ids
        }

    async def GetJobStatus(
        self, request: jobs_pb2.GetJobStatusRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.GetJobStatusResponse:
        answer = self._answers.get(request.job_id)
        if answer is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such job")
            raise AssertionError("abort raises")
        return answer


async def serve(job_ids: list[str]) -> None:
    server = grpc.aio.server()
    jobs_pb2_grpc.add_JobServiceServicer_to_server(StatusFromDict(job_ids), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"gRPC  127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1:]))
