"""The agentjobs client SDK: typed sync and asyncio clients of the agentjobs gRPC API.

from agentjobs.client import JobClient, JobStatus
with JobClient("127.0.0.1:50051") as client:
    started = client.start_job({"text": "hello"})
    job = client.wait(started.job_id)
    print(JobStatus(job.status))   # completed
"""

from agentjobs.client.async_client import AsyncJobClient
from agentjobs.client.channel import DEFAULT
from agentjobs.client.convert import dict_to_struct, struct_to_dict
from agentjobs.client.errors import (
    AgentJobsError,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    JobNotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from agentjobs.client.statuses import InvoiceStatus, JobStatus
from agentjobs.client.sync_client import JobClient

__all__ = [
    "DEFAULT",
    "AgentJobsError",
    "AlreadyExists",
    "AsyncJobClient",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "InvoiceStatus",
    "JobClient",
    "JobNotFound",
    "JobStatus",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "dict_to_struct",
    "struct_to_dict",
]
