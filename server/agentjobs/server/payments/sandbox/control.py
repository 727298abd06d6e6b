"""Endpoints outside /api/v1 that let a person (or a test in another process) play the
buyer, the chain and the network's admins, and see what the sandbox received (see the
package docstring). Same `token` header and envelope as the API; 404 unknown payment,
409 not possible in its state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agentjobs.server.payments.sandbox.errors import ApiError
from agentjobs.server.payments.sandbox.ledger import Funds, LedgerPayment
from agentjobs.server.payments.sandbox.views import payment_json

if TYPE_CHECKING:
    from agentjobs.server.payments.sandbox.service import SandboxPaymentService

Handler = Callable[[web.Request], Awaitable[Any]]
_PAYMENT = "/payments/{blockchain_identifier}"


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _funds(value: object, name: str) -> tuple[Funds, ...]:
    if not isinstance(value, list) or not all(
        isinstance(item, dict) and isinstance(item.get("amount"), str | int) for item in value
    ):
        raise ApiError(400, f'{name} must be a list of {{"amount": "...", "unit": "..."}}')
    return tuple(Funds(int(item["amount"]), str(item.get("unit", ""))) for item in value)


class ControlApi:
    def __init__(self, service: SandboxPaymentService) -> None:
        self._service = service

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path relative to /sandbox, handler)."""
        chain = self._service.chain
        return [
            ("GET", "/requests", self.requests),
            ("POST", "/api-keys", self.add_api_key),
            ("GET", _PAYMENT, self.show),
            ("POST", _PAYMENT + "/lock", self._act(chain.lock_funds)),
            ("POST", _PAYMENT + "/lock-late", self._act(chain.lock_funds_late)),
            ("POST", _PAYMENT + "/invalid", self._act(chain.mark_funds_invalid)),
            ("POST", _PAYMENT + "/refund-request", self._act(chain.request_refund)),
            ("POST", _PAYMENT + "/cancel-refund", self._act(chain.cancel_refund)),
            ("POST", _PAYMENT + "/withdraw-refund", self._act(chain.withdraw_refund)),
            ("POST", _PAYMENT + "/authorize-withdrawal", self._act(chain.authorize_withdrawal)),
            ("POST", _PAYMENT + "/resolve-dispute", self.resolve_dispute),
            ("POST", _PAYMENT + "/manual-action", self.manual_action),
        ]

    async def requests(self, _request: web.Request) -> Any:
        return self._service.requests_report()

    async def add_api_key(self, request: web.Request) -> Any:
        """A new key ({"token"?: str, "admin"?: bool}); answers its token and id."""
        body = await _json_body(request)
        token = body.get("token")
        admin = body.get("admin", False)
        if (token is not None and not isinstance(token, str)) or not isinstance(admin, bool):
            raise ApiError(400, 'the body must be {"token"?: "<text>", "admin"?: true|false}')
        try:
            key = self._service.add_api_key(token, admin=admin)
        except ValueError as exc:
            raise ApiError(409, str(exc)) from None
        return {"id": key.id, "token": key.token, "admin": key.can_admin}

    async def show(self, request: web.Request) -> Any:
        return self._json(self._payment(request))

    def _act(self, action: Callable[[str], LedgerPayment]) -> Handler:
        async def act(request: web.Request) -> Any:
            return self._json(action(self._payment(request).blockchain_identifier))

        return act

    async def resolve_dispute(self, request: web.Request) -> Any:
        """Body {"seller": [funds], "buyer": [funds]}: the admins' split."""
        payment = self._payment(request)
        body = await _json_body(request)
        seller = _funds(body.get("seller", []), "seller")
        buyer = _funds(body.get("buyer", []), "buyer")
        return self._json(
            self._service.chain.resolve_dispute(
                payment.blockchain_identifier, seller=seller, buyer=buyer
            )
        )

    async def manual_action(self, request: web.Request) -> Any:
        payment = self._payment(request)
        body = await _json_body(request)
        note = body.get("note", "simulated chain error")
        if not isinstance(note, str):
            raise ApiError(400, 'the body must be {"note": "<text>"}')
        return self._json(self._service.chain.fail_next_action(payment.blockchain_identifier, note))

    def _payment(self, request: web.Request) -> LedgerPayment:
        return self._service.chain.require(request.match_info["blockchain_identifier"])

    def _json(self, payment: LedgerPayment) -> dict[str, Any]:
        return payment_json(payment, self._service.seller)
