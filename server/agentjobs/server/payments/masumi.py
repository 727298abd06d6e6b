"""MasumiPaymentGateway: the PaymentGateway over a Masumi payment service's HTTP API
(0.28.0; contracts/masumi-payment-service.openapi.json).

Bodies are the ones the masumi SDK sends, plus what the SDK never sends: the V2 payment
source (`paymentSourceType: Web3CardanoV2` with `supportedPaymentSourceIndex`), dynamic
pricing (`RequestedFunds`) and our job id as private `metadata`. The transport is our
own pooled, time-bounded client (service_client.py).

Nothing here remembers payments between calls: which payments are open, and where the
diff resumes, is in the database.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agentjobs.server.domain import (
    DomainError,
    FieldViolation,
    InvalidArgumentError,
    PaymentConfigurationError,
    PaymentKeyMismatchError,
    PaymentTerms,
)
from agentjobs.server.domain.identifiers import identifier_from_purchaser_violation
from agentjobs.server.domain.payment import PaymentSourceType, PaymentState
from agentjobs.server.payments.gateway import PaymentChanges, PaymentRequest
from agentjobs.server.payments.service_answers import (
    MalformedAnswerError,
    payment_page,
    payment_state,
    requested_funds,
    required_text,
    wallet_vkey,
    whole_number,
)
from agentjobs.server.payments.service_client import PaymentServiceClient
from agentjobs.server.repository.base import Watermark

log = logging.getLogger(__name__)

MAX_DIFF_LIMIT = 100
_HEX = re.compile(r"[0-9a-fA-F]+")


def iso_ms(moment: datetime) -> str:
    """UTC, milliseconds and Z, as the SDK formats payByTime (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _no_diff(message: str) -> DomainError:
    # The diff endpoint answers 404 only when it does not exist (express-zod-api's
    # not-found handler): a service older than the one we need, or a wrong URL.
    return PaymentConfigurationError(
        f"the payment service has no GET /payment/diff ({message}): agentjobs needs the "
        "Masumi payment service 0.28.0 or later at PAYMENT_SERVICE_URL"
    )


class MasumiPaymentGateway:
    def __init__(
        self,
        *,
        payment_service_url: str,
        api_key: str,
        agent_identifier: str,
        network: str = "Preprod",
        timeout_s: float = 10.0,
        seller_vkey_override: str | None = None,
        observer: Callable[[DomainError | None], None] | None = None,
    ) -> None:
        self._client = PaymentServiceClient(payment_service_url, api_key, timeout_s, observer)
        self._agent_identifier = agent_identifier
        self._network = network
        self._seller_vkey_override = seller_vkey_override or None
        self._vkey_mismatch_logged = False

    @property
    def client(self) -> PaymentServiceClient:
        return self._client

    async def close(self) -> None:
        await self._client.close()

    async def probe(self) -> None:
        """One cheap authenticated read (GET /payment/count): raises unless the service
        answers and accepts our API key."""
        await self._client.call("GET", "/payment/count", params={"network": self._network})

    # -- payment requests ----------------------------------------------------
    async def create_payment_request(self, request: PaymentRequest) -> PaymentTerms:
        violation = identifier_from_purchaser_violation(request.identifier_from_purchaser)
        if violation is not None:
            raise InvalidArgumentError(
                f"identifier_from_purchaser {violation.description}", [violation]
            )
        if not _HEX.fullmatch(request.input_hash):
            raise InvalidArgumentError(
                "input_hash must be the hexadecimal MIP-004 hash of the input",
                [FieldViolation("input_hash", "must be hexadecimal")],
            )
        body: dict[str, Any] = {
            "agentIdentifier": self._agent_identifier,
            "network": self._network,
            "payByTime": iso_ms(request.pay_by_time),
            "submitResultTime": iso_ms(request.submit_result_time),
            "identifierFromPurchaser": request.identifier_from_purchaser,
            "inputHash": request.input_hash,
        }
        if request.source_index is None:
            body["paymentSourceType"] = PaymentSourceType.V1.value
        else:
            body["paymentSourceType"] = PaymentSourceType.V2.value
            body["supportedPaymentSourceIndex"] = request.source_index
        if request.metadata is not None:
            body["metadata"] = request.metadata
        if request.requested_funds is not None:
            body["RequestedFunds"] = [
                {"amount": str(amount.amount), "unit": amount.unit}
                for amount in request.requested_funds
            ]
        data = await self._client.call("POST", "/payment", body=body)
        return self._terms(data, request)

    def _terms(self, data: object, request: PaymentRequest) -> PaymentTerms:
        what = "POST /payment"
        if not isinstance(data, dict):
            raise MalformedAnswerError(what, "data that is not an object")
        agent_identifier = data.get("agentIdentifier")
        state = payment_state(data, what) if "NextAction" in data else None
        source_type = (
            state.source_type.value
            if state is not None and state.source_type is not None
            else (PaymentSourceType.V1 if request.source_index is None else PaymentSourceType.V2)
        )
        return PaymentTerms(
            blockchain_identifier=required_text(data, "blockchainIdentifier", what),
            seller_vkey=self._seller_vkey(data, what),
            agent_identifier=agent_identifier
            if isinstance(agent_identifier, str) and agent_identifier
            else self._agent_identifier,
            pay_by_time=whole_number(data, "payByTime", what),
            submit_result_time=whole_number(data, "submitResultTime", what),
            unlock_time=whole_number(data, "unlockTime", what),
            external_dispute_unlock_time=whole_number(data, "externalDisputeUnlockTime", what),
            amounts=requested_funds(data, what),
            source_type=str(source_type),
            source_index=request.source_index,
        )

    def terms_of(self, payment: PaymentState, source_index: int | None) -> PaymentTerms | None:
        """The terms of a payment found in the diff (a crash lost the POST's answer)."""
        seen = payment.terms
        if seen is None:
            return None
        return PaymentTerms(
            blockchain_identifier=payment.blockchain_identifier,
            seller_vkey=self._choose_vkey(seen.seller_vkey, "GET /payment/diff"),
            agent_identifier=seen.agent_identifier or self._agent_identifier,
            pay_by_time=seen.pay_by_time,
            submit_result_time=seen.submit_result_time,
            unlock_time=seen.unlock_time,
            external_dispute_unlock_time=seen.external_dispute_unlock_time,
            amounts=seen.amounts,
            source_type=(payment.source_type or PaymentSourceType.V1).value,
            source_index=source_index,
        )

    def _seller_vkey(self, data: dict[str, Any], what: str) -> str:
        return self._choose_vkey(wallet_vkey(data, what), what)

    def _choose_vkey(self, vkey: str | None, what: str) -> str:
        """The wallet the service escrows to is the truth; SELLER_VKEY is only a stand-in
        for a service that names none."""
        override = self._seller_vkey_override
        if vkey is None:
            if override is None:
                raise PaymentConfigurationError(
                    f"the payment service named no SmartContractWallet.walletVkey in {what}; "
                    "set SELLER_VKEY"
                )
            return override
        if override is not None and override != vkey and not self._vkey_mismatch_logged:
            self._vkey_mismatch_logged = True
            log.warning(
                "SELLER_VKEY differs from the payment service's selling wallet %s; using the "
                "wallet's vkey (remove SELLER_VKEY or correct it)",
                vkey,
            )
        return vkey

    async def get_payment(self, blockchain_identifier: str) -> PaymentState:
        data = await self._client.call(
            "POST",
            "/payment/resolve-blockchain-identifier",
            body={
                "network": self._network,
                "blockchainIdentifier": blockchain_identifier,
                "includeHistory": "false",
            },
        )
        return payment_state(data, "POST /payment/resolve-blockchain-identifier")

    # -- the diff ------------------------------------------------------------
    async def changes_since(
        self,
        watermark: Watermark | None,
        *,
        source_type: PaymentSourceType = PaymentSourceType.V1,
        limit: int = MAX_DIFF_LIMIT,
    ) -> PaymentChanges:
        if not 2 <= limit <= MAX_DIFF_LIMIT:
            # A page of 1 could hold only the repeated cursor row and never move on.
            raise ValueError(f"limit must be between 2 and {MAX_DIFF_LIMIT}")
        params = {
            "network": self._network,
            "limit": str(limit),
            "filterPaymentSourceType": source_type.value,
        }
        if watermark is not None:
            params["lastUpdate"] = iso_ms(watermark.last_update)
            if watermark.cursor_id is not None:
                params["cursorId"] = watermark.cursor_id
        data = await self._client.call(
            "GET", "/payment/diff", params=params, status_errors={404: _no_diff}
        )
        page = sorted(
            payment_page(data, "GET /payment/diff"),
            key=lambda state: (state.changed_at, state.payment_id),
        )
        if not page:
            return PaymentChanges(payments=[], watermark=None, more=False)
        last = page[-1]
        assert last.changed_at is not None
        moved_to = Watermark(last_update=last.changed_at, cursor_id=last.payment_id)
        return PaymentChanges(
            payments=page, watermark=moved_to, more=len(page) >= limit and moved_to != watermark
        )

    # -- the seller's requests -----------------------------------------------
    async def submit_result(self, blockchain_identifier: str, result_hash: str) -> PaymentState:
        body = {
            "network": self._network,
            "blockchainIdentifier": blockchain_identifier,
            "submitResultHash": result_hash,
        }
        return await self._seller_request("/payment/submit-result", body)

    async def authorize_refund(self, blockchain_identifier: str) -> PaymentState:
        body = {"network": self._network, "blockchainIdentifier": blockchain_identifier}
        return await self._seller_request("/payment/authorize-refund", body)

    async def recover_error_state(
        self, blockchain_identifier: str, updated_at: datetime
    ) -> PaymentState:
        body: dict[str, Any] = {
            "network": self._network,
            "blockchainIdentifier": blockchain_identifier,
            "updatedAt": iso_ms(updated_at),
            "retryPreviousAction": True,
        }
        return await self._seller_request("/payment/error-state-recovery", body)

    async def _seller_request(self, path: str, body: dict[str, Any]) -> PaymentState:
        def other_key(message: str) -> DomainError:
            # About this payment only: our key works (and availability must say so).
            return PaymentKeyMismatchError(
                "this payment was created with another API key: the payment service "
                f"refuses {path} with the current PAYMENT_API_KEY ({message})"
            )

        data = await self._client.call("POST", path, body=body, status_errors={403: other_key})
        return payment_state(data, f"POST {path}")
