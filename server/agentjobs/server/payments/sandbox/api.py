"""The payment service's seller endpoints under /api/v1, checking what upstream checks in
the order it checks it (tag 0.28.0, src/routes/api/payments/**). Handlers return the
`data` of a success answer or raise ApiError; http_app.py adds auth, the envelope,
faults and observers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agentjobs.server.payments.gateway import NextAction as A
from agentjobs.server.payments.gateway import OnChainState as S
from agentjobs.server.payments.sandbox import schemas
from agentjobs.server.payments.sandbox.errors import INTERNAL_SERVER_ERROR, ApiError
from agentjobs.server.payments.sandbox.keys import ApiKey, check_network
from agentjobs.server.payments.sandbox.ledger import V1, ChainTransaction, DiffMode, LedgerPayment
from agentjobs.server.payments.sandbox.payment_requests import PaymentRequests
from agentjobs.server.payments.sandbox.views import payment_json
from agentjobs.server.payments.sandbox.zod import parse

if TYPE_CHECKING:
    from agentjobs.server.payments.sandbox.service import SandboxPaymentService

Handler = Callable[[web.Request], Awaitable[Any]]

SUBMITTABLE = frozenset({S.FUNDS_LOCKED, S.REFUND_REQUESTED, S.DISPUTED})
REFUNDABLE = frozenset({S.DISPUTED, S.REFUND_REQUESTED})
COMPLETED = frozenset({S.WITHDRAWN, S.REFUND_WITHDRAWN, S.DISPUTED_WITHDRAWN})
NOT_FOUND_OR_INVALID = "Payment not found or in invalid state"
CONCURRENT_CHANGE = "Payment state changed concurrently; retry against the new state"
_RETRYABLE = {
    A.SUBMIT_RESULT_REQUESTED: A.SUBMIT_RESULT_REQUESTED,
    A.SUBMIT_RESULT_INITIATED: A.SUBMIT_RESULT_REQUESTED,
    A.WITHDRAW_REQUESTED: A.WITHDRAW_REQUESTED,
    A.WITHDRAW_INITIATED: A.WITHDRAW_REQUESTED,
    A.AUTHORIZE_REFUND_REQUESTED: A.AUTHORIZE_REFUND_REQUESTED,
    A.AUTHORIZE_REFUND_INITIATED: A.AUTHORIZE_REFUND_REQUESTED,
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # relative to /api/v1
    handler: Handler
    needs_pay: bool


API_KEY: web.RequestKey[ApiKey] = web.RequestKey("api_key", ApiKey)


def api_key(request: web.Request) -> ApiKey:
    return request[API_KEY]


def _whole_limit(limit: float) -> int:
    # Prisma's `take` rejects a fraction ("1.5" passes zod's coerce): a 500 upstream.
    if not float(limit).is_integer():
        raise ApiError(500, INTERNAL_SERVER_ERROR)
    return int(limit)


class PaymentApi:
    def __init__(self, service: SandboxPaymentService) -> None:
        self._service = service
        self._requests = PaymentRequests(service)

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/payment", self.create_payment, needs_pay=True),
            Route("GET", "/payment", self.list_payments, needs_pay=False),
            Route("GET", "/payment/count", self.count_payments, needs_pay=False),
            Route("GET", "/payment/diff", self._diff(DiffMode.COMBINED), needs_pay=False),
            Route("GET", "/payment/diff/next-action", self._diff(DiffMode.NEXT_ACTION), False),
            Route(
                "GET", "/payment/diff/onchain-state-or-result", self._diff(DiffMode.ON_CHAIN), False
            ),
            Route("POST", "/payment/resolve-blockchain-identifier", self.resolve, False),
            Route("POST", "/payment/submit-result", self.submit_result, needs_pay=True),
            Route("POST", "/payment/authorize-refund", self.authorize_refund, needs_pay=True),
            Route("POST", "/payment/error-state-recovery", self.recover_error, needs_pay=True),
        ]

    # -- create and read -----------------------------------------------------
    async def create_payment(self, request: web.Request) -> Any:
        values = parse(schemas.CREATE, await request_input(request))
        check_network(api_key(request), values["network"])
        payment = self._requests.create(values, api_key(request))
        return self._json(payment, with_history=False)

    def _source_types(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        """resolvePaymentPaymentSourceTypeFilter (payments/queries.ts): the asked type, or
        the type of the asked contract address, or V1 by default."""
        wanted = values.get("filterPaymentSourceType")
        address = values.get("filterSmartContractAddress")
        if address is not None:
            found = self._service.seller.type_of_address(address)
            if found is None or (wanted is not None and wanted != found):
                return ()
            return (found,)
        return (wanted or V1,)

    async def list_payments(self, request: web.Request) -> Any:
        values = parse(schemas.LIST, query_input(request))
        check_network(api_key(request), values["network"])
        limit = _whole_limit(values["limit"])
        state = values["filterOnChainState"]
        manual_only = values["filterNeedsManualAction"]
        search = (values["searchQuery"] or "").lower()

        def keep(payment: LedgerPayment) -> bool:
            if state is not None and payment.on_chain_state != state:
                return False
            if manual_only and not _needs_manual_action(payment):
                return False
            return not search or _matches(payment, search)

        found: list[LedgerPayment] = []
        for source_type in self._source_types(values):
            found += self._service.ledger.newest_first(
                values["network"], source_type, values["cursorId"], limit, keep
            )
        history = values["includeHistory"]
        return {"Payments": [self._json(p, include_history=history) for p in found]}

    async def count_payments(self, request: web.Request) -> Any:
        values = parse(schemas.COUNT, query_input(request))
        check_network(api_key(request), values["network"])
        keep = _needs_manual_action if values["filterNeedsManualAction"] else None
        total = sum(
            self._service.ledger.count(values["network"], source_type, keep)
            for source_type in self._source_types(values)
        )
        return {"total": total}

    def _diff(self, mode: DiffMode) -> Handler:
        async def diff(request: web.Request) -> Any:
            if not self._service.diff_supported:
                # A payment service older than the diff endpoints: express-zod-api's
                # not-found answer.
                raise ApiError(404, f"Can not GET {request.path}")
            values = parse(schemas.DIFF, query_input(request))
            check_network(api_key(request), values["network"])
            limit = _whole_limit(values["limit"])
            found: list[LedgerPayment] = []
            for source_type in self._source_types(values):
                found += self._service.ledger.diff(
                    values["network"],
                    source_type,
                    mode,
                    values["lastUpdate"],
                    values["cursorId"],
                    limit,
                )
            history = values["includeHistory"]
            return {"Payments": [self._json(p, include_history=history) for p in found]}

        return diff

    async def resolve(self, request: web.Request) -> Any:
        values = parse(schemas.RESOLVE, await request_input(request))
        check_network(api_key(request), values["network"])
        payment = self._service.ledger.get(values["blockchainIdentifier"])
        address = values["filterSmartContractAddress"]
        if (
            payment is None
            or payment.network != values["network"]
            or (
                address is not None
                and self._service.seller.address_of(payment.source_type) != address
            )
        ):
            raise ApiError(404, "Payment not found")
        return self._json(payment, include_history=values["includeHistory"])

    # -- the seller's requests -----------------------------------------------
    def _acting_on(self, values: Mapping[str, Any], states: frozenset[str]) -> LedgerPayment:
        """The payment if it waits for an external action in one of `states`, with the
        transaction that funded it; else upstream's 404 (unknown and wrong state alike)."""
        payment = self._service.ledger.get(values["blockchainIdentifier"])
        if (
            payment is None
            or payment.network != values["network"]
            or payment.on_chain_state not in states
            or payment.requested_action != A.WAITING_FOR_EXTERNAL_ACTION
            or payment.transaction is None
        ):
            raise ApiError(404, NOT_FOUND_OR_INVALID)
        return payment

    async def submit_result(self, request: web.Request) -> Any:
        values = parse(schemas.SUBMIT_RESULT, await request_input(request))
        key = api_key(request)
        check_network(key, values["network"])
        payment = self._acting_on(values, SUBMITTABLE)
        if not key.may_act_on(payment.requested_by_id):
            raise ApiError(403, "You are not authorized to submit results for this payment")
        if self._service.faults.take_conflict():
            raise ApiError(409, CONCURRENT_CHANGE)
        result_hash = values["submitResultHash"]
        with self._service.ledger.changing(payment) as at:
            payment.set_action(A.SUBMIT_RESULT_REQUESTED, at, result_hash=result_hash)
        self._service.chain.plan(payment)
        return self._json(payment, with_history=False)

    async def authorize_refund(self, request: web.Request) -> Any:
        values = parse(schemas.AUTHORIZE_REFUND, await request_input(request))
        key = api_key(request)
        check_network(key, values["network"])
        payment = self._acting_on(values, REFUNDABLE)
        if not key.may_act_on(payment.requested_by_id):
            raise ApiError(403, "You are not authorized to authorize a refund for this payment")
        if self._service.faults.take_conflict():
            raise ApiError(409, CONCURRENT_CHANGE)
        with self._service.ledger.changing(payment) as at:
            payment.set_action(A.AUTHORIZE_REFUND_REQUESTED, at)
        self._service.chain.plan(payment)
        return self._json(payment, with_history=False)

    async def recover_error(self, request: web.Request) -> Any:
        values = parse(schemas.ERROR_STATE_RECOVERY, await request_input(request))
        key = api_key(request)
        check_network(key, values["network"])
        payment = self._service.ledger.get(values["blockchainIdentifier"])
        if (
            payment is None
            or payment.network != values["network"]
            or payment.updated_at != values["updatedAt"]
        ):
            raise ApiError(
                404,
                "Payment request not found with the provided blockchain identifier or it was "
                "changed",
            )
        if not key.may_act_on(payment.requested_by_id):
            raise ApiError(403, "You are not authorized to recover this payment request")
        if payment.on_chain_state is None:
            raise ApiError(
                400,
                "Payment request is in its initial on-chain state. Can not be recovered. "
                "Please start a new payment request.",
            )
        if payment.requested_action != A.WAITING_FOR_MANUAL_ACTION:
            raise ApiError(
                400,
                "Payment request is not in WaitingForManualAction state. Current state: "
                f"{payment.requested_action}",
            )
        if payment.action.error_type is None:
            raise ApiError(400, "Payment request is not in an error state. No error to clear.")
        retry = values["retryPreviousAction"] is True
        history = payment.action_history
        previous = history[-1] if history else None
        retry_action = None if previous is None else _RETRYABLE.get(previous.requested_action)
        if retry and retry_action is None:
            raise ApiError(400, "The immediately preceding payment action is not retryable.")
        retry_hash = _retry_result_hash(payment, retry_action)
        if retry and retry_action == A.SUBMIT_RESULT_REQUESTED and retry_hash is None:
            raise ApiError(400, "The failed submit-result action has no result hash to retry.")
        completed = payment.on_chain_state in COMPLETED
        if retry and completed:
            raise ApiError(
                400, "The payment is already completed and its previous action cannot be retried."
            )
        if self._service.faults.take_conflict():
            raise ApiError(409, CONCURRENT_CHANGE)
        with self._service.ledger.changing(payment) as at:
            _reset_transactions(payment, at)
            if retry:
                assert retry_action is not None
                payment.set_action(
                    retry_action,
                    at,
                    result_hash=retry_hash if retry_action == A.SUBMIT_RESULT_REQUESTED else None,
                )
            else:
                payment.set_action(A.NONE if completed else A.WAITING_FOR_EXTERNAL_ACTION, at)
        self._service.chain.plan(payment)
        return self._json(payment, with_history=False)

    def _json(
        self, payment: LedgerPayment, *, with_history: bool = True, include_history: bool = False
    ) -> dict[str, Any]:
        return payment_json(
            payment,
            self._service.seller,
            with_history=with_history,
            include_history=include_history,
        )


def _needs_manual_action(payment: LedgerPayment) -> bool:
    # buildNeedsManualActionFilter (src/utils/shared/queries.ts).
    return (
        payment.requested_action == A.WAITING_FOR_MANUAL_ACTION
        or payment.action.error_type is not None
    )


def _matches(payment: LedgerPayment, search: str) -> bool:
    """A subset of upstream's searchQuery (ids, hashes, agent name, state, network)."""
    fields = (
        payment.id,
        payment.blockchain_identifier,
        payment.input_hash,
        payment.result_hash or "",
        payment.agent_identifier,
        payment.on_chain_state or "",
        payment.network,
    )
    return any(search in value.lower() for value in fields)


def _retry_result_hash(payment: LedgerPayment, retry_action: str | None) -> str | None:
    """getPaymentRetryResultHash (src/utils/shared/error-recovery.ts)."""
    if retry_action != A.SUBMIT_RESULT_REQUESTED:
        return None
    history = payment.action_history
    previous = history[-1]
    if payment.action.result_hash is not None:
        return payment.action.result_hash
    if previous.result_hash is not None:
        return previous.result_hash
    before = history[-2] if len(history) > 1 else None
    if (
        previous.requested_action == A.SUBMIT_RESULT_INITIATED
        and before is not None
        and before.requested_action == A.SUBMIT_RESULT_REQUESTED
    ):
        return before.result_hash
    return None


def _reset_transactions(payment: LedgerPayment, at: int) -> None:
    """Pending transactions fail (FailedViaManualReset); the newest confirmed one (else
    the newest pending one) becomes current again."""
    every = [*payment.transaction_history]
    if payment.transaction is not None:
        every.append(payment.transaction)
    confirmed = [tx for tx in every if tx.status == "Confirmed"]
    pending = [tx for tx in every if tx.status == "Pending"]
    keep = confirmed[-1] if confirmed else (pending[-1] if pending else None)
    reset = [
        tx
        for tx in pending
        if keep is None or (tx.id != keep.id and tx.created_at >= keep.created_at)
    ]
    reset_ids = {tx.id for tx in reset}
    failed = {
        tx.id: replace_status(tx, "FailedViaManualReset", at) for tx in every if tx.id in reset_ids
    }
    history = [failed.get(tx.id, tx) for tx in every if keep is None or tx.id != keep.id]
    payment.transaction_history = history
    payment.transaction = keep


def replace_status(tx: ChainTransaction, status: str, at: int) -> ChainTransaction:
    return replace(tx, status=status, updated_at=at)


async def request_input(request: web.Request) -> dict[str, Any]:
    """What express-zod-api validates for a POST: the JSON body (an array's items by
    index, as Object.assign spreads it), nothing when there is no JSON body."""
    if request.content_type != "application/json" or not request.body_exists:
        return {}
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        # body-parser's strict JSON: a SyntaxError, answered 400 with its message (V8's
        # wording differs; the status is what a client can rely on).
        raise ApiError(400, f"Unexpected token in JSON at position {exc.pos}: {exc.msg}") from None
    if isinstance(body, dict):
        return body
    if isinstance(body, list):
        return {str(at): item for at, item in enumerate(body)}
    raise ApiError(400, f"Unexpected token in JSON at position 0: {text[:20]!r} is not an object")


def query_input(request: web.Request) -> dict[str, Any]:
    """The query as Express 5 parses it: a repeated key becomes an array."""
    values: dict[str, Any] = {}
    for name in request.query:
        items = request.query.getall(name)
        values[name] = items[0] if len(items) == 1 else list(items)
    return values
