"""SandboxPaymentService: the sandbox as one object to start, stop, drive and inspect."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from agentjobs.server.payments.sandbox.chain import Chain, ChainTiming
from agentjobs.server.payments.sandbox.clock import Clock, SystemClock
from agentjobs.server.payments.sandbox.faults import Faults
from agentjobs.server.payments.sandbox.http_app import API_PREFIX, build_app
from agentjobs.server.payments.sandbox.keys import ApiKey, ApiKeys
from agentjobs.server.payments.sandbox.ledger import (
    V1,
    Funds,
    Ledger,
    LedgerPayment,
    StampMode,
    new_id,
)
from agentjobs.server.payments.sandbox.persistence import (
    FORMAT_VERSION,
    StateWriter,
    payment_from_json,
    payment_to_json,
    read_state,
)
from agentjobs.server.payments.sandbox.registry import AgentListing, Pricing, Registry, SellerSide
from agentjobs.server.payments.sandbox.request_log import RequestLog
from agentjobs.server.payments.sandbox.scheduler import ChainTime, Scheduler
from agentjobs.server.payments.sandbox.views import payment_json

HOUR_MS = 3_600_000
# An agent identifier of valid length for payments made in-process.
BULK_AGENT_IDENTIFIER = "sandbox" + "0" * 50 + "62756c6b"
_ANY = object()


class SandboxPaymentService:
    """An in-memory Masumi payment service on loopback that also plays the chain, the
    buyer and the network's admins.

    Timing (see chain.ChainTiming; upstream's defaults unless said): `lock_after`
    seconds until the buyer locks a new payment's funds (None: only when told);
    `settle_after` seconds from a transaction's submission to its confirmation;
    `job_interval` the chain jobs' period (submit-result, authorize-refund, collection:
    15 s); `decision_interval` the automatic decisions' period (30 s); `commit_lag`
    how long a chain-side writing transaction runs before it commits (0).

    `api_key` is the first key (id `seller.api_key_id`, pay permission); add more with
    add_api_key. `agent` is how every agentIdentifier is listed in the registry, or
    `agents` lists exactly which exist. `price` is a shorthand for a fixed-price V1
    agent. `stamp_mode` STRICT gives the old strictly increasing change stamps.
    `state_file` keeps the payments across restarts.
    """

    def __init__(
        self,
        *,
        api_key: str,
        lock_after: float | None = 2.0,
        settle_after: float = 1.0,
        job_interval: float = 15.0,
        decision_interval: float = 30.0,
        commit_lag: float = 0.0,
        clock: Clock | None = None,
        seller: SellerSide | None = None,
        price: Sequence[Funds] | None = None,
        agent: AgentListing | None = None,
        agents: Mapping[str, AgentListing] | None = None,
        stamp_mode: StampMode = StampMode.TRANSACTION,
        buyer_auto_refund: bool = True,
        seller_auto_withdraw: bool = True,
        state_file: Path | None = None,
        access_log: bool = False,
    ) -> None:
        if not api_key:
            raise ValueError("the sandbox needs an API key")
        if price is not None and agent is not None:
            raise ValueError("give either price or agent")
        self.clock: Clock = clock or SystemClock()
        self.seller = seller or SellerSide()
        self.api_keys = ApiKeys()
        self.api_key = api_key
        self.primary_key = self.api_keys.add(api_key, key_id=self.seller.api_key_id)
        listing = agent or AgentListing(V1, Pricing.fixed(*price) if price else Pricing())
        self.registry = Registry(listing, agents)
        self.faults = Faults()
        self.requests = RequestLog()
        # False: /payment/diff answers 404, like payment services older than it.
        self.diff_supported = True
        self._scheduler = Scheduler(self.clock)
        self.chain_time = ChainTime(self._scheduler, self.clock)
        self.ledger = Ledger(self.chain_time, stamp_mode)
        self.chain = Chain(
            self.ledger,
            self._scheduler,
            self.chain_time,
            ChainTiming(
                lock_after_s=lock_after,
                confirm_after_s=settle_after,
                job_interval_s=job_interval,
                decision_interval_s=decision_interval,
                commit_lag_s=commit_lag,
                buyer_auto_refund=buyer_auto_refund,
                seller_auto_withdraw=seller_auto_withdraw,
            ),
        )
        self._access_log = access_log
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._changed = asyncio.Event()
        self.ledger.listeners.append(self._on_change)
        self._state: StateWriter | None = None
        if state_file is not None:
            self._state = StateWriter(state_file, self._snapshot)
            self._load(state_file)

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
        if self._state is not None:
            self._state.start()
        return self._url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        await self._scheduler.stop()
        if runner is not None:
            await runner.cleanup()
        if self._state is not None:
            await self._state.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the sandbox is not started")
        return self._url

    @property
    def timing(self) -> ChainTiming:
        return self.chain.timing

    @property
    def lock_after(self) -> float | None:
        return self.chain.timing.lock_after_s

    @lock_after.setter
    def lock_after(self, seconds: float | None) -> None:
        self.chain.timing.lock_after_s = seconds

    @property
    def settle_after(self) -> float:
        return self.chain.timing.confirm_after_s

    @settle_after.setter
    def settle_after(self, seconds: float) -> None:
        self.chain.timing.confirm_after_s = seconds

    @property
    def request_counts(self) -> Counter[tuple[str, str]]:
        return self.requests.counts

    # -- API keys ------------------------------------------------------------
    def add_api_key(
        self, token: str | None = None, *, admin: bool = False, pay: bool = True
    ) -> ApiKey:
        """Another key the sandbox accepts (e.g. to rotate PAYMENT_API_KEY)."""
        return self.api_keys.add(token or secrets.token_hex(16), can_pay=pay, can_admin=admin)

    def revoke_api_key(self, token: str) -> ApiKey:
        return self.api_keys.revoke(token)

    # -- payments ------------------------------------------------------------
    def book(self, payment: LedgerPayment, *, buyer_pays: bool) -> None:
        """Add a validated payment request; the simulated buyer pays it if `buyer_pays`."""
        self.ledger.add(payment)
        self.chain.payment_created(payment, buyer_pays=buyer_pays)

    def create_payments(
        self,
        count: int,
        *,
        network: str = "Preprod",
        agent_identifier: str = BULK_AGENT_IDENTIFIER,
        same_instant: bool = True,
        source_type: str = V1,
    ) -> list[str]:
        """Book `count` pending payments in-process (tests, benchmarks), requested by the
        first API key; returns their blockchainIdentifiers. The buyer never pays them
        unless told to (lock_funds). `same_instant`: one stamp for all, so only the cursor
        id orders them (else each its own, strictly later, stamp)."""
        now = self.clock.now_ms()
        times = (now + 12 * HOUR_MS, now + 24 * HOUR_MS, now + 30 * HOUR_MS, now + 36 * HOUR_MS)
        pricing = self.registry.default.pricing
        created: list[str] = []
        for at in range(count):
            payment = LedgerPayment(
                id=new_id(),
                blockchain_identifier=secrets.token_hex(32),
                network=network,
                source_type=source_type,
                agent_identifier=agent_identifier,
                identifier_from_purchaser=secrets.token_hex(8),
                input_hash=secrets.token_hex(32),
                metadata=None,
                pricing_type=pricing.pricing_type,
                requested_funds=pricing.amounts,
                pay_by_time=times[0],
                submit_result_time=times[1],
                unlock_time=times[2],
                external_dispute_unlock_time=times[3],
                requested_by_id=self.primary_key.id,
                created_at=now,
            )
            self.ledger.add(payment, began=now if same_instant else now - count + at + 1)
            self.chain.payment_created(payment, buyer_pays=False)
            created.append(payment.blockchain_identifier)
        return created

    def payment(self, blockchain_identifier: str) -> dict[str, Any]:
        """The payment as resolve-blockchain-identifier would answer it."""
        return self._json(self.chain.require(blockchain_identifier))

    def accepted_submissions(self, blockchain_identifier: str) -> int:
        """How many submit-results for this payment were answered 200."""
        self.chain.require(blockchain_identifier)
        return self.requests.accepted_submissions(blockchain_identifier)

    def ignored_submissions(self, blockchain_identifier: str) -> int:
        """Accepted submit-results the chain job never picked (too close to
        submitResultTime at pickup)."""
        self.chain.require(blockchain_identifier)
        return self.chain.ignored_submissions[blockchain_identifier]

    def requests_report(self) -> dict[str, Any]:
        """What GET /sandbox/requests answers."""
        return self.requests.report(self.chain.ignored_submissions)

    # -- the buyer, the chain and the admins, in-process ---------------------
    async def lock_funds(self, blockchain_identifier: str) -> dict[str, Any]:
        """The buyer locks funds now: onChainState FundsLocked."""
        return self._json(self.chain.lock_funds(blockchain_identifier))

    async def lock_funds_late(self, blockchain_identifier: str) -> dict[str, Any]:
        """The buyer's lock lands after payByTime: FundsOrDatumInvalid, manual action."""
        return self._json(self.chain.lock_funds_late(blockchain_identifier))

    async def mark_funds_invalid(self, blockchain_identifier: str) -> dict[str, Any]:
        """The buyer's funds or datum are invalid: onChainState FundsOrDatumInvalid."""
        return self._json(self.chain.mark_funds_invalid(blockchain_identifier))

    async def request_refund(self, blockchain_identifier: str) -> dict[str, Any]:
        """The buyer asks for the money back: RefundRequested (Disputed after a result)."""
        return self._json(self.chain.request_refund(blockchain_identifier))

    async def cancel_refund(self, blockchain_identifier: str) -> dict[str, Any]:
        """The buyer withdraws its refund request (V1 only)."""
        return self._json(self.chain.cancel_refund(blockchain_identifier))

    async def withdraw_refund(self, blockchain_identifier: str) -> dict[str, Any]:
        """The buyer takes its money back (after submitResultTime without a result, or
        from V2 RefundAuthorized): RefundWithdrawn."""
        return self._json(self.chain.withdraw_refund(blockchain_identifier))

    async def authorize_withdrawal(self, blockchain_identifier: str) -> dict[str, Any]:
        """V2: the buyer settles a dispute for the seller: WithdrawAuthorized."""
        return self._json(self.chain.authorize_withdrawal(blockchain_identifier))

    async def resolve_dispute(
        self,
        blockchain_identifier: str,
        *,
        seller: Sequence[Funds] = (),
        buyer: Sequence[Funds] = (),
    ) -> dict[str, Any]:
        """The admins split a dispute after externalDisputeUnlockTime: DisputedWithdrawn."""
        return self._json(
            self.chain.resolve_dispute(
                blockchain_identifier, seller=tuple(seller), buyer=tuple(buyer)
            )
        )

    async def fail_next_action(
        self, blockchain_identifier: str, note: str, error_type: str = "Unknown"
    ) -> dict[str, Any]:
        """A chain job fails: NextAction WaitingForManualAction with an error."""
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
        if self._state is not None:
            self._state.changed()

    def _json(self, payment: LedgerPayment) -> dict[str, Any]:
        return payment_json(payment, self.seller)

    # -- persistence ---------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "lastStamp": self.ledger.last_stamp,
            "payments": [payment_to_json(p) for p in self.ledger],
            "buyerPays": sorted(self.chain.buyer_pays),
            "ignoredSubmissions": dict(self.chain.ignored_submissions),
        }

    def _load(self, path: Path) -> None:
        state = read_state(path)
        if state is None:
            return
        self.ledger.restore_last_stamp(state["lastStamp"])
        self.chain.buyer_pays.update(state["buyerPays"])
        self.chain.ignored_submissions.update(state["ignoredSubmissions"])
        payments = [payment_from_json(item) for item in state["payments"]]
        for payment in payments:
            self.ledger.restore(payment)
        for payment in payments:
            self.chain.resume(payment)

    @property
    def state_writes(self) -> int:
        return 0 if self._state is None else self._state.writes

    async def state_written(self) -> None:
        """Wait until the state file has been written (bound it with asyncio.timeout)."""
        if self._state is None:
            raise RuntimeError("this sandbox has no state file")
        await self._state.written.wait()
