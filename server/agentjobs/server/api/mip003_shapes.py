"""Domain -> MIP-003 JSON, in the exact shapes the Masumi marketplace and registry read.

The field names come from the masumi SDK's models (`masumi.models`), so a consumer built
on the SDK parses our answers unchanged: camelCase payment fields but snake-case
`input_hash`, int-millisecond times, the status id as `id`.
"""

from __future__ import annotations

from typing import Any

from masumi.models import StartJobResponse

from agentjobs.server.domain import Job, JobStatus
from agentjobs.server.services.jobs import Availability, InputReceipt


def start_job_body(job: Job) -> dict[str, Any]:
    body = StartJobResponse(
        id=job.job_id,
        blockchainIdentifier=job.blockchain_identifier,
        payByTime=job.pay_by_time,
        submitResultTime=job.submit_result_time,
        unlockTime=job.unlock_time,
        externalDisputeUnlockTime=job.external_dispute_unlock_time,
        agentIdentifier=job.agent_identifier,
        sellerVKey=job.seller_vkey,
        identifierFromPurchaser=job.identifier_from_purchaser,
        input_hash=job.input_hash,
    ).model_dump()
    # Sokosumi's V2 schema reads the payment source.
    if job.payment_source_type:
        body["paymentSourceType"] = job.payment_source_type
    if job.payment_source_index is not None:
        body["supportedPaymentSourceIndex"] = job.payment_source_index
    # Older MIP-003 consumers read `job_id` and `status`; both are harmless extras.
    body["job_id"] = job.job_id
    body["status"] = "success"
    return body


def status_body(job: Job) -> dict[str, Any]:
    """`id` is the status id: stable while the status holds, echoed by /provide_input."""
    body: dict[str, Any] = {"id": job.status_id, "job_id": job.job_id, "status": job.status.value}
    if job.status is JobStatus.AWAITING_INPUT:
        body["input_schema"] = job.input_schema or {}
        if job.input_request_message:
            body["message"] = job.input_request_message
    if job.status is JobStatus.COMPLETED:
        body["result"] = job.result or ""
    if job.status is JobStatus.FAILED and job.error is not None:
        body["error"] = {"reason": job.error.reason, "message": job.error.message}
    return body


def provide_input_body(receipt: InputReceipt) -> dict[str, Any]:
    return {"input_hash": receipt.input_hash, "signature": receipt.signature}


def availability_body(availability: Availability) -> dict[str, Any]:
    return {
        "status": "available" if availability.available else "unavailable",
        "type": "masumi-agent",
        "agentIdentifier": availability.agent_identifier,
        "message": availability.message,
        "sandbox": availability.sandbox,
        # What /provide_input signatures verify with (docs/HASHES_AND_SIGNATURES.md).
        "verificationKey": availability.verification_key,
        "verificationKeyHash": availability.verification_key_hash,
    }


def demo_body(demo_input: dict[str, Any], demo_output: str) -> dict[str, Any]:
    return {"input": demo_input, "output": {"result": demo_output}}
