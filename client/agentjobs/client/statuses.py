"""Readable statuses: the contract's enums as Python IntEnums.

The messages carry enum numbers (`update.job.status == 3`); wrap one to read it:

    JobStatus(update.job.status)            # JobStatus.RUNNING
    print(JobStatus(update.job.status))     # running (the MIP-003 name)
    JobStatus(update.job.status).terminal   # False

They compare equal to the numbers, so `JobStatus.COMPLETED == jobs_pb2.JOB_STATUS_COMPLETED`.
"""

from __future__ import annotations

import enum

from agentjobs.v1 import jobs_pb2, operator_pb2


class JobStatus(enum.IntEnum):
    UNSPECIFIED = jobs_pb2.JOB_STATUS_UNSPECIFIED
    AWAITING_PAYMENT = jobs_pb2.JOB_STATUS_AWAITING_PAYMENT
    AWAITING_INPUT = jobs_pb2.JOB_STATUS_AWAITING_INPUT
    RUNNING = jobs_pb2.JOB_STATUS_RUNNING
    COMPLETED = jobs_pb2.JOB_STATUS_COMPLETED
    FAILED = jobs_pb2.JOB_STATUS_FAILED

    def __str__(self) -> str:
        return self.name.lower()

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)


class InvoiceStatus(enum.IntEnum):
    UNSPECIFIED = operator_pb2.INVOICE_STATUS_UNSPECIFIED
    PENDING = operator_pb2.INVOICE_STATUS_PENDING
    PAID = operator_pb2.INVOICE_STATUS_PAID
    EXPIRED = operator_pb2.INVOICE_STATUS_EXPIRED
    WITHDRAWN = operator_pb2.INVOICE_STATUS_WITHDRAWN
    REFUNDED = operator_pb2.INVOICE_STATUS_REFUNDED
    INVALID = operator_pb2.INVOICE_STATUS_INVALID
    SUBMITTED = operator_pb2.INVOICE_STATUS_SUBMITTED
    CONFIRMED = operator_pb2.INVOICE_STATUS_CONFIRMED
    DISPUTED = operator_pb2.INVOICE_STATUS_DISPUTED
    DISPUTE_RESOLVED = operator_pb2.INVOICE_STATUS_DISPUTE_RESOLVED

    def __str__(self) -> str:
        return self.name.lower()
