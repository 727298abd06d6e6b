"""Channel options: retries with backoff for UNAVAILABLE, done by gRPC itself.

gRPC retries an attempt only while the response has not started (for WatchJob: before
the first message), so a retry never duplicates a delivered answer. StartJob and
ProvideInput are safe to retry because the client puts one request_id in the request
and the server de-duplicates on it. CancelJob is left out: a retry after a lost answer
would fail with FAILED_PRECONDITION on the now-cancelled job and hide the success.
"""

from __future__ import annotations

import json
from typing import Any

JOB_SERVICE = "agentjobs.v1.JobService"
OPERATOR_SERVICE = "agentjobs.v1.OperatorService"

RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 5,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

RETRIED_METHODS: list[tuple[str, str]] = [
    (JOB_SERVICE, ""),  # every JobService method: reads, or idempotent on request_id
    (OPERATOR_SERVICE, "GetEarningsReport"),
    (OPERATOR_SERVICE, "ListInvoices"),
]


def service_config(retry_policy: dict[str, Any] | None = None) -> dict[str, Any]:
    policy = RETRY_POLICY if retry_policy is None else retry_policy
    names = [
        {"service": service, "method": method} if method else {"service": service}
        for service, method in RETRIED_METHODS
    ]
    return {"methodConfig": [{"name": names, "retryPolicy": policy}]}


def channel_options(
    retry_policy: dict[str, Any] | None = None,
    extra: list[tuple[str, Any]] | None = None,
) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(service_config(retry_policy))),
        # The config above is ours; a resolver-provided one must not replace it.
        ("grpc.service_config_disable_resolution", 1),
    ]
    options.extend(extra or [])
    return options
