"""The /sandbox control endpoints: playing the buyer over HTTP, and GET /sandbox/requests
(what the sandbox received)."""

from __future__ import annotations

from agentjobs.server.payments.sandbox import SandboxPaymentService
from tests.payments.conftest import Manual
from tests.payments.helpers import MINUTE, RESULT_HASH, RawApi, authorize_refund, recover
from tests.payments.test_sandbox_chain import locked_payment


async def test_control_endpoints_play_the_buyer(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    bids = sandbox.create_payments(3)
    locked = await raw.call("POST", f"/sandbox/payments/{bids[0]}/lock", under_api=False)
    assert locked.data["onChainState"] == "FundsLocked"
    invalid = await raw.call("POST", f"/sandbox/payments/{bids[2]}/invalid", under_api=False)
    assert invalid.data["onChainState"] == "FundsOrDatumInvalid"
    refund = await raw.call("POST", f"/sandbox/payments/{bids[0]}/refund-request", under_api=False)
    assert refund.data["onChainState"] == "RefundRequested"
    manual = await raw.call(
        "POST",
        f"/sandbox/payments/{bids[1]}/manual-action",
        body={"note": "stuck"},
        under_api=False,
    )
    assert manual.data["NextAction"]["errorNote"] == "stuck"
    shown = await raw.call("GET", f"/sandbox/payments/{bids[0]}", under_api=False)
    assert shown.data == sandbox.payment(bids[0])
    twice = await raw.call("POST", f"/sandbox/payments/{bids[0]}/lock", under_api=False)
    assert twice.status == 409
    unknown = await raw.call("POST", "/sandbox/payments/beef/lock", under_api=False)
    assert unknown.status == 404


async def test_requests_counts_calls_and_lists_what_was_done_per_payment(manual: Manual) -> None:
    api = manual.api
    early, late = await locked_payment(manual), await locked_payment(manual)
    assert (await api.submit(early)).status == 200
    assert (await api.submit(early, "b" * 64)).status == 404  # the first is pending
    refund = await authorize_refund(api, early)
    assert refund.status == 404
    manual.advance(16 * MINUTE)
    assert (await api.submit(late)).status == 200  # too late to be picked up
    manual.advance(MINUTE)
    failed = await manual.sandbox.fail_next_action(early, "boom")
    assert (await recover(api, early, failed["updatedAt"])).status == 200

    answer = await api.call("GET", "/sandbox/requests", under_api=False)
    report = answer.data
    counts = {(r["method"], r["path"]): r["count"] for r in report["requests"]}
    assert counts[("POST", "/api/v1/payment/submit-result")] == 3
    assert counts[("POST", "/api/v1/payment")] == 2
    first = report["payments"][early]
    assert [s["resultHash"] for s in first["acceptedSubmitResults"]] == [RESULT_HASH]
    assert [(s["status"], s["message"]) for s in first["rejectedSubmitResults"]] == [
        (404, "Payment not found or in invalid state")
    ]
    assert [r["status"] for r in first["authorizeRefunds"]] == [404]
    assert [(r["status"], r["retryPreviousAction"]) for r in first["errorStateRecoveries"]] == [
        (200, False)
    ]
    assert first["ignoredSubmitResults"] == 0
    assert report["payments"][late]["ignoredSubmitResults"] == 1
    assert manual.sandbox.requests_report() == report
    unauthorized = await api.call("GET", "/sandbox/requests", token=None, under_api=False)
    assert unauthorized.status == 401
