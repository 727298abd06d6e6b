"""agentjobs.v1.JobService: translate, call one JobsService method. Errors are mapped
by the error interceptor (api/interceptors.py), so handlers just let them raise."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from agentjobs.server.api import convert
from agentjobs.server.services.jobs import JobsService
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc

# Room for the response's own framing beyond its jobs.
_RESPONSE_MARGIN_BYTES = 64 * 1024


class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, jobs: JobsService, max_response_bytes: int = 4 * 1024 * 1024) -> None:
        self._jobs = jobs
        self._page_budget = max(max_response_bytes - _RESPONSE_MARGIN_BYTES, 1)

    async def StartJob(
        self, request: jobs_pb2.StartJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.StartJobResponse:
        job = await self._jobs.start_job(
            request.identifier_from_purchaser,
            convert.struct_to_dict(request.input_data, "input_data"),
            request.request_id or None,
        )
        return convert.start_response(job)

    async def GetJobStatus(
        self, request: jobs_pb2.GetJobStatusRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.GetJobStatusResponse:
        return convert.status_response(await self._jobs.get_job(request.job_id))

    async def ProvideInput(
        self, request: jobs_pb2.ProvideInputRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ProvideInputResponse:
        receipt = await self._jobs.provide_input(
            request.job_id,
            request.status_id,
            convert.struct_to_dict(request.input_data, "input_data"),
            request.request_id or None,
        )
        return jobs_pb2.ProvideInputResponse(
            input_hash=receipt.input_hash, signature=receipt.signature
        )

    async def GetAvailability(
        self, request: jobs_pb2.GetAvailabilityRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.GetAvailabilityResponse:
        availability = await self._jobs.availability()
        return jobs_pb2.GetAvailabilityResponse(
            availability=jobs_pb2.AVAILABILITY_AVAILABLE
            if availability.available
            else jobs_pb2.AVAILABILITY_UNAVAILABLE,
            type="masumi-agent",
            agent_identifier=availability.agent_identifier,
            message=availability.message,
            sandbox=availability.sandbox,
            verification_key=availability.verification_key,
            verification_key_hash=availability.verification_key_hash,
        )

    async def GetInputSchema(
        self, request: jobs_pb2.GetInputSchemaRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.GetInputSchemaResponse:
        response = jobs_pb2.GetInputSchemaResponse()
        schema = convert.input_schema_to_pb(self._jobs.input_schema())
        if schema is not None:
            response.input_schema.CopyFrom(schema)
        return response

    async def GetDemo(
        self, request: jobs_pb2.GetDemoRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.GetDemoResponse:
        demo_input, demo_output = self._jobs.demo()
        return jobs_pb2.GetDemoResponse(
            input=convert.dict_to_struct(demo_input), output={"result": demo_output}
        )

    async def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListJobsResponse:
        status = convert.status_from_pb(request.status)
        page = await self._jobs.list_jobs(request.page_size, request.page_token, status)
        jobs = [convert.job_to_pb(job) for job in page.items]
        fitting = _fitting(jobs, self._page_budget)
        if fitting < len(jobs):
            # Large inputs would make the page larger than a gRPC message may be
            # (RESOURCE_EXHAUSTED for every caller of the default page): ask for the
            # part that fits instead, which comes with its own next_page_token.
            page = await self._jobs.list_jobs(fitting, request.page_token, status)
            jobs = [convert.job_to_pb(job) for job in page.items]
        return jobs_pb2.ListJobsResponse(jobs=jobs, next_page_token=page.next_page_token or "")

    async def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.WatchJobResponse]:
        async for job, event in self._jobs.watch(request.job_id):
            message = jobs_pb2.WatchJobResponse(job=convert.job_to_pb(job))
            if event is not None:
                message.event.CopyFrom(convert.event_to_pb(event))
            yield message


def _fitting(jobs: list[jobs_pb2.Job], budget: int) -> int:
    """How many of the first jobs fit in `budget` bytes (at least one)."""
    total = 0
    for count, job in enumerate(jobs):
        total += job.ByteSize() + 8  # the field tag and length of each entry
        if total > budget:
            return max(count, 1)
    return len(jobs)
