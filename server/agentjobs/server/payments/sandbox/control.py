"""Endpoints outside /api/v1 that let a person play the buyer and the chain with curl
(see the package docstring). They answer in the same envelope as the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agentjobs.server.payments.sandbox.chain import UnknownPaymentError
from agentjobs.server.payments.sandbox.ledger import LedgerPayment
from agentjobs.server.payments.sandbox.validation import ApiError, bad_request
from agentjobs.server.payments.sandbox.views import payment_json

if TYPE_CHECKING:
    from agentjobs.server.payments.sandbox.service import SandboxPaymentService

Handler = Callable[[web.Request], Awaitable[Any]]


class ControlApi:
    def __init__(self, service: SandboxPaymentService) -> None:
        self._service = service

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path relative to /sandbox, handler)."""
        chain = self._service.chain
        return [
            ("GET", "/payments/{blockchain_identifier}", self.show),
            ("POST", "/payments/{blockchain_identifier}/lock", self._act(chain.lock_funds)),
            (
                "POST",
                "/payments/{blockchain_identifier}/invalid",
                self._act(chain.mark_funds_invalid),
            ),
            (
                "POST",
                "/payments/{blockchain_identifier}/refund-request",
                self._act(chain.request_refund),
            ),
            ("POST", "/payments/{blockchain_identifier}/manual-action", self.manual_action),
        ]

    async def show(self, request: web.Request) -> Any:
        return self._json(self._payment(request))

    def _act(self, action: Callable[[str], LedgerPayment]) -> Handler:
        async def act(request: web.Request) -> Any:
            return self._json(action(self._payment(request).blockchain_identifier))

        return act

    async def manual_action(self, request: web.Request) -> Any:
        payment = self._payment(request)
        note = "simulated chain error"
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("the request body is not valid JSON") from None
            if not isinstance(body, dict) or not isinstance(body.get("note", note), str):
                raise bad_request('the body must be {"note": "<text>"}')
            note = body.get("note", note)
        return self._json(self._service.chain.fail_next_action(payment.blockchain_identifier, note))

    def _payment(self, request: web.Request) -> LedgerPayment:
        try:
            return self._service.chain.require(request.match_info["blockchain_identifier"])
        except UnknownPaymentError as exc:
            raise ApiError(404, str(exc)) from None

    def _json(self, payment: LedgerPayment) -> dict[str, Any]:
        return payment_json(payment, self._service.seller)
