"""The payment service's seller endpoints under /api/v1, as the OpenAPI contract
describes them. Handlers return the `data` of a success answer or raise ApiError; the
middleware in http_app.py adds the envelope, auth, faults and observers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agentjobs.server.payments.gateway import NextAction, OnChainState
from agentjobs.server.payments.sandbox.chain import SandboxConflictError
from agentjobs.server.payments.sandbox.ledger import DiffMode, LedgerPayment
from agentjobs.server.payments.sandbox.validation import (
    ApiError,
    bad_request,
    is_hex,
    limit_param,
    network_field,
    required_string,
    result_hash_field,
    string_field,
    time_ms,
)
from agentjobs.server.payments.sandbox.views import payment_json

if TYPE_CHECKING:
    from agentjobs.server.payments.sandbox.service import SandboxPaymentService

Handler = Callable[[web.Request], Awaitable[Any]]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
# The service's schema default for both times: in the past, so rejected below.
_DEFAULT_TIME = "1970-01-01T12:00:00.000Z"
_ON_CHAIN_STATES = frozenset(
    value for name, value in vars(OnChainState).items() if not name.startswith("_")
)


async def json_object(request: web.Request) -> Mapping[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


def _not_found(message: str = "Payment not found") -> ApiError:
    return ApiError(404, message)


class PaymentApi:
    def __init__(self, service: SandboxPaymentService) -> None:
        self._service = service

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path relative to /api/v1, handler)."""
        return [
            ("POST", "/payment", self.create_payment),
            ("GET", "/payment", self.list_payments),
            ("GET", "/payment/count", self.count_payments),
            ("GET", "/payment/diff", self._diff(DiffMode.COMBINED)),
            ("GET", "/payment/diff/next-action", self._diff(DiffMode.NEXT_ACTION)),
            ("GET", "/payment/diff/onchain-state-or-result", self._diff(DiffMode.ON_CHAIN)),
            ("POST", "/payment/resolve-blockchain-identifier", self.resolve),
            ("POST", "/payment/submit-result", self.submit_result),
            ("POST", "/payment/authorize-refund", self.authorize_refund),
            ("POST", "/payment/error-state-recovery", self.recover_error),
        ]

    # -- create and read -----------------------------------------------------
    async def create_payment(self, request: web.Request) -> Any:
        body = await json_object(request)
        network = network_field(body.get("network"))
        agent_identifier = required_string(body, "agentIdentifier", min_length=57, max_length=250)
        identifier = required_string(body, "identifierFromPurchaser", min_length=14, max_length=26)
        input_hash = required_string(body, "inputHash", max_length=250)
        metadata = string_field(body, "metadata", required=False)
        if body.get("RequestedFunds") is not None:
            raise bad_request("For fixed pricing, RequestedFunds must be null")
        if not is_hex(identifier):
            raise bad_request("Purchaser identifier is not a valid hex string")
        if not is_hex(input_hash):
            raise bad_request("Input hash is not a valid hex string")
        pay_by = time_ms(body.get("payByTime", _DEFAULT_TIME), "payByTime")
        submit = time_ms(body.get("submitResultTime", _DEFAULT_TIME), "submitResultTime")
        unlock = (
            time_ms(body["unlockTime"], "unlockTime")
            if body.get("unlockTime") is not None
            else submit + 6 * HOUR_MS
        )
        dispute = (
            time_ms(body["externalDisputeUnlockTime"], "externalDisputeUnlockTime")
            if body.get("externalDisputeUnlockTime") is not None
            else submit + 12 * HOUR_MS
        )
        now = self._service.clock.now_ms()
        if pay_by > submit - 5 * MINUTE_MS:
            raise bad_request("Pay by time must be before submit result time (min. 5 minutes)")
        if pay_by < now - 5 * MINUTE_MS:
            raise bad_request("Pay by time must be in the future (max. 5 minutes)")
        if dispute < unlock + 15 * MINUTE_MS:
            raise bad_request(
                "External dispute unlock time must be after unlock time "
                "(min. 15 minutes difference)"
            )
        if submit < now + 15 * MINUTE_MS:
            raise bad_request("Submit result time must be in the future (min. 15 minutes)")
        if submit > unlock - 15 * MINUTE_MS:
            raise bad_request(
                "Submit result time must be before unlock time with at least 15 minutes difference"
            )
        payment = self._service.open_payment(
            network=network,
            agent_identifier=agent_identifier,
            identifier_from_purchaser=identifier,
            input_hash=input_hash,
            metadata=metadata,
            times=(pay_by, submit, unlock, dispute),
        )
        return self._json(payment, with_history=False)

    async def list_payments(self, request: web.Request) -> Any:
        query = request.query
        network = network_field(query.get("network"))
        limit = limit_param(query)
        state = query.get("filterOnChainState")
        if state is not None and state not in _ON_CHAIN_STATES:
            raise bad_request(f"filterOnChainState: Invalid enum value {state!r}")
        payments = self._service.ledger.newest_first(
            network,
            query.get("cursorId"),
            limit,
            keep=(lambda p: p.on_chain_state == state) if state else (lambda _p: True),
        )
        return {"Payments": [self._json(p) for p in payments]}

    async def count_payments(self, request: web.Request) -> Any:
        network = network_field(request.query.get("network"))
        return {"total": self._service.ledger.count(network)}

    def _diff(self, mode: DiffMode) -> Handler:
        async def diff(request: web.Request) -> Any:
            if not self._service.diff_supported:
                # What a payment service older than the diff endpoints answers.
                raise ApiError(404, f"Cannot GET {request.path}")
            query = request.query
            network = network_field(query.get("network"))
            limit = limit_param(query)
            since = time_ms(query.get("lastUpdate", "1970-01-01T00:00:00.000Z"), "lastUpdate")
            payments = self._service.ledger.diff(
                network, mode, since, query.get("cursorId") or None, limit
            )
            return {"Payments": [self._json(p) for p in payments]}

        return diff

    async def resolve(self, request: web.Request) -> Any:
        payment = await self._lookup(request)
        return self._json(payment)

    # -- the seller's requests -----------------------------------------------
    async def submit_result(self, request: web.Request) -> Any:
        body = await json_object(request)
        result_hash = result_hash_field(body)
        payment = self._find(body)
        if self._service.faults.take_conflict():
            raise ApiError(409, "Payment is being updated (injected conflict); retry")
        try:
            self._service.chain.submit_result(payment, result_hash)
        except SandboxConflictError as exc:
            raise ApiError(409, str(exc)) from None
        return self._json(payment, with_history=False)

    async def authorize_refund(self, request: web.Request) -> Any:
        payment = await self._lookup(request)
        try:
            self._service.chain.authorize_refund(payment)
        except SandboxConflictError as exc:
            raise ApiError(409, str(exc)) from None
        return self._json(payment, with_history=False)

    async def recover_error(self, request: web.Request) -> Any:
        body = await json_object(request)
        payment = self._find(body)
        updated_at = time_ms(body.get("updatedAt"), "updatedAt")
        retry = body.get("retryPreviousAction", False)
        if not isinstance(retry, bool):
            raise bad_request("retryPreviousAction: Expected boolean")
        if payment.requested_action != NextAction.WAITING_FOR_MANUAL_ACTION:
            raise bad_request("Payment request is not in WaitingForManualAction state")
        if payment.error_type is None and payment.error_note is None:
            raise bad_request("Payment request has no error to clear")
        if updated_at != payment.updated_at:
            raise bad_request("updatedAt does not match the payment request's last update")
        try:
            self._service.chain.recover_error(payment, retry)
        except SandboxConflictError as exc:
            raise bad_request(str(exc)) from None
        return self._json(payment, with_history=False)

    # -- helpers -------------------------------------------------------------
    async def _lookup(self, request: web.Request) -> LedgerPayment:
        return self._find(await json_object(request))

    def _find(self, body: Mapping[str, Any]) -> LedgerPayment:
        network = network_field(body.get("network"))
        bid = required_string(body, "blockchainIdentifier", min_length=1, max_length=8000)
        payment = self._service.ledger.get(bid)
        if payment is None or payment.network != network:
            raise _not_found()
        return payment

    def _json(self, payment: LedgerPayment, *, with_history: bool = True) -> dict[str, Any]:
        return payment_json(payment, self._service.seller, with_history=with_history)
