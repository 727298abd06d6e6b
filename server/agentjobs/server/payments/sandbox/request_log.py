"""What the sandbox received: request counts by method and path since start, and per
payment every call that acts on it, with its answer (GET /sandbox/requests)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agentjobs.server.payments.sandbox.views import iso_ms


@dataclass
class _PaymentCalls:
    submit_results: list[dict[str, Any]] = field(default_factory=list)
    authorize_refunds: list[dict[str, Any]] = field(default_factory=list)
    error_state_recoveries: list[dict[str, Any]] = field(default_factory=list)


_KINDS = {
    "/payment/submit-result": "submit_results",
    "/payment/authorize-refund": "authorize_refunds",
    "/payment/error-state-recovery": "error_state_recoveries",
}


class RequestLog:
    def __init__(self) -> None:
        # Requests per (method, path), e.g. ("GET", "/api/v1/payment/diff").
        self.counts: Counter[tuple[str, str]] = Counter()
        self._payments: dict[str, _PaymentCalls] = {}

    def acted(
        self, path: str, blockchain_identifier: str, at_ms: int, status: int, **details: Any
    ) -> None:
        """A call on one payment (`path` relative to /api/v1) and how it was answered."""
        calls = self._payments.setdefault(blockchain_identifier, _PaymentCalls())
        entries: list[dict[str, Any]] = getattr(calls, _KINDS[path])
        entries.append({"at": iso_ms(at_ms), "status": status, **details})

    def accepted_submissions(self, blockchain_identifier: str) -> int:
        calls = self._payments.get(blockchain_identifier)
        if calls is None:
            return 0
        return sum(1 for entry in calls.submit_results if entry["status"] == 200)

    def report(self, ignored_submissions: Counter[str]) -> dict[str, Any]:
        payments: dict[str, Any] = {}
        for bid in sorted(set(self._payments) | set(ignored_submissions)):
            calls = self._payments.get(bid, _PaymentCalls())
            payments[bid] = {
                "acceptedSubmitResults": [e for e in calls.submit_results if e["status"] == 200],
                "rejectedSubmitResults": [e for e in calls.submit_results if e["status"] != 200],
                # Accepted submit-results the chain job never picked (too close to
                # submitResultTime at pickup).
                "ignoredSubmitResults": ignored_submissions.get(bid, 0),
                "authorizeRefunds": calls.authorize_refunds,
                "errorStateRecoveries": calls.error_state_recoveries,
            }
        return {
            "requests": [
                {"method": method, "path": path, "count": count}
                for (method, path), count in sorted(self.counts.items())
            ],
            "payments": payments,
        }
