"""Domain errors. Each carries a stable UPPER_SNAKE reason and what a caller needs to act.

The API layer maps each class to one canonical gRPC code / HTTP status in one place
(agentjobs.server.api.errors); nothing here knows about transports.
"""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    """Base of every error a caller may see. `reason` is AIP-193's ErrorInfo.reason."""

    reason: str = "DOMAIN_ERROR"

    def __init__(self, message: str, *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})


class JobNotFoundError(DomainError):
    reason = "JOB_NOT_FOUND"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} not found", metadata={"job_id": job_id})
        self.job_id = job_id


class InvoiceNotFoundError(DomainError):
    reason = "INVOICE_NOT_FOUND"

    def __init__(self, blockchain_identifier: str) -> None:
        super().__init__(
            f"no invoice for payment {blockchain_identifier!r}",
            metadata={"blockchain_identifier": blockchain_identifier},
        )
        self.blockchain_identifier = blockchain_identifier


class InvalidStateTransitionError(DomainError):
    reason = "INVALID_STATE_TRANSITION"

    def __init__(self, job_id: str, current: str, target: str) -> None:
        super().__init__(
            f"job {job_id!r} cannot go from {current} to {target}",
            metadata={"job_id": job_id, "current_status": current, "target_status": target},
        )
        self.job_id = job_id
        self.current = current
        self.target = target


class NotAwaitingInputError(InvalidStateTransitionError):
    """ProvideInput for a job that asks for nothing now."""

    reason = "JOB_NOT_AWAITING_INPUT"

    def __init__(self, job_id: str, current: str) -> None:
        super().__init__(job_id, current, "running")
        self.message = f"job {job_id!r} is not awaiting input (it is {current})"
        self.args = (self.message,)


class FundsAlreadyLockedError(DomainError):
    """A cancel that came too late: the buyer has paid, so the job must run."""

    reason = "FUNDS_ALREADY_LOCKED"

    def __init__(self, job_id: str, on_chain_state: str) -> None:
        super().__init__(
            f"job {job_id!r} cannot be cancelled: the payment is already {on_chain_state}",
            metadata={"job_id": job_id, "on_chain_state": on_chain_state},
        )


class StatusIdMismatchError(DomainError):
    """ProvideInput answered a status other than the one the job is in now."""

    reason = "STATUS_ID_MISMATCH"

    def __init__(self, job_id: str, given: str, current: str) -> None:
        super().__init__(
            f"status_id {given!r} is not the current status of job {job_id!r}",
            metadata={"job_id": job_id, "status_id": given, "current_status_id": current},
        )
        self.job_id = job_id


class FieldViolation:
    """One bad field of a request: AIP-193's BadRequest.FieldViolation."""

    __slots__ = ("description", "field")

    def __init__(self, field: str, description: str) -> None:
        self.field = field
        self.description = description

    def __repr__(self) -> str:
        return f"FieldViolation({self.field!r}, {self.description!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldViolation) and (other.field, other.description) == (
            self.field,
            self.description,
        )

    def __hash__(self) -> int:
        return hash((self.field, self.description))


class InvalidArgumentError(DomainError):
    """A request that can never succeed as sent; `violations` name the fields."""

    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: list[FieldViolation] | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.violations = violations or []
        if reason:
            self.reason = reason


class InvalidPageTokenError(InvalidArgumentError):
    def __init__(self) -> None:
        super().__init__(
            "page_token is not a token this server issued",
            [FieldViolation("page_token", "not a token this server issued")],
            reason="INVALID_PAGE_TOKEN",
        )


class RequestTooLargeError(DomainError):
    """A request body larger than the configured limit; it was not read."""

    reason = "REQUEST_TOO_LARGE"


class UnsupportedMediaTypeError(DomainError):
    """An HTTP body not declared as application/json; it was not parsed."""

    reason = "UNSUPPORTED_MEDIA_TYPE"


class IdempotencyConflictError(DomainError):
    """The same request_id was used before with different parameters."""

    reason = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"request_id {request_id!r} was already used for a different request",
            metadata={"request_id": request_id},
        )


class PaymentServiceUnavailableError(DomainError):
    """The payment service could not be reached, timed out or answered 5xx: retry later."""

    reason = "PAYMENT_SERVICE_UNAVAILABLE"


class PaymentServiceUnreachableError(PaymentServiceUnavailableError):
    """No connection could be made: the request provably never reached the service."""


class PaymentServiceFailedError(PaymentServiceUnavailableError):
    """The payment service itself answered that it failed (500, 503, 429...): its
    handler did not finish the work it was asked for."""


class PaymentServiceTimeoutError(PaymentServiceUnavailableError):
    """No answer within the timeout: the service may still be doing the work."""


class PaymentServiceRejectedError(DomainError):
    """The payment service refused the request as invalid (HTTP 400)."""

    reason = "PAYMENT_REQUEST_REJECTED"


class PaymentServiceConflictError(DomainError):
    """The payment service answered 409: the payment is not in a state for this now."""

    reason = "PAYMENT_STATE_CONFLICT"


class PaymentNotFoundError(DomainError):
    reason = "PAYMENT_NOT_FOUND"


class PaymentConfigurationError(DomainError):
    """The payment service refused our credentials (401/403): an operator must fix config."""

    reason = "PAYMENT_SERVICE_MISCONFIGURED"


class PaymentKeyMismatchError(DomainError):
    """403 on a seller action: the payment was created with another API key."""

    reason = "PAYMENT_CREATED_WITH_ANOTHER_KEY"


class OperationNotPossibleError(DomainError):
    """An operator command the job's state does not allow now (FAILED_PRECONDITION)."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "OPERATION_NOT_POSSIBLE",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.reason = reason


class StaleJobError(DomainError):
    """A write decided on a job that changed since it was read (version or lease moved):
    the caller reads the job again and decides again. Never reaches a caller."""

    reason = "STALE_JOB"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} changed while a decision was made on it")
        self.job_id = job_id


class StorageUnavailableError(DomainError):
    """The database cannot take the call now (locked, unreachable, restarting, full):
    nothing was written, and the same call may succeed when retried."""

    reason = "STORAGE_UNAVAILABLE"
