"""The pure domain core: no I/O library is imported here."""

from agentjobs.server.domain.errors import (
    DomainError,
    FieldViolation,
    IdempotencyConflictError,
    InvalidArgumentError,
    InvalidPageTokenError,
    InvalidStateTransitionError,
    InvoiceNotFoundError,
    JobNotFoundError,
    PaymentConfigurationError,
    PaymentNotFoundError,
    PaymentServiceConflictError,
    PaymentServiceRejectedError,
    PaymentServiceUnavailableError,
    RequestTooLargeError,
    StatusIdMismatchError,
)
from agentjobs.server.domain.events import EventType, JobEvent
from agentjobs.server.domain.invoice import EarningsReport, Invoice, InvoiceStatus, MoneyTotal
from agentjobs.server.domain.job import Amount, Job, JobError, PaymentTerms, utcnow
from agentjobs.server.domain.status import (
    LEGAL_TRANSITIONS,
    TERMINAL_STATUSES,
    JobStatus,
    validate_transition,
)

__all__ = [
    "LEGAL_TRANSITIONS",
    "TERMINAL_STATUSES",
    "Amount",
    "DomainError",
    "EarningsReport",
    "EventType",
    "FieldViolation",
    "IdempotencyConflictError",
    "InvalidArgumentError",
    "InvalidPageTokenError",
    "InvalidStateTransitionError",
    "Invoice",
    "InvoiceNotFoundError",
    "InvoiceStatus",
    "Job",
    "JobError",
    "JobEvent",
    "JobNotFoundError",
    "JobStatus",
    "MoneyTotal",
    "PaymentConfigurationError",
    "PaymentNotFoundError",
    "PaymentServiceConflictError",
    "PaymentServiceRejectedError",
    "PaymentServiceUnavailableError",
    "PaymentTerms",
    "RequestTooLargeError",
    "StatusIdMismatchError",
    "utcnow",
    "validate_transition",
]
