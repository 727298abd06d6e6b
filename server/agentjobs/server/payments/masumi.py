"""MasumiPaymentGateway: the PaymentGateway over a Masumi payment service's HTTP API.

Bodies are exactly the ones the masumi SDK (masumi.payment.Payment) sends, hashes come
from the SDK's helpers; the transport is our own pooled, time-bounded client
(service_client.py).

changes_since() pages through GET /payment/diff and drops the row the service repeats at
the cursor. It never reports a payment this gateway asked for before follow() names it
(its job is being stored; see _held_back). Against a service without /payment/diff
(older releases) it falls back to one resolve-blockchain-identifier per followed payment.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from masumi.helper_functions import create_masumi_output_hash
from masumi.models import PaymentOnChainState

from agentjobs.server.domain import (
    DomainError,
    FieldViolation,
    InvalidArgumentError,
    PaymentConfigurationError,
    PaymentNotFoundError,
    PaymentServiceConflictError,
    PaymentTerms,
)
from agentjobs.server.domain.identifiers import identifier_from_purchaser_violation
from agentjobs.server.payments.gateway import PaymentChanges, PaymentState
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

# What the masumi SDK sends (and defaults to).
PAYMENT_TYPE = "Web3CardanoV1"
DEFAULT_PAY_BY = timedelta(hours=12)
DEFAULT_SUBMIT_RESULT = timedelta(hours=24)
MAX_DIFF_LIMIT = 100
# Fallback polling: resolve calls in flight at once.
FALLBACK_CONCURRENCY = 8
# How long the diff may wait for follow() of a payment this gateway asked for (its job
# is being stored); after that the payment is reported like any other.
HOLD_BACK_S = 30.0
# Money that moved for good: nothing more to follow.
SETTLED_STATES = frozenset(
    state.value
    for state in (
        PaymentOnChainState.WITHDRAWN,
        PaymentOnChainState.REFUND_WITHDRAWN,
        PaymentOnChainState.DISPUTED_WITHDRAWN,
        PaymentOnChainState.FUNDS_OR_DATUM_INVALID,
    )
)
_HEX = re.compile(r"[0-9a-fA-F]+")


def iso_ms(moment: datetime) -> str:
    """UTC, milliseconds and Z, as the SDK formats payByTime (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _seen(state: PaymentState, watermark: Watermark | None) -> bool:
    """The diff repeats the row at the cursor: anything at or before it was returned."""
    if watermark is None or watermark.cursor_id is None:
        return False
    assert state.changed_at is not None and state.payment_id is not None
    return (state.changed_at, state.payment_id) <= (
        _utc(watermark.last_update),
        watermark.cursor_id,
    )


def _snapshot(state: PaymentState) -> tuple[Any, ...]:
    return (
        state.on_chain_state,
        state.requested_action,
        state.next_action_result_hash,
        state.result_hash,
        state.error_type,
        state.error_note,
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
        hold_back_s: float = HOLD_BACK_S,
        observer: Callable[[DomainError | None], None] | None = None,
    ) -> None:
        self._client = PaymentServiceClient(payment_service_url, api_key, timeout_s, observer)
        self._agent_identifier = agent_identifier
        self._network = network
        self._seller_vkey_override = seller_vkey_override or None
        self._vkey_mismatch_logged = False
        self._diff_supported = True
        # Open payments for the fallback path, in the order they were followed.
        self._followed: dict[str, None] = {}
        # Payments asked for here and not followed yet -> until when (monotonic) the
        # diff holds them back.
        self._awaiting_follow: dict[str, float] = {}
        self._hold_back_s = hold_back_s
        self._last_seen: dict[str, tuple[Any, ...]] = {}

    @property
    def diff_supported(self) -> bool:
        """False once the service answered 404 for GET /payment/diff."""
        return self._diff_supported

    async def close(self) -> None:
        await self._client.close()

    async def probe(self) -> None:
        """One cheap authenticated read (GET /payment/count): raises unless the service
        answers and accepts our API key."""
        await self._client.call("GET", "/payment/count", params={"network": self._network})

    # -- payment requests ----------------------------------------------------
    async def create_payment_request(
        self,
        *,
        identifier_from_purchaser: str,
        input_hash: str,
        pay_by_time: datetime | None = None,
        submit_result_time: datetime | None = None,
    ) -> PaymentTerms:
        violation = identifier_from_purchaser_violation(identifier_from_purchaser)
        if violation is not None:
            raise InvalidArgumentError(
                f"identifier_from_purchaser {violation.description}", [violation]
            )
        if not _HEX.fullmatch(input_hash):
            raise InvalidArgumentError(
                "input_hash must be the hexadecimal MIP-004 hash of the input",
                [FieldViolation("input_hash", "must be hexadecimal")],
            )
        now = datetime.now(UTC)
        body = {
            "agentIdentifier": self._agent_identifier,
            "network": self._network,
            "paymentType": PAYMENT_TYPE,
            "payByTime": iso_ms(pay_by_time or now + DEFAULT_PAY_BY),
            "submitResultTime": iso_ms(submit_result_time or now + DEFAULT_SUBMIT_RESULT),
            "identifierFromPurchaser": identifier_from_purchaser,
            "inputHash": input_hash,
        }
        data = await self._client.call("POST", "/payment", body=body)
        terms = self._terms(data)
        self._awaiting_follow[terms.blockchain_identifier] = time.monotonic() + self._hold_back_s
        return terms

    def _terms(self, data: object) -> PaymentTerms:
        what = "POST /payment"
        if not isinstance(data, dict):
            raise MalformedAnswerError(what, "data that is not an object")
        agent_identifier = data.get("agentIdentifier")
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
        )

    def _seller_vkey(self, data: dict[str, Any], what: str) -> str:
        """The wallet the service escrows to is the truth; SELLER_VKEY is only a stand-in
        for a service that names none."""
        vkey = wallet_vkey(data, what)
        override = self._seller_vkey_override
        if vkey is None:
            if override is None:
                raise PaymentConfigurationError(
                    "the payment service named no SmartContractWallet.walletVkey for the "
                    "payment; set SELLER_VKEY"
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

    # -- following payments --------------------------------------------------
    def follow(self, blockchain_identifiers: Sequence[str]) -> None:
        for blockchain_identifier in blockchain_identifiers:
            self._followed[blockchain_identifier] = None
            self._awaiting_follow.pop(blockchain_identifier, None)

    async def changes_since(self, watermark: Watermark | None, limit: int = 100) -> PaymentChanges:
        if not 2 <= limit <= MAX_DIFF_LIMIT:
            # A page of 1 could hold only the repeated cursor row and never move on.
            raise ValueError(f"limit must be between 2 and {MAX_DIFF_LIMIT}")
        if self._diff_supported:
            try:
                return await self._diff(watermark, limit)
            except PaymentNotFoundError:
                self._diff_supported = False
                log.warning(
                    "the payment service at %s has no GET /payment/diff (HTTP 404): "
                    "following %d open payment(s) one by one instead; if every call "
                    "answers 404, check that PAYMENT_SERVICE_URL ends in /api/v1",
                    self._client.shown_url,
                    len(self._followed),
                )
        return await self._poll_followed(watermark)

    async def _diff(self, watermark: Watermark | None, limit: int) -> PaymentChanges:
        params = {"network": self._network, "limit": str(limit)}
        if watermark is not None:
            params["lastUpdate"] = iso_ms(watermark.last_update)
            if watermark.cursor_id is not None:
                params["cursorId"] = watermark.cursor_id
        data = await self._client.call("GET", "/payment/diff", params=params)
        page = sorted(
            payment_page(data, "GET /payment/diff"),
            key=lambda state: (state.changed_at, state.payment_id),
        )
        full = len(page) >= limit
        held = self._held_back(page)
        if held is not None:
            page, full = page[:held], False
        if not page:
            return PaymentChanges(payments=[], watermark=watermark, more=False)
        for state in page:
            if state.on_chain_state in SETTLED_STATES:
                # Keeps the fallback's list to the open payments.
                self._followed.pop(state.blockchain_identifier, None)
        last = page[-1]
        assert last.changed_at is not None
        moved_to = Watermark(last_update=last.changed_at, cursor_id=last.payment_id)
        return PaymentChanges(
            payments=[state for state in page if not _seen(state, watermark)],
            watermark=moved_to,
            more=full and moved_to != watermark,
        )

    def _held_back(self, page: list[PaymentState]) -> int | None:
        """Where the page must stop: at a payment asked for here whose job is still being
        stored. A change reported now would find no job, and the watermark would move
        past it for good (a buyer, or the sandbox, can lock funds that fast)."""
        if not self._awaiting_follow:
            return None
        now = time.monotonic()
        for expired in [bid for bid, until in self._awaiting_follow.items() if until <= now]:
            del self._awaiting_follow[expired]
        for index, state in enumerate(page):
            if state.blockchain_identifier in self._awaiting_follow:
                log.debug(
                    "diff holds back at payment %s until its job is followed",
                    state.blockchain_identifier,
                )
                return index
        return None

    async def _poll_followed(self, watermark: Watermark | None) -> PaymentChanges:
        """One resolve per followed payment; those that changed since last seen. A
        payment seen settled is reported once more and then no longer followed."""
        followed = list(self._followed)
        slots = asyncio.Semaphore(FALLBACK_CONCURRENCY)

        async def resolve(blockchain_identifier: str) -> PaymentState:
            async with slots:
                return await self.get_payment(blockchain_identifier)

        answers = await asyncio.gather(*(resolve(bid) for bid in followed), return_exceptions=True)
        changed: list[PaymentState] = []
        failures: list[DomainError] = []
        for blockchain_identifier, answer in zip(followed, answers, strict=True):
            if isinstance(answer, PaymentNotFoundError):
                log.warning(
                    "payment %s is unknown to the payment service; no longer following it",
                    blockchain_identifier,
                )
                self._forget(blockchain_identifier)
            elif isinstance(answer, PaymentConfigurationError):
                raise answer
            elif isinstance(answer, DomainError):
                failures.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                if self._last_seen.get(blockchain_identifier) != _snapshot(answer):
                    self._last_seen[blockchain_identifier] = _snapshot(answer)
                    changed.append(answer)
                if answer.on_chain_state in SETTLED_STATES:
                    self._forget(blockchain_identifier)
        if failures:
            if not changed:
                raise failures[0]
            log.warning(
                "%d of %d payment lookups failed (%s); they are retried next round",
                len(failures),
                len(followed),
                failures[0].message,
            )
        return PaymentChanges(payments=changed, watermark=watermark, more=False)

    def _forget(self, blockchain_identifier: str) -> None:
        self._followed.pop(blockchain_identifier, None)
        self._last_seen.pop(blockchain_identifier, None)

    # -- the seller's requests -----------------------------------------------
    async def submit_result(
        self, blockchain_identifier: str, result: str, identifier_from_purchaser: str
    ) -> PaymentState:
        body = {
            "network": self._network,
            "blockchainIdentifier": blockchain_identifier,
            "submitResultHash": create_masumi_output_hash(result, identifier_from_purchaser),
        }
        return await self._seller_request("/payment/submit-result", blockchain_identifier, body)

    async def authorize_refund(self, blockchain_identifier: str) -> PaymentState:
        body = {"network": self._network, "blockchainIdentifier": blockchain_identifier}
        return await self._seller_request("/payment/authorize-refund", blockchain_identifier, body)

    async def _seller_request(
        self, path: str, blockchain_identifier: str, body: dict[str, str]
    ) -> PaymentState:
        try:
            data = await self._client.call("POST", path, body=body)
        except PaymentNotFoundError as not_found:
            # The service answers 404 both for "no such payment" and for "not in a
            # state for this": only the first is final.
            try:
                state = await self.get_payment(blockchain_identifier)
            except PaymentNotFoundError:
                raise not_found from None
            raise PaymentServiceConflictError(
                f"payment {blockchain_identifier} is not ready for {path} "
                f"(onChainState={state.on_chain_state}, "
                f"requestedAction={state.requested_action}): {not_found.message}"
            ) from None
        return payment_state(data, f"POST {path}")
