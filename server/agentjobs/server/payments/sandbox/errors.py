"""Errors the sandbox answers, and the exceptions its in-process API raises."""

from __future__ import annotations


class ApiError(Exception):
    """Answered as {"status": "error", "error": {"message": ...}} with `status`, the
    envelope upstream's result handler (payment-core endpoint-factory.ts) writes for
    every error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# What upstream answers for a 5xx in production: the status's default text
# (endpoint-factory.ts getPublicErrorMessage hides the real message).
INTERNAL_SERVER_ERROR = "Internal Server Error"


class SandboxConflictError(Exception):
    """The simulated buyer, chain or admin cannot do this now (the control endpoints
    answer 409; upstream has no such endpoint)."""


class UnknownPaymentError(LookupError):
    def __init__(self, blockchain_identifier: str) -> None:
        super().__init__(f"no payment {blockchain_identifier!r} in the sandbox")
        self.blockchain_identifier = blockchain_identifier
