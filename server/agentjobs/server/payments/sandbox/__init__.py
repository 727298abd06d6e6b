"""The sandbox payment service: an in-memory stand-in for the Masumi payment service, so
agentjobs runs with no wallet, no account and no network.

It serves the payment service's seller API under /api/v1 as the OpenAPI contract
(contracts/masumi-payment-service.openapi.json) describes it: the same paths, bodies,
envelopes ({"status": "success", "data": ...} / {"status": "error", "error":
{"message": ...}}), times as decimal strings of epoch milliseconds, auth by the `token`
header. Implemented: POST /payment, GET /payment, GET /payment/count, GET /payment/diff
(+ /next-action, /onchain-state-or-result), POST /payment/resolve-blockchain-identifier,
/payment/submit-result, /payment/authorize-refund, /payment/error-state-recovery.

It also plays the chain and the buyer (see chain.py): the buyer locks funds
`lock_after` seconds after a payment request (or when told), each chain step then
takes `settle_after` seconds (ResultSubmitted, then Withdrawn; RefundWithdrawn after a
refund). Faults can be injected for tests (faults.py).

Control endpoints, outside /api/v1, for a person playing the buyer with curl (same
`token` header; each answers the payment as the API shows it; 404 unknown payment,
409 not possible in its state):

    GET  /sandbox/payments/{blockchainIdentifier}                 the payment now
    POST /sandbox/payments/{blockchainIdentifier}/lock            buyer locks funds
    POST /sandbox/payments/{blockchainIdentifier}/invalid         funds or datum invalid
    POST /sandbox/payments/{blockchainIdentifier}/refund-request  buyer wants a refund
    POST /sandbox/payments/{blockchainIdentifier}/manual-action   a chain action fails
         (optional body {"note": "..."}; clear it with /api/v1/payment/error-state-recovery)

Example, with `agentjobs-server sandbox` running on its defaults:

    curl -X POST -H 'token: sandbox-api-key' \\
        http://127.0.0.1:3001/sandbox/payments/<blockchainIdentifier>/lock
"""

from agentjobs.server.payments.sandbox.chain import SandboxConflictError, UnknownPaymentError
from agentjobs.server.payments.sandbox.clock import Clock, ManualClock, SystemClock
from agentjobs.server.payments.sandbox.faults import Faults
from agentjobs.server.payments.sandbox.observers import (
    add_request_observer,
    add_response_observer,
)
from agentjobs.server.payments.sandbox.service import SandboxPaymentService
from agentjobs.server.payments.sandbox.standalone import run_sandbox

__all__ = [
    "Clock",
    "Faults",
    "ManualClock",
    "SandboxConflictError",
    "SandboxPaymentService",
    "SystemClock",
    "UnknownPaymentError",
    "add_request_observer",
    "add_response_observer",
    "run_sandbox",
]
