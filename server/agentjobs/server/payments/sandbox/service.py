"""SandboxPaymentService: the sandbox as one object to start, stop, drive and inspect."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from agentjobs.server.payments.sandbox.chain import Chain
from agentjobs.server.payments.sandbox.clock import Clock, SystemClock
from agentjobs.server.payments.sandbox.faults import Faults
from agentjobs.server.payments.sandbox.http_app import API_PREFIX, build_app
from agentjobs.server.payments.sandbox.ledger import Funds, Ledger, LedgerPayment, new_id
from agentjobs.server.payments.sandbox.scheduler import Scheduler
from agentjobs.server.payments.sandbox.views import SellerSide, payment_json

HOUR_MS = 3_600_000
# An agent identifier of valid length for payments made in-process.
BULK_AGENT_IDENTIFIER = "sandbox" + "0" * 50 + "62756c6b"
_ANY = object()


class SandboxPaymentService:
    """An in-memory Masumi payment service on loopback that also plays the chain and the
    buyer. `lock_after`: seconds until the buyer locks funds of a new payment (None:
    only when told, see lock_funds); `settle_after`: seconds each chain step takes."""

    def __init__(
        self,
        *,
        api_key: str,
        lock_after: float | None = 2.0,
        settle_after: float = 1.0,
        clock: Clock | None = None,
        seller: SellerSide | None = None,
        price: Sequence[Funds] = (Funds(10_000_000),),
        access_log: bool = False,
    ) -> None:
        if not api_key:
            raise ValueError("the sandbox needs an API key")
        self.api_key = api_key
        self.clock: Clock = clock or SystemClock()
        self.seller = seller or SellerSide()
        self.price = tuple(price)
        self.faults = Faults()
        # Requests per (method, path), e.g. ("GET", "/api/v1/payment/diff").
        self.request_counts: Counter[tuple[str, str]] = Counter()
        # False: /payment/diff answers 404, like payment services older than it.
        self.diff_supported = True
        self.ledger = Ledger(self.clock)
        self._scheduler = Scheduler(self.clock)
        self.chain = Chain(
            self.ledger,
            self._scheduler,
            self.clock,
            lock_after=lock_after,
            settle_after=settle_after,
        )
        self._access_log = access_log
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._changed = asyncio.Event()
        self.ledger.listeners.append(self._on_change)

    # -- lifecycle -----------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: a free port); returns the base URL with /api/v1."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        # The embedded sandbox would log every monitor poll; run_sandbox shows them.
        quiet: dict[str, Any] = {} if self._access_log else {"access_log": None}
        runner = web.AppRunner(build_app(self), shutdown_timeout=0.5, **quiet)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        self._url = f"http://{shown_host}:{bound_port}{API_PREFIX}"
        self._scheduler.start()
        return self._url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        await self._scheduler.stop()
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the sandbox is not started")
        return self._url

    @property
    def lock_after(self) -> float | None:
        return self.chain.lock_after

    @lock_after.setter
    def lock_after(self, seconds: float | None) -> None:
        self.chain.lock_after = seconds

    @property
    def settle_after(self) -> float:
        return self.chain.settle_after

    @settle_after.setter
    def settle_after(self, seconds: float) -> None:
        self.chain.settle_after = seconds

    # -- payments ------------------------------------------------------------
    def open_payment(
        self,
        *,
        network: str,
        agent_identifier: str,
        identifier_from_purchaser: str,
        input_hash: str,
        metadata: str | None,
        times: tuple[int, int, int, int],
        created_at: int | None = None,
        buyer_pays: bool = True,
    ) -> LedgerPayment:
        """Book a payment request (POST /payment, validated already)."""
        pay_by, submit, unlock, dispute = times
        payment = LedgerPayment(
            id=new_id(),
            blockchain_identifier=secrets.token_hex(32),
            network=network,
            agent_identifier=agent_identifier,
            identifier_from_purchaser=identifier_from_purchaser,
            input_hash=input_hash,
            metadata=metadata,
            pay_by_time=pay_by,
            submit_result_time=submit,
            unlock_time=unlock,
            external_dispute_unlock_time=dispute,
            requested_funds=self.price,
            created_at=self.ledger.stamp() if created_at is None else created_at,
        )
        self.ledger.add(payment)
        if buyer_pays:
            self.chain.payment_created(payment)
        return payment

    def create_payments(
        self,
        count: int,
        *,
        network: str = "Preprod",
        agent_identifier: str = BULK_AGENT_IDENTIFIER,
        same_instant: bool = True,
    ) -> list[str]:
        """Book `count` pending payments in-process (tests, benchmarks); returns their
        blockchainIdentifiers. The buyer never pays them unless told to (lock_funds).
        `same_instant`: one timestamp for all, so only the cursor id orders them."""
        now = self.clock.now_ms()
        times = (now + 12 * HOUR_MS, now + 24 * HOUR_MS, now + 30 * HOUR_MS, now + 36 * HOUR_MS)
        stamp = self.ledger.stamp() if same_instant else None
        created: list[str] = []
        for _ in range(count):
            payment = self.open_payment(
                network=network,
                agent_identifier=agent_identifier,
                identifier_from_purchaser=secrets.token_hex(8),
                input_hash=secrets.token_hex(32),
                metadata=None,
                times=times,
                created_at=stamp,
                buyer_pays=False,
            )
            created.append(payment.blockchain_identifier)
        return created

    def payment(self, blockchain_identifier: str) -> dict[str, Any]:
        """The payment as resolve-blockchain-identifier would answer it."""
        return payment_json(self.chain.require(blockchain_identifier), self.seller)

    def accepted_submissions(self, blockchain_identifier: str) -> int:
        """How many submit-results for this payment were answered 200."""
        return self.chain.require(blockchain_identifier).accepted_submissions

    def ignored_submissions(self, blockchain_identifier: str) -> int:
        """Accepted submit-results the chain never acted on (too close to submitResultTime)."""
        return self.chain.require(blockchain_identifier).ignored_submissions

    # -- the buyer and the chain, in-process ---------------------------------
    async def lock_funds(self, blockchain_identifier: str) -> dict[str, Any]:
        """The buyer locks funds now: onChainState FundsLocked."""
        return self._json(self.chain.lock_funds(blockchain_identifier))

    async def mark_funds_invalid(self, blockchain_identifier: str) -> dict[str, Any]:
        """The buyer's funds or datum are invalid: onChainState FundsOrDatumInvalid."""
        return self._json(self.chain.mark_funds_invalid(blockchain_identifier))

    async def request_refund(self, blockchain_identifier: str) -> dict[str, Any]:
        """The buyer asks for the money back: RefundRequested (Disputed after a result)."""
        return self._json(self.chain.request_refund(blockchain_identifier))

    async def fail_next_action(
        self, blockchain_identifier: str, note: str, error_type: str = "NetworkError"
    ) -> dict[str, Any]:
        """A chain action fails: NextAction WaitingForManualAction with an error."""
        return self._json(self.chain.fail_next_action(blockchain_identifier, note, error_type))

    async def wait_for(
        self,
        blockchain_identifier: str,
        *,
        on_chain_state: object = _ANY,
        requested_action: object = _ANY,
    ) -> dict[str, Any]:
        """Wait until the payment has this onChainState and / or requestedAction (bound it
        with asyncio.timeout)."""
        payment = self.chain.require(blockchain_identifier)
        while not (
            (on_chain_state is _ANY or payment.on_chain_state == on_chain_state)
            and (requested_action is _ANY or payment.requested_action == requested_action)
        ):
            await self._changed.wait()
        return self._json(payment)

    def _on_change(self, _payment: LedgerPayment) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _json(self, payment: LedgerPayment) -> dict[str, Any]:
        return payment_json(payment, self.seller)
