"""The sandbox's books: every payment request, and the sorted indexes the diff endpoints
page through, so a poll over 10,000+ payments costs a bisect, not a scan."""

from __future__ import annotations

import bisect
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum

from agentjobs.server.payments.gateway import NextAction
from agentjobs.server.payments.sandbox.clock import Clock


def new_id() -> str:
    """A cuid-like row id. Random, like the service's, so ties on a timestamp are broken
    in no particular order and readers cannot rely on ids growing."""
    return "c" + secrets.token_hex(12)


class DiffMode(Enum):
    """Which change timestamp a diff endpoint sorts on (one sorted index each)."""

    COMBINED = "changed_at"
    NEXT_ACTION = "next_action_changed_at"
    ON_CHAIN = "on_chain_changed_at"


@dataclass(frozen=True)
class Funds:
    amount: int
    unit: str = ""


@dataclass(frozen=True)
class ChainTransaction:
    """The buyer's or seller's latest transaction, as CurrentTransaction shows it."""

    id: str
    created_at: int
    tx_hash: str
    previous_state: str | None
    new_state: str | None
    block_height: int
    fees_lovelace: int = 180_000


@dataclass
class LedgerPayment:
    id: str
    blockchain_identifier: str
    network: str
    agent_identifier: str
    identifier_from_purchaser: str
    input_hash: str
    metadata: str | None
    pay_by_time: int
    submit_result_time: int
    unlock_time: int
    external_dispute_unlock_time: int
    requested_funds: tuple[Funds, ...]
    created_at: int
    updated_at: int = 0
    changed_at: int = 0
    next_action_changed_at: int = 0
    on_chain_changed_at: int = 0
    on_chain_state: str | None = None
    requested_action: str = NextAction.WAITING_FOR_EXTERNAL_ACTION
    next_action_result_hash: str | None = None
    error_type: str | None = None
    error_note: str | None = None
    # What NextAction was before an error parked it in WaitingForManualAction.
    action_before_error: str | None = None
    result_hash: str | None = None
    buyer_vkey: str | None = None
    transaction: ChainTransaction | None = None
    withdrawn_for_seller: tuple[Funds, ...] = ()
    withdrawn_for_buyer: tuple[Funds, ...] = ()
    last_checked_at: int | None = None
    # submit-result answers 200 counted here; `ignored` the ones the chain never acted on.
    accepted_submissions: int = 0
    ignored_submissions: int = 0

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.created_at
        self.changed_at = self.changed_at or self.created_at
        self.next_action_changed_at = self.next_action_changed_at or self.created_at
        self.on_chain_changed_at = self.on_chain_changed_at or self.created_at

    def next_action(self) -> tuple[str, str | None, str | None, str | None]:
        return (
            self.requested_action,
            self.next_action_result_hash,
            self.error_type,
            self.error_note,
        )

    def chain_view(self) -> tuple[str | None, str | None]:
        return (self.on_chain_state, self.result_hash)

    def stamp_of(self, mode: DiffMode) -> int:
        stamp: int = getattr(self, mode.value)
        return stamp


class SortedKeys:
    """(timestamp ms, id) keys in ascending order."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: tuple[int, str]) -> None:
        bisect.insort(self._keys, key)

    def discard(self, key: tuple[int, str]) -> None:
        at = bisect.bisect_left(self._keys, key)
        if at < len(self._keys) and self._keys[at] == key:
            del self._keys[at]

    def from_key(self, start: tuple[int, str], limit: int) -> list[tuple[int, str]]:
        """Up to `limit` keys >= start, ascending."""
        at = bisect.bisect_left(self._keys, start)
        return self._keys[at : at + limit]

    def down_from(self, start: tuple[int, str] | None) -> Iterator[tuple[int, str]]:
        """Keys <= start (all keys when None), descending."""
        end = len(self._keys) if start is None else bisect.bisect_right(self._keys, start)
        for at in range(end - 1, -1, -1):
            yield self._keys[at]


@dataclass
class _NetworkIndexes:
    created: SortedKeys = field(default_factory=SortedKeys)
    by_mode: dict[DiffMode, SortedKeys] = field(
        default_factory=lambda: {mode: SortedKeys() for mode in DiffMode}
    )


class Ledger:
    """Payments by blockchainIdentifier and by id, with one sorted index per network and
    diff mode. Change timestamps strictly increase (a logical clock floored at the
    sandbox clock): a change made after a diff was read always sorts after what that
    diff returned, even within the same millisecond."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._by_bid: dict[str, LedgerPayment] = {}
        self._by_id: dict[str, LedgerPayment] = {}
        self._indexes: dict[str, _NetworkIndexes] = {}
        self._last_stamp = 0
        self.listeners: list[Callable[[LedgerPayment], None]] = []

    def __len__(self) -> int:
        return len(self._by_bid)

    def stamp(self) -> int:
        self._last_stamp = max(self._clock.now_ms(), self._last_stamp + 1)
        return self._last_stamp

    def get(self, blockchain_identifier: str) -> LedgerPayment | None:
        return self._by_bid.get(blockchain_identifier)

    def by_id(self, payment_id: str) -> LedgerPayment | None:
        return self._by_id.get(payment_id)

    def add(self, payment: LedgerPayment) -> None:
        if payment.blockchain_identifier in self._by_bid or payment.id in self._by_id:
            raise ValueError(f"duplicate payment {payment.blockchain_identifier}")
        self._by_bid[payment.blockchain_identifier] = payment
        self._by_id[payment.id] = payment
        indexes = self._indexes.setdefault(payment.network, _NetworkIndexes())
        indexes.created.add((payment.created_at, payment.id))
        for mode, keys in indexes.by_mode.items():
            keys.add((payment.stamp_of(mode), payment.id))
        self._notify(payment)

    @contextmanager
    def changing(self, payment: LedgerPayment) -> Iterator[LedgerPayment]:
        """Mutate `payment` inside the block; its change timestamps and index positions
        follow what actually changed (NextAction, or onChainState / resultHash)."""
        action_before, chain_before = payment.next_action(), payment.chain_view()
        old_keys = {mode: (payment.stamp_of(mode), payment.id) for mode in DiffMode}
        yield payment
        action_changed = payment.next_action() != action_before
        chain_changed = payment.chain_view() != chain_before
        now = self.stamp()
        payment.updated_at = now
        if action_changed:
            payment.next_action_changed_at = now
        if chain_changed:
            payment.on_chain_changed_at = now
        if action_changed or chain_changed:
            payment.changed_at = now
        indexes = self._indexes[payment.network]
        for mode, keys in indexes.by_mode.items():
            new_key = (payment.stamp_of(mode), payment.id)
            if new_key != old_keys[mode]:
                keys.discard(old_keys[mode])
                keys.add(new_key)
        self._notify(payment)

    def diff(
        self, network: str, mode: DiffMode, since_ms: int, cursor_id: str | None, limit: int
    ) -> list[LedgerPayment]:
        """As the payment service's diff: stamp > since, or stamp == since and id >=
        cursor (the cursor row itself comes again), ascending by (stamp, id)."""
        indexes = self._indexes.get(network)
        if indexes is None:
            return []
        keys = indexes.by_mode[mode].from_key((since_ms, cursor_id or ""), limit)
        return [self._by_id[payment_id] for _, payment_id in keys]

    def newest_first(
        self,
        network: str,
        cursor_id: str | None,
        limit: int,
        keep: Callable[[LedgerPayment], bool] = lambda _payment: True,
    ) -> list[LedgerPayment]:
        """GET /payment: newest first; a cursor page starts at the cursor row itself."""
        indexes = self._indexes.get(network)
        if indexes is None:
            return []
        start: tuple[int, str] | None = None
        if cursor_id is not None:
            cursor = self._by_id.get(cursor_id)
            if cursor is None or cursor.network != network:
                return []
            start = (cursor.created_at, cursor.id)
        found: list[LedgerPayment] = []
        for _, payment_id in indexes.created.down_from(start):
            payment = self._by_id[payment_id]
            if keep(payment):
                found.append(payment)
                if len(found) == limit:
                    break
        return found

    def count(self, network: str) -> int:
        indexes = self._indexes.get(network)
        return 0 if indexes is None else len(indexes.created)

    def _notify(self, payment: LedgerPayment) -> None:
        for listener in self.listeners:
            listener(payment)
