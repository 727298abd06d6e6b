"""The sandbox payment service: an in-memory stand-in for the Masumi payment service, so
agentjobs runs with no wallet, no account and no network.

It serves the payment service's seller API under /api/v1 as the OpenAPI contract
(contracts/masumi-payment-service.openapi.json) describes it: the same paths, bodies,
envelopes ({"status": "success", "data": ...} / {"status": "error", "error":
{"message": ...}}), times as decimal strings of epoch milliseconds, auth by the `token`
header. Implemented: POST /payment, GET /payment, GET /payment/count, GET /payment/diff
(+ /next-action, /onchain-state-or-result), POST /payment/resolve-blockchain-identifier,
/payment/submit-result, /payment/authorize-refund, /payment/error-state-recovery.

It also plays the chain, the buyer and the network's admins on upstream's schedule
(see chain.py): the buyer locks funds `lock_after` seconds after a payment request (or
when told); the payment service's chain jobs pick requests up every `job_interval`
seconds and their transactions confirm `settle_after` seconds later; a result is
withdrawn after unlockTime + 10 minutes. Faults can be injected (faults.py).

Control endpoints, outside /api/v1, for a person playing the buyer with curl (same
`token` header; each answers the payment as the API shows it; 404 unknown payment,
409 not possible in its state):

    GET  /sandbox/requests                                        what the sandbox received
    POST /sandbox/api-keys            {"token"?, "admin"?}        another API key
    GET  /sandbox/payments/{blockchainIdentifier}                 the payment now
    POST /sandbox/payments/{blockchainIdentifier}/lock            buyer locks funds
    POST /sandbox/payments/{blockchainIdentifier}/lock-late       ... in a block after payByTime
    POST /sandbox/payments/{blockchainIdentifier}/invalid         funds or datum invalid
    POST /sandbox/payments/{blockchainIdentifier}/refund-request  buyer wants a refund
    POST /sandbox/payments/{blockchainIdentifier}/cancel-refund   buyer takes it back (V1)
    POST /sandbox/payments/{blockchainIdentifier}/withdraw-refund buyer takes the money
    POST /sandbox/payments/{blockchainIdentifier}/authorize-withdrawal  buyer gives in (V2)
    POST /sandbox/payments/{blockchainIdentifier}/resolve-dispute admins split a dispute
         (body {"seller": [{"amount": "...", "unit": ""}], "buyer": [...]})
    POST /sandbox/payments/{blockchainIdentifier}/manual-action   a chain job fails
         (optional body {"note": "..."}; clear it with /api/v1/payment/error-state-recovery)

docs/PAYMENT-SERVICE.md describes the upstream behaviour this reproduces.

Example, with `agentjobs-server sandbox` running on its defaults:

    curl -X POST -H 'token: sandbox-api-key' \\
        http://127.0.0.1:3001/sandbox/payments/<blockchainIdentifier>/lock
"""

from agentjobs.server.payments.sandbox.chain import ChainTiming
from agentjobs.server.payments.sandbox.clock import Clock, ManualClock, SystemClock
from agentjobs.server.payments.sandbox.errors import SandboxConflictError, UnknownPaymentError
from agentjobs.server.payments.sandbox.faults import Faults
from agentjobs.server.payments.sandbox.ledger import V1, V2, Funds, StampMode
from agentjobs.server.payments.sandbox.observers import (
    add_request_observer,
    add_response_observer,
)
from agentjobs.server.payments.sandbox.registry import (
    AdvertisedSource,
    AgentListing,
    Pricing,
    SellerSide,
)
from agentjobs.server.payments.sandbox.service import SandboxPaymentService
from agentjobs.server.payments.sandbox.standalone import run_sandbox

__all__ = [
    "V1",
    "V2",
    "AdvertisedSource",
    "AgentListing",
    "ChainTiming",
    "Clock",
    "Faults",
    "Funds",
    "ManualClock",
    "Pricing",
    "SandboxConflictError",
    "SandboxPaymentService",
    "SellerSide",
    "StampMode",
    "SystemClock",
    "UnknownPaymentError",
    "add_request_observer",
    "add_response_observer",
    "run_sandbox",
]
