"""The contract check itself: it can fail, and the repository's copy of the contract is
the shared one."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentjobs.server.payments.sandbox import SandboxPaymentService
from tests.payments import contract
from tests.payments.helpers import RawApi

SHARED = Path("/work/shared/contracts/masumi-payment-service.openapi.json")


async def test_a_wrong_body_is_rejected(sandbox: SandboxPaymentService) -> None:
    [bid] = sandbox.create_payments(1)
    good = {"status": "success", "data": sandbox.payment(bid)}
    assert contract.problems("POST", "/payment/resolve-blockchain-identifier", 200, good) == []

    payment = sandbox.payment(bid)
    del payment["SmartContractWallet"]
    payment["onChainState"] = "Paid"
    payment["NextAction"] = {"requestedAction": "None"}
    wrong = {"status": "success", "data": payment}
    found = contract.problems("POST", "/payment/resolve-blockchain-identifier", 200, wrong)
    assert any("SmartContractWallet" in problem for problem in found)
    assert any("Paid" in problem for problem in found)
    assert any("errorType" in problem for problem in found)


def test_error_answers_must_be_the_error_envelope() -> None:
    envelope = {"status": "error", "error": {"message": "nope"}}
    assert contract.problems("POST", "/payment/submit-result", 409, envelope) == []
    assert contract.problems("POST", "/payment/submit-result", 409, {"detail": "x"}) != []
    assert contract.problems("GET", "/payment/diff", 404, envelope) == []
    assert contract.problems("GET", "/payment/diff", 202, envelope) != []
    assert contract.problems("GET", "/nowhere", 200, {}) != []


async def test_the_recorder_sees_every_answer(raw: RawApi) -> None:
    with contract.recording() as recorder:
        await raw.create()
        await raw.call("GET", "/payment/diff", params={"network": "Preprod"})
        await raw.call("GET", "/payment/diff", params={})
    assert recorder.checked == 3
    assert recorder.breaches == []


def test_the_repository_carries_the_shared_contract() -> None:
    if not SHARED.exists():
        pytest.skip("no shared contract outside the repository on this machine")
    assert contract.CONTRACT.read_bytes() == SHARED.read_bytes()
