"""The payment monitor: diff -> decide -> apply, by one replica per database.

The replica holding the "payment-monitor" lease (a row, renewed every third of its
length) pages through GET /payment/diff for every payment source type in use, lets the
lifecycle decide on each payment of ours (pure: lifecycle.on_payment), and writes a
page's decisions and the watermark past it in one transaction. Re-applying a page writes
nothing (the invoice records what was seen), so a crash between pages, or a lease
changing hands mid-page, loses and duplicates nothing. When the leader dies another
replica takes the lease within one lease length.

Late commits. The payment service stamps a change when its transaction *starts*
(CURRENT_TIMESTAMP in a trigger; transactions may last 30 s), so a change can become
visible with a stamp older than rows already returned. So every round re-reads a window
(`overlap`, default 60 s) behind the head watermark: a sweep cursor walks from
head - overlap to the head, de-duplicated by (payment id, change stamp), and starts over
when it gets there. In a quiet system the window is one page, and the sweep's page is
also the head's: one request per round. When the window holds many pages, the sweep
reads a bounded number per round, sized to cover the window within overlap / 2 (so
every change is read again at least once after it can have committed late), and the head
is read on from where it stood.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from agentjobs.server.domain import DomainError, Job, StaleJobError
from agentjobs.server.domain.lifecycle import Decision, on_payment
from agentjobs.server.domain.payment import PaymentSourceType, PaymentState
from agentjobs.server.payments.gateway import PaymentChanges
from agentjobs.server.repository.base import Watermark
from agentjobs.server.services.core import Core
from agentjobs.server.services.intents import PaymentIntents, attach_and_apply, matches
from agentjobs.server.tasks import cancel_and_wait

log = logging.getLogger(__name__)

LEASE_NAME = "payment-monitor"
# Where the very first poll starts before our oldest open invoice (clock skew).
FIRST_POLL_LOOKBACK = timedelta(hours=1)
SOURCES_REFRESH_S = 60.0
# (payment id, stamp) pairs remembered for de-duplication.
SEEN_LIMIT = 50_000


def watermark_names(source: PaymentSourceType) -> tuple[str, str]:
    """The names of the head and sweep watermarks of one payment source type."""
    return f"diff:{source.value}:head", f"diff:{source.value}:sweep"


def _key(watermark: Watermark) -> tuple[datetime, str]:
    return (watermark.last_update.astimezone(UTC), watermark.cursor_id or "")


class Leadership:
    """The monitor's lease: held by at most one replica at a time."""

    def __init__(self, core: Core, name: str = LEASE_NAME) -> None:
        self._core = core
        self.name = name
        self.leading = False

    async def hold(self) -> bool:
        core = self._core
        now_ms = core.clock.now_ms()
        try:
            leading = await core.repository.acquire_lease(
                self.name, core.replica_id, now_ms=now_ms, until_ms=now_ms + core.lease_ms
            )
        except DomainError as exc:
            # Not knowing is not leading: another replica may hold it by now.
            log.warning("cannot renew the payment monitor's lease: %s", exc.message)
            leading = False
        if leading != self.leading:
            log.info("%s the payment monitor", "leading" if leading else "no longer leading")
        self.leading = leading
        return leading

    async def resign(self) -> None:
        if self.leading:
            self.leading = False
            await self._core.repository.release_lease(self.name, self._core.replica_id)


class PaymentMonitor:
    def __init__(
        self,
        core: Core,
        intents: PaymentIntents,
        *,
        interval_s: float,
        overlap_s: float = 60.0,
        configured_source: PaymentSourceType = PaymentSourceType.V1,
        source_index: int | None = None,
    ) -> None:
        self._core = core
        self._intents = intents
        self._interval_s = interval_s
        self._overlap = timedelta(seconds=overlap_s)
        self._configured = configured_source
        self._source_index = source_index
        self.leadership = Leadership(core)
        self._stop = asyncio.Event()
        self._poke = asyncio.Event()
        self._seen: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self._sources: list[PaymentSourceType] = [configured_source]
        self._sources_read_at = -math.inf
        # Pages read by the sweep under way, and by the last complete one, per source.
        self._sweep_pages: dict[PaymentSourceType, int] = {}
        self._last_sweep_pages: dict[PaymentSourceType, int] = {}
        # Watermarks as last written, so a quiet round writes nothing.
        self._saved: dict[str, Watermark] = {}
        self._last_round = -math.inf
        self._round_done = asyncio.Condition()
        self._rounds_begun = 0
        self._rounds_ended = 0
        self._last_round_ok = False
        self.rounds = 0
        self.requests_last_round = 0
        self.applied = 0

    # -- the loop --------------------------------------------------------------
    async def run(self) -> None:
        lease_loop = asyncio.create_task(self._keep_lease(), name="monitor-lease")
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                # A poke that came before this round began is answered by this round.
                self._poke.clear()
                self._rounds_begun += 1
                ok = False
                try:
                    if self.leadership.leading or await self.leadership.hold():
                        await self.poll_once()
                    ok = True
                except DomainError as exc:
                    log.warning("payment monitor round failed: %s (%s)", exc.message, exc.reason)
                except Exception:
                    log.exception("payment monitor round failed")
                self._last_round = time.monotonic()
                async with self._round_done:
                    self._rounds_ended, self._last_round_ok = self._rounds_begun, ok
                    self._round_done.notify_all()
                # A fixed period, not a fixed pause: a slow round must not stretch the
                # time from FundsLocked to RUNNING by its own length.
                pause = max(0.0, self._interval_s - (time.monotonic() - began))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._poke.wait()
        finally:
            await cancel_and_wait(lease_loop)
            with contextlib.suppress(DomainError):
                await self.leadership.resign()

    async def _keep_lease(self) -> None:
        while not self._stop.is_set():
            await self.leadership.hold()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._core.lease_ms / 3000):
                    await self._stop.wait()

    def poke(self) -> None:
        """Poll now instead of at the next interval (a fresh payment, tests)."""
        self._poke.set()

    async def poll_round(self) -> bool:
        """Poll now and wait until a round that began after this call has ended; True if
        it succeeded (bound the wait with asyncio.timeout)."""
        wanted = self._rounds_begun + 1
        self.poke()
        async with self._round_done:
            await self._round_done.wait_for(lambda: self._rounds_ended >= wanted)
            return self._last_round_ok

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()

    # -- one round -------------------------------------------------------------
    async def poll_once(self) -> int:
        """One round over every source type in use; returns the payments applied."""
        self.requests_last_round = 0
        applied = 0
        for source in await self._sources_in_use():
            applied += await self._poll_source(source)
        self.rounds += 1
        return applied

    async def _sources_in_use(self) -> list[PaymentSourceType]:
        if time.monotonic() - self._sources_read_at >= SOURCES_REFRESH_S:
            in_use = await self._core.repository.source_types_in_use()
            sources = {self._configured}
            for value in in_use:
                try:
                    sources.add(PaymentSourceType(value) if value else PaymentSourceType.V1)
                except ValueError:
                    log.warning("open invoices of an unknown payment source type %r", value)
            self._sources = sorted(sources)
            self._sources_read_at = time.monotonic()
        return self._sources

    async def _poll_source(self, source: PaymentSourceType) -> int:
        repository = self._core.repository
        head_name, sweep_name = watermark_names(source)
        head = await repository.get_watermark(head_name) or await self._first_watermark()
        self._saved[head_name] = head
        if not self._overlap:
            return await self._read_head(source, head_name, head)
        sweep = await repository.get_watermark(sweep_name)
        if sweep is not None:
            self._saved[sweep_name] = sweep
        if sweep is None or _key(sweep) >= _key(head):
            sweep = Watermark(last_update=head.last_update - self._overlap)
            self._sweep_pages[source] = 0
        budget = self._sweep_budget(source)
        applied, cursor, pages = 0, sweep, 0
        # The sweep first; where it reaches the head it simply goes on as the head.
        while True:
            changes = await self._diff(cursor, source)
            pages += 1
            self._sweep_pages[source] = self._sweep_pages.get(source, 0) + 1
            moved = changes.watermark or cursor
            at_head = _key(moved) >= _key(head)
            marks = [(sweep_name, moved)]
            if at_head:
                head = moved
                marks.append((head_name, moved))
            applied += await self._apply(changes, marks)
            cursor = moved
            if not changes.more:
                # The window is covered up to the newest change: the next round starts
                # a new sweep from head - overlap.
                await self._save([(sweep_name, head)])
                self._last_sweep_pages[source] = self._sweep_pages.pop(source, pages)
                return applied
            if not at_head and pages >= budget:
                break
        # Sweep budget spent: read the head on from where it stood.
        return applied + await self._read_head(source, head_name, head)

    async def _read_head(self, source: PaymentSourceType, name: str, head: Watermark) -> int:
        applied, cursor = 0, head
        while True:
            changes = await self._diff(cursor, source)
            moved = changes.watermark or cursor
            applied += await self._apply(changes, [(name, moved)])
            cursor = moved
            if not changes.more:
                return applied

    def _sweep_budget(self, source: PaymentSourceType) -> int:
        """Pages of the window to re-read this round, so a whole sweep takes at most
        overlap / 2."""
        rounds = max(1.0, self._overlap.total_seconds() / 2 / max(self._interval_s, 0.001))
        last = self._last_sweep_pages.get(source, 1)
        return max(1, math.ceil(last / rounds))

    async def _diff(self, watermark: Watermark, source: PaymentSourceType) -> PaymentChanges:
        self.requests_last_round += 1
        return await self._core.gateway.changes_since(watermark, source_type=source)

    async def _first_watermark(self) -> Watermark:
        oldest = await self._core.repository.oldest_open_invoice()
        return Watermark(last_update=(oldest or datetime.now(UTC)) - FIRST_POLL_LOOKBACK)

    # -- decide and apply ------------------------------------------------------
    async def _apply(self, changes: PaymentChanges, watermarks: list[tuple[str, Watermark]]) -> int:
        core = self._core
        fresh = [p for p in changes.payments if _seen_key(p) not in self._seen]
        if not fresh:
            await self._save(watermarks)
            return 0
        by_payment, intents = await core.repository.jobs_for_payments(
            [p.blockchain_identifier for p in fresh], [p.input_hash for p in fresh if p.input_hash]
        )
        now = core.clock.now()
        decided: list[tuple[Job, Decision]] = []
        payments: list[PaymentState] = []
        for payment in fresh:
            found = by_payment.get(payment.blockchain_identifier)
            if found is not None:
                job, invoice = found
                decision = on_payment(job, invoice, payment, now, core.policy)
            else:
                intent = _intent_for(payment, intents.get(payment.input_hash or "", []))
                if intent is None:
                    continue  # another agent's payment on the same payment service
                terms = self._intents.terms_of(payment)
                if terms is None:
                    continue
                job = intent
                decision = attach_and_apply(job, terms, payment, now, core)
            if not decision.writes_nothing:
                decided.append((job, decision))
                payments.append(payment)
        marks = [(n, w) for n, w in watermarks if self._saved.get(n) != w]
        outcomes = await core.repository.apply_page(decided, now, watermarks=marks)
        self._saved.update(marks)
        for (job, _decision), payment, outcome in zip(decided, payments, outcomes, strict=True):
            if isinstance(outcome, StaleJobError):
                await self._apply_again(job, payment)
        for payment in fresh:
            self._remember(payment)
        self.applied += len(decided)
        return len(decided)

    async def _apply_again(self, job: Job, payment: PaymentState) -> None:
        """Another writer moved the job between our read and our write: decide again on
        the job as it is now."""
        core = self._core
        try:
            current, invoice = await core.repository.get_with_invoice(job.job_id)
            if not current.has_payment:
                terms = self._intents.terms_of(payment)
                if terms is not None:
                    await self._intents.attach(current, terms, payment)
                return
            await core.settle(
                current, invoice, lambda j, i, n: on_payment(j, i, payment, n, core.policy)
            )
        except DomainError as exc:
            log.error(
                "payment %s (%s) could not be applied to job %s: %s",
                payment.blockchain_identifier,
                payment.describe,
                job.job_id,
                exc.message,
            )

    async def _save(self, watermarks: list[tuple[str, Watermark]]) -> None:
        changed = [(n, w) for n, w in watermarks if self._saved.get(n) != w]
        if changed:
            await self._core.repository.apply_page([], self._core.clock.now(), watermarks=changed)
            self._saved.update(changed)

    def _remember(self, payment: PaymentState) -> None:
        self._seen[_seen_key(payment)] = None
        while len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)


def _seen_key(payment: PaymentState) -> tuple[object, ...]:
    """A payment as seen: its id, its change stamp and what it says. The stamp alone is
    not enough: two changes in one millisecond share it."""
    return (
        payment.payment_id or payment.blockchain_identifier,
        payment.changed_at,
        payment.on_chain_state,
        payment.requested_action,
        payment.next_action_result_hash,
        payment.result_hash,
        payment.error_type,
        payment.error_note,
    )


def _intent_for(payment: PaymentState, candidates: list[Job]) -> Job | None:
    for job in candidates:
        if matches(job, payment):
            return job
    return None
